"""The detector interface and the name -> detector factory."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from faceforge import registry
from faceforge.errors import FaceforgeError, ParameterError
from faceforge.types import Faces

#: name -> "module:Class": a live view of the registry's detectors (for code that reads the
#: table; :func:`get_detector` builds them through :func:`faceforge.registry.create`).
DETECTORS = registry.class_map("detect")

#: Defaults chosen by measurement (see docs/benchmarks.md): the registry's aliases ``"photo"``
#: and ``"live"``, accepted by :func:`get_detector`; each falls back along its chain when the
#: package of the first choice is missing (yuface has wheels for CPython 3.11 only).
DEFAULT_PHOTO_DETECTOR = "photo"
DEFAULT_LIVE_DETECTOR = "live"


def resolve_detector_name(name: str) -> str:
    """Map the aliases ``"photo"`` / ``"live"`` to the first installed detector of their chain.

    Other names (detectors, synonyms such as ``"blazeface"``, unknown names) come back unchanged.
    """
    alias = registry.get_alias(name)
    if alias is None or not alias.is_chain or alias.task != "detect":
        return name
    # looked up at call time, so that tests can stand in for a missing package
    return registry.resolve_name(name, "detect", installed=lambda n: registry.is_installed(n))


class Detector:
    """Base class of every face detector.

    Subclasses implement :meth:`_detect` on a validated RGB ``uint8`` image. Call the detector
    (or :meth:`detect`) with one image, or :meth:`detect_batch` with several.

    A subclass names its registry entry in its class statement (``class YuNetDetector(Detector,
    spec="yunet")``); its :attr:`name` then comes from the registry.

    Attributes:
        name: registry name, e.g. ``"yunet"``.
        min_score: faces scoring below this are dropped. Raising it gives fewer false
            positives and more misses; lowering it finds more faces and more junk.
    """

    name = "detector"

    def __init_subclass__(cls, spec: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if spec is not None:
            cls.name = registry.get_spec(spec).name

    def __init__(self, min_score: float = 0.5) -> None:
        if not 0.0 <= float(min_score) <= 1.0:
            raise ParameterError(f"min_score must lie in [0, 1], got {min_score}")
        self.min_score = float(min_score)

    def detect(self, image: np.ndarray) -> Faces:
        """Find faces in one image.

        Args:
            image: ``(H, W, 3) uint8`` RGB (grey, RGBA and 16-bit arrays are converted).

        Returns:
            :class:`~faceforge.types.Faces`, best score first.
        """
        from faceforge.sources.image import to_rgb_uint8

        img = to_rgb_uint8(image)
        faces = self._detect(img)
        return Faces(faces.xyxy, faces.score, faces.landmarks, (img.shape[1], img.shape[0]),
                     self.name, faces.data).sorted("score")

    __call__ = detect

    def detect_batch(self, images: Iterable[np.ndarray]) -> list[Faces]:
        """Find faces in several images; returns one :class:`Faces` per image."""
        return [self.detect(im) for im in images]

    def _detect(self, image: np.ndarray) -> Faces:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, min_score={self.min_score})"


def available_detectors() -> list[str]:
    """Names accepted by :func:`get_detector` (besides the aliases ``"photo"`` and ``"live"``)."""
    return registry.model_names("detect")


@functools.lru_cache(maxsize=16)
def _cached(name: str, items: tuple) -> Detector:
    return _build(name, dict(items))


def _build(name: str, kwargs: dict[str, Any]) -> Detector:
    name = resolve_detector_name(name)
    if name not in available_detectors():
        close = registry.close_names(name, "detect", n=2)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ParameterError(
            f"Unknown detector {name!r}.{hint} Choose one of: {', '.join(available_detectors())} "
            f"(or 'photo' / 'live' for the measured defaults)"
        )
    return registry.create(name, "detect", **kwargs)


def get_detector(name: str = DEFAULT_PHOTO_DETECTOR, cached: bool = True, **kwargs: Any) -> Detector:
    """Return a detector by name.

    Args:
        name: one of :func:`available_detectors`, or ``"photo"`` (recall first: yunet) or
            ``"live"`` (speed first: blazeface.full), the defaults chosen by measurement.
        cached: reuse one instance per (name, options) within the process.
        **kwargs: detector options such as ``min_score``.

    Raises:
        ParameterError: unknown name.
        ModelNotFoundError: the package shipping the model is missing.

    Example:
        >>> det = get_detector("haar")
        >>> det.name
        'haar'
    """
    if cached:
        return _cached(name, tuple(sorted(kwargs.items())))
    return _build(name, kwargs)


def detector_for(name: str | Detector, quality: str = "fast", **options: Any) -> Detector:
    """The detector of quality preset ``quality``: ``get_detector(name)`` for ``"fast"``; for
    ``"accurate"``, the test-time augmented detector (:class:`faceforge.detectors.tta.AugmentedDetector`)
    when the registry holds accurate views for it (yunet), else the detector itself.

    ``options`` go to the detector; ``min_score`` is then the fused score's threshold, and
    ``target_fp`` (false positives per photo) chooses it with :func:`fp_threshold`. An instance
    comes back unchanged.

    Raises:
        ParameterError: an unknown name or ``quality``.
    """
    from faceforge._quality import check_quality

    if isinstance(name, Detector):
        return name
    target_fp = options.pop("target_fp", None)
    if target_fp is not None:
        if "min_score" in options:
            raise ParameterError("give min_score or target_fp, not both (target_fp chooses min_score)")
        options["min_score"] = fp_threshold(resolve_detector_name(name), target_fp, quality)
    if check_quality(quality) == "fast":
        return get_detector(name, **options)
    from faceforge.detectors.tta import has_accurate_views

    resolved = resolve_detector_name(name)
    if resolved not in available_detectors() or not has_accurate_views(resolved):
        return get_detector(name, **options)
    items = tuple(sorted(options.items()))
    try:
        return _augmented(resolved, items)  # one instance per (name, options) in the process
    except TypeError:  # an unhashable option (a list of views): built afresh
        from faceforge.detectors.tta import AugmentedDetector

        return AugmentedDetector(resolved, **options)


def fp_threshold(detector: str, target_fp: float, quality: str = "fast") -> float:
    """The score threshold that gave at most ``target_fp`` false positives per photo on the development
    photos (the registry's ``fp_thresholds`` of ``detector``, or of its ``quality`` preset).

    Raises:
        ParameterError: the detector has no table, or ``target_fp`` is outside it.
    """
    from faceforge._quality import check_quality

    inp: Any
    try:
        inp = registry.get_spec(detector).input
    except FaceforgeError as e:  # not a registry detector
        raise ParameterError(f"detector {detector!r} has no false-positive calibration; give min_score") from e
    if check_quality(quality) != "fast":
        inp = (inp.get("qualities") or {}).get(quality) or {}
    rows = sorted((float(f), float(t)) for f, t in inp.get("fp_thresholds") or [])
    if not rows:
        raise ParameterError(f"detector {detector!r} has no false-positive calibration; give min_score instead")
    try:
        fp = float(target_fp)
    except (TypeError, ValueError):
        fp = float("nan")
    if not rows[0][0] <= fp <= rows[-1][0]:
        raise ParameterError(f"target_fp must lie in [{rows[0][0]}, {rows[-1][0]}] false positives per photo "
                             f"(what {detector!r} was calibrated for), got {target_fp!r}")
    return min(t for f, t in rows if f <= fp)  # the loosest threshold still within the rate


@functools.lru_cache(maxsize=8)
def _augmented(name: str, items: tuple) -> Detector:
    from faceforge.detectors.tta import AugmentedDetector

    return AugmentedDetector(name, **dict(items))


def scale_faces(faces: Faces, sx: float, sy: float, dx: float = 0.0, dy: float = 0.0) -> Faces:
    """Map faces detected in a resized/cropped image back: ``x * sx + dx``, ``y * sy + dy``."""
    s4 = np.array([sx, sy, sx, sy], np.float32)
    d4 = np.array([dx, dy, dx, dy], np.float32)
    return Faces(faces.xyxy * s4 + d4, faces.score,
                 faces.landmarks * np.array([sx, sy], np.float32) + np.array([dx, dy], np.float32),
                 faces.image_size, faces.detector, faces.data)


def clip_faces(faces: Faces, width: int, height: int) -> Faces:
    """Clip boxes to the image and drop boxes left with no area."""
    xyxy = faces.xyxy.copy()
    xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, width)
    xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, height)
    keep = (xyxy[:, 2] - xyxy[:, 0] > 1) & (xyxy[:, 3] - xyxy[:, 1] > 1)
    out = Faces(xyxy, faces.score, faces.landmarks, faces.image_size, faces.detector, faces.data)
    return out[np.flatnonzero(keep)]


def concat_faces(parts: Sequence[Faces]) -> Faces:
    """Concatenate several :class:`Faces` of the same image (data columns must match)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return Faces.empty()
    keys = set(parts[0].data)
    return Faces(
        np.concatenate([p.xyxy for p in parts]),
        np.concatenate([p.score for p in parts]),
        np.concatenate([p.landmarks for p in parts]),
        parts[0].image_size, parts[0].detector,
        {k: np.concatenate([np.asarray(p.data[k]) for p in parts]) for k in keys},
    )
