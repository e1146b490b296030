"""Verification: are the main faces of two images the same person? And the calibrated thresholds.

Decision thresholds come from a target false-accept rate (FAR): the share of pairs of different
people (or, for galleries, of strangers) that would be taken for the same person. Each identity
embedder's registry entry carries the measured tables (``input["pair_far_thresholds"]`` for one
pair, ``input["far_thresholds"]`` for a gallery of ``input["far_gallery_size"]`` people), fitted
by ``benchmarks/calibrate_gallery.py`` on development identities; see ``docs/benchmarks.md``,
"Gallery calibration (issue 13)". Between the table's rows, FAR is interpolated on a log scale.

The ``"accurate"`` preset's embeddings (flip averages, :mod:`faceforge.embedders.tta`) lie
closer together than single ones, for strangers too, so they have their own tables
(the registry entry's ``qualities``), fitted the same way on the same identities
(``benchmarks/bench_accurate_identity.py --calibrate``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Mapping

from faceforge._quality import DEFAULT_QUALITY, check_quality
from faceforge.errors import ParameterError
from faceforge.pipeline.core import FacePipeline, ImageLike
from faceforge.types import Faces

#: the default target false-accept rate of ``verify`` and galleries
DEFAULT_TARGET_FAR = 0.01

def far_table(embedder: str, kind: str = "pair",
              quality: str = DEFAULT_QUALITY) -> tuple[list[tuple[float, float]], int]:
    """The calibrated ``[(far, threshold), ...]`` of an embedder (FAR ascending) and the gallery
    size it holds for (1 for pairs).

    Args:
        embedder: registry name of the embedder.
        kind: ``"pair"`` (one-to-one verification) or ``"gallery"`` (nearest face of a gallery).
        quality: the preset the embeddings were made with (``"accurate"``: the registry entry's
            ``qualities["accurate"]`` tables).

    Returns:
        ``([], 1)`` when the embedder has no calibration for that preset (its fixed threshold is
        then used).
    """
    from faceforge.errors import ModelNotFoundError
    from faceforge.registry import get_spec

    inp: Mapping[str, Any]
    try:
        inp = get_spec(embedder).input
    except ModelNotFoundError:
        return [], 1
    if check_quality(quality) != DEFAULT_QUALITY:  # the preset's own calibration (registry "qualities")
        inp = (inp.get("qualities") or {}).get(quality, {})
    if kind == "gallery":
        rows, size = inp.get("far_thresholds") or [], int(inp.get("far_gallery_size", 1))
    else:
        rows, size = inp.get("pair_far_thresholds") or [], 1
    return sorted((float(f), float(t)) for f, t in rows), size


def check_target_far(target_far: float, table: list[tuple[float, float]], embedder: str) -> float:
    """``target_far`` as a float, or :class:`ParameterError` when it is outside the calibrated range."""
    lo, hi = (table[0][0], table[-1][0]) if table else (0.0, 1.0)
    try:
        f = float(target_far)
    except (TypeError, ValueError):
        f = float("nan")
    if not lo <= f <= hi:
        raise ParameterError(f"target false-accept rate must be between {lo:g} and {hi:g} (the range calibrated "
                             f"for {embedder}), got {target_far!r}; pass a number such as 0.01 (1%), or give "
                             f"an explicit distance threshold instead.")
    return f


def threshold_for_far(table: list[tuple[float, float]], target_far: float) -> float:
    """The distance threshold whose false-accept rate is ``target_far`` (log-linear between rows)."""
    fars = [f for f, _ in table]
    for (f0, t0), (f1, t1) in zip(table, table[1:]):
        if f0 <= target_far <= f1:
            w = 0.0 if f1 == f0 else (math.log(target_far) - math.log(f0)) / (math.log(f1) - math.log(f0))
            return round(t0 + w * (t1 - t0), 4)
    return table[0][1] if target_far <= fars[0] else table[-1][1]


def far_at_threshold(table: list[tuple[float, float]], threshold: float) -> float | None:
    """The false-accept rate expected at ``threshold``; ``None`` above the calibrated range (more than
    the table's largest FAR) or without a table. Below the range: the table's smallest FAR (a bound)."""
    if not table or threshold > table[-1][1]:
        return None
    if threshold <= table[0][1]:
        return table[0][0]
    for (f0, t0), (f1, t1) in zip(table, table[1:]):
        if t0 <= threshold <= t1:
            w = 0.0 if t1 == t0 else (threshold - t0) / (t1 - t0)
            return round(math.exp(math.log(f0) + w * (math.log(f1) - math.log(f0))), 5)
    return None


def decision_threshold(embedder: str, fallback: float | None, threshold: float | None = None,
                       target_far: float | None = DEFAULT_TARGET_FAR, kind: str = "pair",
                       comparisons: int = 1, quality: str = DEFAULT_QUALITY) -> tuple[float, float | None]:
    """``(threshold in force, its expected false-accept rate)``.

    An explicit ``threshold`` wins (its FAR is read from the table); else the threshold of
    ``target_far``; embedders without a table use ``fallback`` with an unknown (``None``) FAR.

    Args:
        embedder: registry name of the embedder.
        fallback: the embedder's fixed threshold (used when it has no table).
        threshold: an explicit distance threshold.
        target_far: the false-accept rate wanted (``None``: :data:`DEFAULT_TARGET_FAR`).
        kind: ``"pair"`` or ``"gallery"``.
        comparisons: for galleries, the number of people enrolled. The table holds for its
            calibrated size; a larger gallery compares a stranger with more people, so its FAR is
            taken to grow in proportion (a stricter threshold keeps the target).
        quality: the preset the embeddings were made with (see :func:`far_table`).

    Raises:
        ParameterError: a negative threshold, or ``target_far`` outside the calibrated range.
    """
    table, size = far_table(embedder, kind, quality)
    scale = max(1.0, comparisons / size) if kind == "gallery" else 1.0
    if threshold is not None:
        if not float(threshold) >= 0:
            raise ParameterError(f"threshold must be a distance >= 0, got {threshold!r}.")
        far = far_at_threshold(table, float(threshold))
        return float(threshold), (None if far is None else round(min(1.0, far * scale), 5))
    if not table:
        return float(fallback if fallback is not None else 0.6), None
    f = check_target_far(DEFAULT_TARGET_FAR if target_far is None else target_far, table, embedder)
    thr = threshold_for_far(table, max(table[0][0], f / scale))
    far = far_at_threshold(table, thr)
    return thr, (None if far is None else round(min(1.0, far * scale), 5))


@dataclass(frozen=True)
class Verification:
    """The answer to "are these two faces the same person?".

    Attributes:
        same: ``distance <= threshold``.
        distance: distance between the two main faces' embeddings (embedder's metric).
        threshold: the decision threshold used. Lowering it makes "same" stricter (fewer false
            accepts, more false rejects).
        embedder: the embedder's name.
        faces: the main face found in each image.
        far: the false-accept rate expected at ``threshold`` (share of pairs of different people
            taken for the same person), from the embedder's calibration; ``None`` when unknown.
        quality: the preset the two faces were embedded with (``"fast"`` or ``"accurate"``;
            :meth:`to_dict` names it only when it is not ``"fast"``, so fast answers read as before).
    """

    same: bool
    distance: float
    threshold: float
    embedder: str
    faces: tuple[Faces, Faces]
    far: float | None = None
    quality: str = DEFAULT_QUALITY

    def to_dict(self) -> dict[str, Any]:
        return {"same": self.same, "distance": round(self.distance, 4), "threshold": self.threshold,
                "far": self.far, "embedder": self.embedder, **_quality_field(self.quality),
                "faces": [self.faces[0].to_dicts()[0], self.faces[1].to_dicts()[0]]}


def verify(a: ImageLike, b: ImageLike, threshold: float | None = None,
           pipeline: FacePipeline | None = None, target_far: float | None = DEFAULT_TARGET_FAR,
           quality: str | None = None) -> Verification:
    """Decide whether the main faces of two images are the same person.

    Args:
        a, b: images (paths, bytes or arrays).
        threshold: distance threshold; wins over ``target_far``.
        pipeline: the pipeline to use (default yunet + dlib-resnet).
        target_far: the false-accept rate wanted (default 1%): the threshold is read from the
            embedder's calibration (``dlib-resnet``: 0.60 for 1%). Embedders without one use
            their fixed threshold.
        quality: ``"fast"`` or ``"accurate"`` (flip-averaged embeddings and their own calibration;
            see :class:`FacePipeline`). Default: the pipeline's (``"fast"`` without one).

    Raises:
        ImageError: an image is unreadable or holds no face.
        ParameterError: ``target_far`` outside the calibrated range, a negative threshold, an
            unknown ``quality``, or a ``quality`` other than the given pipeline's.
    """
    if quality is not None:
        check_quality(quality)
    pipe = pipeline or FacePipeline(quality=quality or DEFAULT_QUALITY)
    if quality is not None and quality != pipe.quality:
        raise ParameterError(f"quality={quality!r} but the pipeline given embeds with quality={pipe.quality!r}; "
                             f"pass FacePipeline(..., quality={quality!r}) or leave quality out.")
    emb = pipe.embedder
    thr, far = decision_threshold(emb.name, emb.threshold, threshold, target_far, "pair", quality=pipe.quality)
    fa, ea = pipe.main_face(a, _name(a, "first image"))
    fb, eb = pipe.main_face(b, _name(b, "second image"))
    d = float(emb.distance(ea[None], eb[None])[0])
    return Verification(d <= thr, d, thr, emb.name, (fa, fb), far, pipe.quality)


def _quality_field(quality: str) -> dict[str, str]:
    """``{"quality": quality}`` for a preset other than ``"fast"``; ``{}`` for fast (answers as of old)."""
    return {} if quality == DEFAULT_QUALITY else {"quality": quality}


def _name(x: Any, default: str) -> str:
    return str(x) if isinstance(x, (str, os.PathLike)) else default
