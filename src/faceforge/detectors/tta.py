"""Test-time augmentation for the photo detector (issue 19, point 2): several views, one answer.

The detector runs on *views* of the photo (the photo itself, its mirror image, the photo
enlarged), every view's faces are mapped back into the photo's pixels, and faces that several
views found are fused by weighted box fusion (:func:`fuse`): the box and landmarks are the
score-weighted mean of the views' boxes, and the score is the sum of the views' scores divided
by the number of views, so that a face every view finds keeps its score and a face one view
alone finds (often a false positive) loses most of it. An enlarged view finds faces too small
for the network at the photo's own size (yunet needs about 10 px); the fused score's threshold
is chosen on development data for a stated false-positive rate (the registry's ``qualities``
entry of the detector; docs/benchmarks.md, "The accurate preset: detection (issue 19, point 2)").

The accurate preset's views for yunet, chosen there: the photo and the photo enlarged 1.5x (16-32 px
faces of WIDER found 83.1% -> 87.0% at the fast default's false-positive rate, for 3.8x the time);
more views (mirrors, 2x) found up to 0.7 points more for 2-4x more time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from faceforge import registry
from faceforge.detectors.base import Detector, clip_faces, get_detector
from faceforge.errors import ParameterError
from faceforge.types import Faces, iou_matrix

#: A view: (scale, mirrored). Scale is relative to the photo as the detector would see it
#: (after its own ``max_size`` shrink).
View = tuple[float, bool]

#: Landmark order under a mirror: left eye <-> right eye, nose, left mouth <-> right mouth corner.
_MIRROR = np.array([1, 0, 2, 4, 3])


def _as_views(views: Sequence[Any]) -> tuple[View, ...]:
    out = []
    for v in views:
        scale, flip = (float(v[0]), bool(v[1])) if isinstance(v, (tuple, list)) else (float(v), False)
        if not 0.25 <= scale <= 4.0:
            raise ParameterError(f"a view's scale must lie in [0.25, 4], got {scale}")
        out.append((scale, flip))
    if not out:
        raise ParameterError("at least one view is needed, e.g. views=[(1, False), (1, True)]")
    return tuple(out)


def view_faces(detector: Detector, image: np.ndarray, scale: float = 1.0, flip: bool = False) -> Faces:
    """``detector``'s faces on one view of ``image``, in ``image``'s pixels (landmarks in their order)."""
    h, w = image.shape[:2]
    img = image[:, ::-1] if flip else image
    if scale != 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        img = cv2.resize(np.ascontiguousarray(img), size,
                         interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    faces = detector._detect(np.ascontiguousarray(img))
    if not len(faces):
        return Faces.empty()
    sx, sy = w / img.shape[1], h / img.shape[0]
    xyxy = faces.xyxy * np.array([sx, sy, sx, sy], np.float32)
    lm = faces.landmarks * np.array([sx, sy], np.float32)
    if flip:
        xyxy = np.stack([w - xyxy[:, 2], xyxy[:, 1], w - xyxy[:, 0], xyxy[:, 3]], axis=1)
        lm = lm[:, _MIRROR].copy()
        lm[..., 0] = w - lm[..., 0]
    return Faces(xyxy.astype(np.float32), faces.score, lm.astype(np.float32))


def fuse(parts: Sequence[Faces], iou: float = 0.5, method: str = "wbf", scales: Sequence[float] | None = None,
         min_size: float = 0.0) -> Faces:
    """Fuse the faces of several views of one photo into one set.

    Faces are taken best score first; each joins the first cluster whose fused box it overlaps by
    ``iou`` or more and that holds no face of its view yet, or starts a new one. A cluster's box
    and landmarks are its faces' score-weighted mean.

    Args:
        parts: one :class:`Faces` per view, in the photo's pixels.
        iou: the overlap that makes two views' faces one face.
        method: ``"wbf"``: the score is the sum of the cluster's scores over the number of views
            that could see it (a face found in one view of four keeps a quarter of its score);
            ``"max"``: the best score of the cluster (score-aware NMS with averaged boxes).
        scales: each view's scale (its pixels per photo pixel); with ``min_size``, a view counts
            for a face only when the face is at least ``min_size`` pixels tall in it: a face too
            small for the detector at the photo's own size is not held against the enlarged view
            that found it.
        min_size: the detector's smallest face in pixels (0: every view counts for every face).

    Returns:
        The fused faces, best score first.
    """
    if method not in ("wbf", "max"):
        raise ParameterError(f"method must be 'wbf' or 'max', got {method!r}")
    n_views = len(parts)
    rows = [(float(f.score[i]), v, f.xyxy[i], f.landmarks[i]) for v, f in enumerate(parts) for i in range(len(f))]
    if not rows:
        return Faces.empty()
    rows.sort(key=lambda r: -r[0])
    boxes: list[np.ndarray] = []           # fused box per cluster (updated as faces join)
    members: list[list[tuple[float, int, np.ndarray, np.ndarray]]] = []
    for r in rows:
        joined = False
        if boxes:
            ov = iou_matrix(r[2][None], np.stack(boxes))[0]
            for c in np.argsort(-ov):
                if ov[c] < iou:
                    break
                if all(m[1] != r[1] for m in members[c]):
                    members[c].append(r)
                    w = np.array([m[0] for m in members[c]], np.float32)
                    boxes[c] = (np.stack([m[2] for m in members[c]]) * w[:, None]).sum(0) / w.sum()
                    joined = True
                    break
        if not joined:
            boxes.append(np.asarray(r[2], np.float32).copy())
            members.append([r])
    scores, lms = [], []
    view_scales = np.asarray(scales if scales is not None else np.ones(n_views), np.float32)
    if len(view_scales) != n_views:
        raise ParameterError(f"scales has {len(view_scales)} values for {n_views} views")
    for box, m in zip(boxes, members):
        w = np.array([x[0] for x in m], np.float32)
        lms.append((np.stack([x[3] for x in m]) * w[:, None, None]).sum(0) / w.sum())
        if method == "max":
            scores.append(w.max())
            continue
        seen_by = int(((box[3] - box[1]) * view_scales >= min_size).sum()) if min_size > 0 else n_views
        scores.append(w.sum() / max(seen_by, len(m)))
    return Faces(np.stack(boxes).astype(np.float32), np.array(scores, np.float32),
                 np.stack(lms).astype(np.float32)).sorted("score")


class AugmentedDetector(Detector):
    """A detector run on several views of each photo and fused (see the module docstring).

    Args:
        detector: the detector to augment (a name, ``"photo"``, or an instance); its own
            ``min_score`` is replaced by ``floor`` so that the views keep their weak faces.
        views: ``(scale, mirrored)`` pairs; default: the registry's accurate views of the detector.
        min_score: the fused score a face needs; default: the registry's threshold, chosen on
            development data for the stated false-positive rate.
        floor: the score each view keeps its faces down to (before fusion).
        iou: the overlap that makes two views' faces one face.
        method: ``"wbf"`` or ``"max"`` (see :func:`fuse`).
        max_side: an enlarged view is made smaller than asked when its longer side would exceed
            this many pixels (time and memory grow with the pixels). Scales apply to the photo as
            the detector would see it: after its own ``max_size`` shrink (yunet: 1280 px).
        min_size: the detector's smallest face in pixels, for the fusion's count of the views
            that could see a face (see :func:`fuse`); default: the registry's.

    Example:
        >>> from skimage import data
        >>> faces = AugmentedDetector("yunet")(data.astronaut())
        >>> len(faces)
        1
    """

    def __init__(self, detector: str | Detector = "yunet", views: Sequence[Any] | None = None,
                 min_score: float | None = None, floor: float | None = None, iou: float = 0.5,
                 method: str = "wbf", max_side: int = 2560, min_size: float | None = None,
                 **detector_options: Any) -> None:
        from faceforge.detectors.base import resolve_detector_name

        name = resolve_detector_name(detector if isinstance(detector, str) else detector.name)
        cfg = accurate_config(name)
        floor = float(cfg.get("floor", 0.3) if floor is None else floor)
        super().__init__(float(cfg.get("min_score", 0.5) if min_score is None else min_score))
        self.views = _as_views(views if views is not None else cfg.get("views", [[1, False], [1, True]]))
        if method not in ("wbf", "max"):
            raise ParameterError(f"method must be 'wbf' or 'max', got {method!r}")
        if not 0.0 <= floor <= self.min_score:
            raise ParameterError(f"floor must lie in [0, min_score={self.min_score}], got {floor}")
        self.iou, self.method, self.max_side, self.floor = float(iou), method, int(max_side), floor
        self.min_size = float(cfg.get("min_size", 0.0) if min_size is None else min_size)
        self.name = name  # the faces are the detector's (per-detector rules such as the emotion framing apply)
        self._refine = None
        if isinstance(detector, Detector):
            if detector_options:
                raise ParameterError("detector options go with a detector name, not with a detector instance")
            self.base = detector
            self._max_size = None  # an instance keeps its own max_size, applied to every view
        else:
            opts: dict[str, Any] = {**detector_options, "min_score": floor}
            refine = name == "yunet" and opts.get("landmarks", "onet") == "onet"
            if name == "yunet":  # O-Net refines the fused faces once, not every view's
                opts["landmarks"] = "raw"
            self.base = get_detector(name, cached=False, **opts)
            # the views do the detector's own shrink (its max_size) and then their scaling; left to
            # the detector, an enlarged view of a photo over max_size / scale would be shrunk back
            self._max_size = getattr(self.base, "max_size", None)
            if self._max_size is not None:
                self.base.max_size = None  # type: ignore[attr-defined]
            if refine:
                from faceforge.registry import is_installed

                if is_installed("mtcnn.onet"):
                    from faceforge.detectors.mtcnn import OnetLandmarks

                    self._refine = OnetLandmarks()

    def _detect(self, image: np.ndarray) -> Faces:
        h, w = image.shape[:2]
        shrink = 1.0
        if self._max_size and max(h, w) > self._max_size:
            shrink = self._max_size / max(h, w)
        parts, scales = [], []
        for scale, flip in self.views:
            s = min(scale * shrink, self.max_side / max(h, w)) if scale > 1 else scale * shrink
            parts.append(view_faces(self.base, image, s, flip))
            scales.append(s)
        faces = fuse(parts, self.iou, self.method, scales, self.min_size)
        faces = faces[np.flatnonzero(faces.score >= self.min_score)]
        faces = clip_faces(Faces(faces.xyxy, faces.score, faces.landmarks, (w, h)), w, h)
        if self._refine is not None and len(faces):
            faces = self._refine(image, faces)
        return faces

    def __repr__(self) -> str:
        return (f"AugmentedDetector({self.name!r}, views={list(self.views)}, min_score={self.min_score}, "
                f"method={self.method!r})")


def accurate_config(detector: str) -> dict[str, Any]:
    """The registry's accurate-preset settings of ``detector`` (``views``, ``min_score``, ``floor``), or {}."""
    from faceforge.errors import ModelNotFoundError

    try:
        inp = registry.get_spec(detector).input
    except ModelNotFoundError:  # a name outside the registry: the defaults
        return {}
    return dict((inp.get("qualities") or {}).get("accurate") or {})


def has_accurate_views(detector: str) -> bool:
    """True when the registry holds accurate-preset views for ``detector`` (a resolved name)."""
    return bool(accurate_config(detector).get("views"))
