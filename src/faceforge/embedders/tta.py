"""Test-time augmentation of embeddings, and what each quality preset embeds with.

``"flip"``: every chip and its mirror image (columns reversed) are embedded in one model run,
and the face's embedding is the plain mean of the two, as dlib's ``num_jitters`` averages its
jittered copies (no renormalisation: the mean keeps the model's scale, so distances stay on
the threshold scale the calibration tables are fitted on). It costs twice the model time and
nothing else. Measured with ``benchmarks/bench_accurate_identity.py`` on the development identities
(docs/benchmarks.md, "The accurate preset: identity"): for dlib-resnet, flip averaging raises the
share of same-person pairs accepted at a 1% false-accept rate from 99.1% to 99.5% (at 0.1%: 96.3%
to 97.1%; a gallery of 30 people at 1%: 97.8% to 98.3%) for 1.9x the align + embed time (1.35x
per face with detection). dlib-style jitter (5 copies) gives the same at 1% for 3.9x; dlib's own
5-point chip, other paddings and cohort score normalisation did not help on every pair set. So
the ``"accurate"`` preset keeps flip averaging, with its own calibrated thresholds
(the registry entry's ``qualities``, read by :func:`faceforge.pipeline.verify.far_table`).
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
