"""Central records that flow between pipeline stages: the face record, predictions, face models.

Conventions (used everywhere in faceforge):

* Images are RGB ``uint8`` arrays of shape ``(H, W, 3)``.
* Boxes are ``xyxy`` ``float32`` pixel coordinates (x1, y1, x2, y2) in the image they came from.
* Landmarks are ``float32`` of shape ``(n, 5, 2)`` in (x, y) pixel coordinates, ordered
  left eye, right eye, nose tip, left mouth corner, right mouth corner, where "left" is the
  **image** left (the subject's right eye). Rows without landmarks are NaN.
* Stages return new records and never mutate their inputs.

This module is the bottom layer: it imports nothing from faceforge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

#: The label of a face that a model's open-set check (or a gallery's threshold) rejects.
UNKNOWN = "unknown"


def _as_f32(a: Any, shape_tail: tuple[int, ...], name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float32)
    if arr.ndim != 1 + len(shape_tail) or tuple(arr.shape[1:]) != shape_tail:
        raise ValueError(
            f"{name} must have shape (n, {', '.join(map(str, shape_tail))}) or (n,), "
            f"but got shape {arr.shape}"
        )
    return arr


@dataclass(frozen=True)
class Prediction:
    """What one model says about one face.

    Attributes:
        label: the best label, or ``"unknown"`` when the open-set check rejects the face
            (a person the model was not trained on); in a model with one negative class
            (``me`` / ``not_me``) a rejected face gets that class. For regression models, the value as text.
        score: probability of ``label`` (classification), the predicted value (regression), or
            the similarity ``1 - distance`` (galleries).
        top_k: ``[(label, score), ...]`` best first (classification only).
        known_score: open-set similarity to the nearest known class; below the model's
            threshold means ``unknown``. ``None`` when the model has no open-set threshold.
        value: the predicted number (regression only).
        distance: embedding distance to the nearest enrolled face (galleries only).
        threshold: the distance threshold in force (galleries only). Lowering it makes a
            match stricter: fewer strangers accepted, more known people called unknown.
        far: the false-accept rate expected at ``threshold``: the share of strangers that would
            be taken for an enrolled person (galleries only; ``None`` when not calibrated).
    """

    label: str
    score: float
    top_k: list[tuple[str, float]] = field(default_factory=list)
    known_score: float | None = None
    value: float | None = None
    distance: float | None = None
    threshold: float | None = None
    far: float | None = None

    def to_dict(self, ndigits: int = 4) -> dict[str, Any]:
        """A JSON-ready dict: ``label``, ``score`` and whichever optional fields are set."""
        d: dict[str, Any] = {"label": self.label, "score": _num(self.score, ndigits)}
        if self.top_k:
            d["top_k"] = [{"label": lab, "score": _num(p, ndigits)} for lab, p in self.top_k]
        for k in ("known_score", "value", "distance", "threshold", "far"):
            v = getattr(self, k)
            if v is not None:
                d[k] = _num(v, max(ndigits, 5) if k == "far" else ndigits)
        return d


def _num(v: float, ndigits: int) -> float | None:
    """``v`` rounded, or None where it is not finite (JSON has no NaN or infinity)."""
    v = float(v)
    return round(v, ndigits) if math.isfinite(v) else None


@dataclass(frozen=True)
class Faces:
    """The faces found in one image, stored column-wise: the one face record of faceforge.

    Every stage adds columns to a new record: the face finder gives boxes, scores and
    landmarks; embedders add ``embeddings``; the tracker adds ``track_id``; face models add
    ``predictions``. Detection, classification, galleries, analysis and live video all return it,
    and :meth:`to_dicts` serialises it for JSON lines and the HTTP API.

    Attributes:
        xyxy: ``(n, 4) float32`` boxes in pixels.
        score: ``(n,) float32`` detector confidence in [0, 1] (1.0 where a detector gives none,
            0.0 for a whole image used as the face).
        landmarks: ``(n, 5, 2) float32`` five landmarks; NaN rows where unknown.
        image_size: ``(width, height)`` of the image the boxes refer to.
        detector: name of the model that produced the faces.
        data: free per-face extras, each value an array of length n (``whole_image``: the whole
            image was used as the face; ``faces_found``: faces the detector found in the image).
        embeddings: embedding key (see :func:`embedding_key`) -> ``(n, d) float32``.
        track_id: ``(n,) int64`` track ids (live video), or None.
        predictions: model name -> one :class:`Prediction` per face (None: not classified yet,
            e.g. a live track whose classification is pending).
        meta: image-level metadata: ``source`` (file), ``frame``, ``timestamp``...

    Example:
        >>> import numpy as np
        >>> f = Faces(xyxy=np.array([[10, 20, 60, 80]]), score=np.array([0.9]))
        >>> len(f), f.width.tolist()
        (1, [50.0])
    """

    xyxy: np.ndarray
    score: np.ndarray
    if TYPE_CHECKING:
        # The constructor takes None (no landmarks); the built record always holds an array.
        landmarks: np.ndarray
    else:
        landmarks: np.ndarray | None = None
    image_size: tuple[int, int] | None = None
    detector: str = ""
    data: Mapping[str, np.ndarray] = field(default_factory=dict)
    embeddings: Mapping[str, np.ndarray] = field(default_factory=dict)
    track_id: np.ndarray | None = None
    predictions: Mapping[str, Sequence[Prediction | None]] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)

    if TYPE_CHECKING:
        # The signature of the generated __init__, for the type checker only (see ``landmarks``).
        def __init__(self, xyxy: np.ndarray, score: np.ndarray, landmarks: np.ndarray | None = None,
                     image_size: tuple[int, int] | None = None, detector: str = "",
                     data: Mapping[str, np.ndarray] = ..., embeddings: Mapping[str, np.ndarray] = ...,
                     track_id: np.ndarray | None = None,
                     predictions: Mapping[str, Sequence[Prediction | None]] = ...,
                     meta: Mapping[str, Any] = ...) -> None: ...

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
        emb = {}
        for k, v in self.embeddings.items():
            a = np.asarray(v, np.float32)
            if a.ndim != 2 or len(a) != n:
                raise ValueError(f"embeddings[{k!r}] must have shape ({n}, d), but got {a.shape}")
            emb[k] = a
        for k, p in self.predictions.items():
            if len(p) != n:
                raise ValueError(f"predictions[{k!r}] must have {n} entries (one per face), but got {len(p)}")
        tid = None
        if self.track_id is not None:
            tid = np.asarray(self.track_id, np.int64).reshape(-1)
            if len(tid) != n:
                raise ValueError(f"track_id must have length {n}, but got {len(tid)}")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "score", score)
        object.__setattr__(self, "landmarks", lm)
        object.__setattr__(self, "data", dict(self.data))
        object.__setattr__(self, "embeddings", emb)
        object.__setattr__(self, "track_id", tid)
        object.__setattr__(self, "predictions", {k: tuple(v) for k, v in self.predictions.items()})
        object.__setattr__(self, "meta", dict(self.meta))

    # -- construction ---------------------------------------------------------------
    @classmethod
    def empty(cls, image_size: tuple[int, int] | None = None, detector: str = "") -> "Faces":
        """Return a record with no faces."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), None, image_size, detector)

    def replace(self, **changes: Any) -> "Faces":
        """A copy with some fields replaced (e.g. ``xyxy=...``); the record itself is unchanged."""
        fields: dict[str, Any] = dict(
            xyxy=self.xyxy, score=self.score, landmarks=self.landmarks, image_size=self.image_size,
            detector=self.detector, data=self.data, embeddings=self.embeddings, track_id=self.track_id,
            predictions=self.predictions, meta=self.meta)
        fields.update(changes)
        return Faces(**fields)

    # -- views ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.xyxy)

    def __iter__(self) -> Iterator["Faces"]:
        for i in range(len(self)):
            yield self[i : i + 1]

    def __getitem__(self, idx: Any) -> "Faces":
        if isinstance(idx, str):
            raise TypeError(f"Faces is indexed by face (int, slice, mask), not by {idx!r}: use "
                            f"faces.predictions[{idx!r}][i], or faces.rows() for per-face views")
        if isinstance(idx, (int, np.integer)):
            idx = slice(int(idx), int(idx) + 1) if idx != -1 else slice(-1, None)
        rows = np.arange(len(self))[idx]
        return self.replace(
            xyxy=self.xyxy[idx], score=self.score[idx], landmarks=self.landmarks[idx],
            data={k: np.asarray(v)[idx] for k, v in self.data.items()},
            embeddings={k: v[idx] for k, v in self.embeddings.items()},
            track_id=None if self.track_id is None else self.track_id[idx],
            predictions={k: [p[int(i)] for i in np.atleast_1d(rows)] for k, p in self.predictions.items()},
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

    @property
    def whole_image(self) -> np.ndarray:
        """``(n,) bool``: the whole image was used as the face (no face was detected)."""
        return np.asarray(self.data.get("whole_image", np.zeros(len(self), bool)), bool)

    @property
    def embedding(self) -> np.ndarray:
        """The embeddings when the record holds one kind (the usual case), ``(n, d) float32``.

        Raises:
            KeyError: no embeddings, or several kinds (use ``embeddings[key]``).
        """
        if len(self.embeddings) != 1:
            raise KeyError(f"this record holds {len(self.embeddings)} kinds of embeddings "
                           f"({', '.join(self.embeddings) or 'none'}); use faces.embeddings[key]")
        return next(iter(self.embeddings.values()))

    def rows(self) -> Iterator["Face"]:
        """One :class:`Face` view per face (``face.box``, ``face["gender"].label``...)."""
        for i in range(len(self)):
            yield Face(self, i)

    def sorted(self, by: str = "score") -> "Faces":
        """Return the faces sorted by ``"score"``, ``"area"`` or ``"main"`` (:func:`main_face_order`), best first."""
        if by == "main":
            return self[main_face_order(self)]
        key = self.score if by == "score" else self.area
        return self[np.argsort(-key, kind="stable")]

    def with_data(self, **columns: np.ndarray) -> "Faces":
        """Return a copy with extra per-face columns in :attr:`data`."""
        return self.replace(data={**self.data, **columns})

    def with_embeddings(self, key: str, embeddings: np.ndarray) -> "Faces":
        """Return a copy with one more kind of embedding (``(n, d)``) under ``key``."""
        return self.replace(embeddings={**self.embeddings, key: embeddings})

    def with_predictions(self, model: str, predictions: Sequence[Prediction | None]) -> "Faces":
        """Return a copy with ``model``'s prediction for every face."""
        return self.replace(predictions={**self.predictions, model: list(predictions)})

    def with_meta(self, **meta: Any) -> "Faces":
        """Return a copy with more image-level metadata."""
        return self.replace(meta={**self.meta, **meta})

    def to_dicts(self, ndigits: int = 2, flatten: str | None = None, embeddings: bool = False) -> list[dict[str, Any]]:
        """Return one JSON-ready dict per face.

        Keys: ``box``, ``score`` (the detector's) and ``landmarks``; with predictions, the
        detector's score is ``detection_score``, ``whole_image`` says whether the whole image was
        the face, and each model's :meth:`Prediction.to_dict` stands under the model's name;
        ``track`` with track ids.

        Args:
            ndigits: decimals of box and landmark coordinates.
            flatten: a model whose prediction is merged into the face's own dict (``label``,
                ``score``...), as ``classify`` and ``gallery identify`` print it.
            embeddings: include each face's embedding (``embedding``, or ``embedding.KEY``
                with several kinds).
        """
        out = []
        labelled = bool(self.predictions) or flatten is not None
        for i in range(len(self)):
            d: dict[str, Any] = {}
            if self.track_id is not None:
                d["track"] = int(self.track_id[i])
            d["box"] = [round(float(v), ndigits) for v in self.xyxy[i]]
            d["detection_score" if labelled else "score"] = round(float(self.score[i]), 4)
            if self.has_landmarks[i]:
                d["landmarks"] = {
                    name: [round(float(x), ndigits), round(float(y), ndigits)]
                    for name, (x, y) in zip(LANDMARK_NAMES, self.landmarks[i])
                }
            if labelled:
                d["whole_image"] = bool(self.whole_image[i])
            for k in ("visible", "coasting"):
                if k in self.data:
                    d[k] = bool(self.data[k][i])
            if embeddings:
                for k, e in self.embeddings.items():
                    col = "embedding" if len(self.embeddings) == 1 else f"embedding.{k}"
                    d[col] = [round(float(v), 6) for v in e[i]]
            for name, preds in self.predictions.items():
                p = preds[i]
                if p is None:
                    continue
                if name == flatten:
                    d.update(p.to_dict())
                else:
                    d[name] = p.to_dict()
            out.append(d)
        return out


@dataclass(frozen=True)
class Face:
    """A read-only view of row ``i`` of a :class:`Faces` record (nothing is copied).

    Example:
        >>> f = Faces([[0, 0, 10, 10]], [0.9]).with_predictions("m", [Prediction("a", 0.8)])
        >>> face = next(f.rows())
        >>> face.box, face["m"].label
        ([0.0, 0.0, 10.0, 10.0], 'a')
    """

    faces: Faces
    i: int

    @property
    def box(self) -> list[float]:
        """``[x1, y1, x2, y2]`` in pixels."""
        return [float(v) for v in self.faces.xyxy[self.i]]

    @property
    def score(self) -> float:
        """The detector's confidence."""
        return float(self.faces.score[self.i])

    @property
    def landmarks(self) -> np.ndarray:
        """``(5, 2) float32``, NaN when unknown."""
        return self.faces.landmarks[self.i]

    @property
    def track_id(self) -> int | None:
        return None if self.faces.track_id is None else int(self.faces.track_id[self.i])

    @property
    def embedding(self) -> np.ndarray:
        """``(d,) float32`` (see :attr:`Faces.embedding`)."""
        return self.faces.embedding[self.i]

    @property
    def predictions(self) -> dict[str, Prediction]:
        """Model name -> this face's prediction (models that have not classified it yet are left out)."""
        return {k: p for k, v in self.faces.predictions.items() if (p := v[self.i]) is not None}

    def __getitem__(self, model: str) -> Prediction:
        p = self.faces.predictions[model][self.i]
        if p is None:
            raise KeyError(f"model {model!r} has not classified face {self.i} yet")
        return p

    def label_text(self) -> str:
        """Short text for drawing: ``#track`` and each model's label (or rounded value)."""
        parts = [] if self.track_id is None else [f"#{self.track_id}"]
        for p in self.predictions.values():
            parts.append(f"{p.value:.0f}" if p.value is not None else p.label)
        return " ".join(parts)

    def to_dict(self, **kwargs: Any) -> dict[str, Any]:
        """This face's entry of :meth:`Faces.to_dicts`."""
        return self.faces[self.i].to_dicts(**kwargs)[0]


def main_face_order(faces: Faces) -> np.ndarray:
    """Indices of ``faces``, main face first: the rule for "the face of this photo".

    Where one face per photo is needed (training, enrolment, verification, ``embed``), faceforge
    takes the face with the highest priority ``side * exp(-d**2 / (2 * 0.35**2))``: ``side`` is the
    box's geometric mean side, ``d`` the distance of its centre from the image centre as a fraction
    of the half-diagonal. A face near the centre wins over a somewhat larger one at the edge (a
    bystander cut by the frame), while a clearly larger face still wins over a small centred
    one: at the image corner a face must be ~8x larger to be chosen, halfway out ~1.5x. Without
    an ``image_size`` the largest face comes first.

    Returns:
        ``(n,) int64`` indices.
    """
    n = len(faces)
    if n <= 1:
        return np.arange(n, dtype=np.int64)
    side = np.sqrt(faces.area)
    if faces.image_size is None:
        return np.argsort(-side, kind="stable").astype(np.int64)
    w, h = faces.image_size
    cx = (faces.xyxy[:, 0] + faces.xyxy[:, 2]) / 2 - w / 2
    cy = (faces.xyxy[:, 1] + faces.xyxy[:, 3]) / 2 - h / 2
    d = np.sqrt(cx**2 + cy**2) / max(1e-6, math.hypot(w, h) / 2)
    priority = side * np.exp(-(d**2) / (2 * 0.35**2))
    return np.argsort(-priority, kind="stable").astype(np.int64)


def embedding_key(embedder: str, alignment: Mapping[str, Any] | str | None = None) -> str:
    """The key under which :attr:`Faces.embeddings` holds one embedder's output.

    Two face models share an embedding (computed once per face) exactly when their keys are
    equal: the same embedder with the same alignment override (``None`` and ``{}`` are the same).
    """
    if not alignment:
        return embedder
    if isinstance(alignment, str):
        alignment = {"template": alignment}
    import json

    return f"{embedder}{json.dumps(dict(alignment), sort_keys=True, separators=(',', ':'))}"


@runtime_checkable
class FaceModel(Protocol):
    """Anything that predicts a label (or a value) for faces already found in an image:
    trained classifiers, galleries, the built-in attribute models.

    Attributes:
        task: ``"classification"`` or ``"regression"``.
        embedding_key: the :func:`embedding_key` of the embedding the model reads, or None
            for models that read pixels (emotion).
    """

    task: str

    @property
    def embedding_key(self) -> str | None: ...

    def embed(self, image: np.ndarray, faces: Faces) -> np.ndarray:
        """``(n, d)`` embeddings of ``faces`` in RGB ``image`` (models with an embedding key)."""
        ...

    def predict_faces(self, image: np.ndarray, faces: Faces, top_k: int = 3) -> list[Prediction]:
        """One prediction per face of ``faces`` (in ``image``'s pixels). A model with an embedding
        key reads ``faces.embeddings[key]`` when present and embeds otherwise."""
        ...


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
