"""Who a track is: a quality-weighted vote over its classifications, and the appearance gate that
splits a track whose face became someone else's.

* :class:`LabelVote`: a track's label is the label with the largest summed weight over all of
  its classifications, each weighted by :func:`face_quality` (size, sharpness, detection score):
  one blurred, small or half-turned face cannot rename a track that was recognised on many good
  faces. The confidence is the winner's share of the weight; the votes are the classifications.
* :class:`AppearanceHistory`: the last few identity embeddings of a track (only where a model
  already computes them: galleries and models on an identity embedder, those whose registry
  entry has a ``threshold``). When a new face's distance to every embedding in the history
  exceeds the embedder's calibrated threshold (:func:`identity_embedders`), the face is someone
  else and the track is split.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from faceforge.types import Prediction


def face_quality(size: float, sharpness: float, score: float) -> float:
    """How much one face's classification counts in a vote, in (0, 1].

    ``size`` (geometric mean of the box sides, pixels) counts fully from 80 px; ``sharpness``
    (:func:`faceforge.live.pipeline.sharpness`) fully from 150 (a sharp face; motion blur gives
    tens), under a square root; ``score`` is the detector's confidence.
    """
    s = min(1.0, max(float(size), 1.0) / 80.0)
    sh = min(1.0, max(float(sharpness), 1.0) / 150.0) ** 0.5
    return float(max(1e-3, s * sh * min(1.0, max(float(score), 0.05))))


class LabelVote:
    """A track's label for one classification model: the quality-weighted vote.

    Ties keep the label shown (a new label must win outright).

    Attributes:
        weights: label -> summed weight. votes: classifications counted. label: the winner.
    """

    def __init__(self) -> None:
        self.weights: dict[str, float] = {}
        self.votes = 0
        self.label: str | None = None

    @property
    def confidence(self) -> float:
        """The winner's share of the weight (0.0 before the first vote)."""
        total = sum(self.weights.values())
        return self.weights.get(self.label, 0.0) / total if self.label is not None and total > 0 else 0.0

    def update(self, prediction: Prediction, weight: float = 1.0) -> Prediction:
        """Count one classification with ``weight``; return the vote as a prediction.

        The returned prediction's ``score`` is the vote's confidence and ``top_k`` lists each
        label's share; ``known_score``, ``distance``, ``threshold`` and ``far`` are the newest face's.
        """
        w = max(float(weight), 1e-6)
        self.weights[prediction.label] = self.weights.get(prediction.label, 0.0) + w
        self.votes += 1
        best = max(self.weights, key=self.weights.__getitem__)
        if self.label is None or self.weights[best] > self.weights.get(self.label, 0.0):
            self.label = best
        total = sum(self.weights.values())
        ranked = sorted(((lab, v / total) for lab, v in self.weights.items()), key=lambda kv: -kv[1])
        return Prediction(self.label, self.weights[self.label] / total, ranked[: max(1, len(prediction.top_k))],
                          prediction.known_score, distance=prediction.distance, threshold=prediction.threshold,
                          far=prediction.far)


@dataclass(frozen=True)
class IdentityMetric:
    """An identity embedder's same-person test: distance function and calibrated threshold."""

    embedder: str
    threshold: float
    distance: Callable[[np.ndarray, np.ndarray], np.ndarray]


def euclidean_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.atleast_2d(a) - np.atleast_2d(b), axis=1)


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    na = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return 1.0 - (a * b).sum(1) / np.maximum(na, 1e-12)


class AppearanceHistory:
    """The last ``size`` identity embeddings of one track.

    Args:
        metric: the embedder's :class:`IdentityMetric`.
        size: embeddings kept.
    """

    def __init__(self, metric: IdentityMetric, size: int = 8) -> None:
        self.metric = metric
        self.embeddings: deque[np.ndarray] = deque(maxlen=int(size))

    def distance(self, embedding: np.ndarray) -> float | None:
        """The distance of ``embedding`` to the nearest embedding kept (None: none kept yet)."""
        if not self.embeddings:
            return None
        hist = np.stack(list(self.embeddings))
        return float(self.metric.distance(np.repeat(embedding[None], len(hist), 0), hist).min())

    def is_other(self, embedding: np.ndarray) -> bool:
        """Whether ``embedding`` is another person than every face kept (beyond the threshold)."""
        d = self.distance(embedding)
        return d is not None and d > self.metric.threshold

    def add(self, embedding: np.ndarray) -> None:
        """Keep ``embedding`` (the oldest one goes when full)."""
        self.embeddings.append(np.asarray(embedding, np.float32).copy())


__all__ = ["AppearanceHistory", "IdentityMetric", "LabelVote", "cosine_distance", "euclidean_distance", "face_quality"]
