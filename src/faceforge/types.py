"""Central records that flow between pipeline stages.

Conventions (used everywhere in faceforge):

* Images are RGB ``uint8`` arrays of shape ``(H, W, 3)``.
* Boxes are ``xyxy`` ``float32`` pixel coordinates (x1, y1, x2, y2) in the image they came from.
* Landmarks are ``float32`` of shape ``(n, 5, 2)`` in (x, y) pixel coordinates, ordered
  left eye, right eye, nose tip, left mouth corner, right mouth corner, where "left" is the
  **image** left (the subject's right eye). Rows without landmarks are NaN.
* Stages return new records and never mutate their inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def _as_f32(a: Any, shape_tail: tuple[int, ...], name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float32)
    if arr.ndim != 1 + len(shape_tail) or tuple(arr.shape[1:]) != shape_tail:
        raise ValueError(
            f"{name} must have shape (n, {', '.join(map(str, shape_tail))}) or (n,), "
            f"but got shape {arr.shape}"
        )
    return arr


@dataclass(frozen=True)
class Faces:
    """The faces found in one image, stored column-wise.

    Attributes:
        xyxy: ``(n, 4) float32`` boxes in pixels.
        score: ``(n,) float32`` detector confidence in [0, 1] (1.0 where a detector gives none).
        landmarks: ``(n, 5, 2) float32`` five landmarks; NaN rows where unknown.
        image_size: ``(width, height)`` of the image the boxes refer to.
        detector: name of the model that produced the faces.
        data: free per-face extras, each value an array of length n.

    Example:
        >>> import numpy as np
        >>> f = Faces(xyxy=np.array([[10, 20, 60, 80]]), score=np.array([0.9]))
        >>> len(f), f.width.tolist()
        (1, [50.0])
    """

    xyxy: np.ndarray
    score: np.ndarray
    landmarks: np.ndarray | None = None
    image_size: tuple[int, int] | None = None
    detector: str = ""
    data: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        xyxy = _as_f32(np.reshape(self.xyxy, (-1, 4)), (4,), "xyxy")
        n = len(xyxy)
        score = np.asarray(self.score, dtype=np.float32).reshape(-1)
        if len(score) != n:
            raise ValueError(f"score must have length {n} (one per box), but got {len(score)}")
        if self.landmarks is None:
            lm = np.full((n, 5, 2), np.nan, dtype=np.float32)
        else:
            lm = _as_f32(np.reshape(self.landmarks, (-1, 5, 2)), (5, 2), "landmarks")
            if len(lm) != n:
                raise ValueError(f"landmarks must have {n} rows (one per box), but got {len(lm)}")
        for k, v in self.data.items():
            if len(v) != n:
                raise ValueError(f"data[{k!r}] must have length {n}, but got {len(v)}")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "score", score)
        object.__setattr__(self, "landmarks", lm)

    # -- construction ---------------------------------------------------------------
    @classmethod
    def empty(cls, image_size: tuple[int, int] | None = None, detector: str = "") -> "Faces":
        """Return a record with no faces."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), None, image_size, detector)

    # -- views ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.xyxy)

    def __iter__(self) -> Iterator["Faces"]:
        for i in range(len(self)):
            yield self[i : i + 1]

    def __getitem__(self, idx: Any) -> "Faces":
        if isinstance(idx, (int, np.integer)):
            idx = slice(int(idx), int(idx) + 1) if idx != -1 else slice(-1, None)
        return Faces(
            xyxy=self.xyxy[idx],
            score=self.score[idx],
            landmarks=self.landmarks[idx],
            image_size=self.image_size,
            detector=self.detector,
            data={k: np.asarray(v)[idx] for k, v in self.data.items()},
        )

    @property
    def has_landmarks(self) -> np.ndarray:
        """``(n,) bool``: whether each face has all five landmarks."""
        return ~np.isnan(self.landmarks).any(axis=(1, 2))

    @property
    def width(self) -> np.ndarray:
        return self.xyxy[:, 2] - self.xyxy[:, 0]

    @property
    def height(self) -> np.ndarray:
        return self.xyxy[:, 3] - self.xyxy[:, 1]

    @property
    def area(self) -> np.ndarray:
        return np.clip(self.width, 0, None) * np.clip(self.height, 0, None)

    def sorted(self, by: str = "score") -> "Faces":
        """Return the faces sorted by ``"score"`` or ``"area"``, largest first."""
        key = self.score if by == "score" else self.area
        return self[np.argsort(-key, kind="stable")]

    def with_data(self, **columns: np.ndarray) -> "Faces":
        """Return a copy with extra per-face columns (e.g. ``embedding=...``)."""
        return Faces(self.xyxy, self.score, self.landmarks, self.image_size, self.detector,
                     {**self.data, **columns})

    def to_dicts(self, ndigits: int = 2) -> list[dict[str, Any]]:
        """Return one JSON-ready dict per face (box, score, landmarks)."""
        out = []
        for i in range(len(self)):
            d: dict[str, Any] = {
                "box": [round(float(v), ndigits) for v in self.xyxy[i]],
                "score": round(float(self.score[i]), 4),
            }
            if self.has_landmarks[i]:
                d["landmarks"] = {
                    name: [round(float(x), ndigits), round(float(y), ndigits)]
                    for name, (x, y) in zip(LANDMARK_NAMES, self.landmarks[i])
                }
            out.append(d)
        return out


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a (n,4)`` with every box in ``b (m,4)``.

    Returns:
        ``(n, m) float32`` IoU values in [0, 1].
    """
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0).astype(np.float32)


def nms(xyxy: np.ndarray, score: np.ndarray, iou_threshold: float = 0.4) -> np.ndarray:
    """Greedy non-maximum suppression.

    Args:
        xyxy: ``(n, 4)`` boxes.
        score: ``(n,)`` scores.
        iou_threshold: boxes overlapping a kept box by more than this are dropped. Raising it
            keeps more overlapping faces (crowds); lowering it removes more duplicates.

    Returns:
        ``(k,) int64`` indices of kept boxes, best first.
    """
    order = np.argsort(-np.asarray(score), kind="stable")
    keep: list[int] = []
    xyxy = np.asarray(xyxy, np.float32)
    while len(order):
        i = int(order[0])
        keep.append(i)
        if len(order) == 1:
            break
        ious = iou_matrix(xyxy[i : i + 1], xyxy[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)
