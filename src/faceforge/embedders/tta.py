"""Test-time augmentation of embeddings, and what each quality preset embeds with.

``"flip"``: every chip and its mirror image (columns reversed) are embedded in one model run,
and the face's embedding is the plain mean of the two, as dlib's ``num_jitters`` averages its
jittered copies (no renormalisation: the mean keeps the model's scale, so distances stay on
the threshold scale the calibration tables are fitted on). It costs twice the model time and
nothing else. Measured with ``benchmarks/bench_accurate_identity.py`` (docs/benchmarks.md,
"Accurate identity (issue 19)"): flip averaging is what the ``"accurate"`` preset keeps for the
identity embedder; jitter (more copies) and other chip geometries did not pay their cost there.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from faceforge._quality import check_quality
from faceforge.errors import ParameterError

#: the test-time augmentations :meth:`faceforge.embedders.Embedder.embed` understands
TTAS = ("none", "flip")
#: quality preset -> test-time augmentation of identity embeddings
QUALITY_TTA = {"fast": "none", "accurate": "flip"}


def check_tta(tta: object) -> str:
    """``tta`` if it names a test-time augmentation, else a :class:`~faceforge.errors.ParameterError`."""
    if tta not in TTAS:
        raise ParameterError(f"tta must be one of {', '.join(map(repr, TTAS))}, got {tta!r}; use 'flip' to "
                             f"average each chip with its mirror image, or 'none'.")
    return str(tta)


def tta_for(quality: str) -> str:
    """The test-time augmentation of quality preset ``quality`` (``"fast"`` -> ``"none"``).

    Raises:
        ParameterError: an unknown preset.
    """
    return QUALITY_TTA[check_quality(quality)]


def mirror(chips: np.ndarray) -> np.ndarray:
    """``(n, H, W, C)`` chips mirrored left-right (a new contiguous array; the input is not changed)."""
    return np.ascontiguousarray(np.asarray(chips)[:, :, ::-1])


def flip_average(embed: Callable[[np.ndarray], np.ndarray], chips: np.ndarray) -> np.ndarray:
    """``(n, d) float32``: the mean of ``embed(chips)`` and ``embed(mirror(chips))`` (one call of ``embed``).

    Args:
        embed: a function from ``(m, H, W, 3) uint8`` chips to ``(m, d)`` embeddings.
        chips: ``(n, H, W, 3) uint8`` chips.

    Example:
        >>> import numpy as np
        >>> f = lambda c: c.reshape(len(c), -1)[:, :2].astype(np.float32)
        >>> flip_average(f, np.arange(12, dtype=np.uint8).reshape(1, 1, 4, 3))
        array([[4.5, 5.5]], dtype=float32)
    """
    n = len(chips)
    e = np.asarray(embed(np.concatenate([np.ascontiguousarray(chips), mirror(chips)])), np.float32)
    return ((e[:n] + e[n:]) * np.float32(0.5)).astype(np.float32, copy=False)
