"""Where faceforge keeps files it derives (bottom layer: imports nothing from faceforge)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Folder for files faceforge derives (ONNX conversions, extracted archives), created if needed.

    ``$FACEFORGE_CACHE`` if set, else ``$XDG_CACHE_HOME/faceforge`` or ``~/.cache/faceforge``.

    Returns:
        The folder, which exists.

    Example:
        >>> cache_dir().is_dir()
        True
    """
    env = os.environ.get("FACEFORGE_CACHE")
    if env:
        base = Path(env)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "faceforge"
    base.mkdir(parents=True, exist_ok=True)
    return base
