"""k-nearest-neighbours head: stores the training embeddings, votes by distance.

No scikit-learn at all: the head is its stored embeddings. Each of the ``k`` nearest training
embeddings votes for its class with weight ``class_weight / (distance + 1e-6)``; probabilities
are the normalised votes, mixed with ``smoothing`` of a uniform distribution so no class gets
probability 0 (finite log loss).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from faceforge.errors import ParameterError
from faceforge.heads.base import ClassifierHead
from faceforge.heads.checks import check_choice, check_number

#: neighbour counts tried by ``n_neighbors="auto"``.
K_GRID = (1, 3, 5, 7, 10, 15, 20, 30, 50)
#: the most training rows used as queries when tuning ``n_neighbors``.
_TUNE_QUERIES = 2000
_BLOCK_ELEMENTS = 4_000_000


def _distances(Q: np.ndarray, G: np.ndarray, metric: str) -> np.ndarray:
    if metric == "cosine":
        return 1.0 - Q @ G.T
    sq = np.sum(Q**2, axis=1)[:, None] + np.sum(G**2, axis=1)[None, :] - 2.0 * (Q @ G.T)
    return np.sqrt(np.maximum(sq, 0.0))


def _chunk(n_gallery: int) -> int:
    """Query rows per block so one block of distances stays near 32 MB."""
    return max(1, _BLOCK_ELEMENTS // max(n_gallery, 1))


def _neighbours(D: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smallest distances of each row of ``D``, nearest first: ``(dist, column)``."""
    k = min(k, D.shape[1])
    idx = np.argpartition(D, k - 1, axis=1)[:, :k] if k < D.shape[1] else np.tile(np.arange(D.shape[1]), (len(D), 1))
    d = np.take_along_axis(D, idx, axis=1)
    order = np.argsort(d, axis=1, kind="stable")
    return np.take_along_axis(d, order, axis=1), np.take_along_axis(idx, order, axis=1)


def _vote(d: np.ndarray, ny: np.ndarray, cw: np.ndarray, m: int, smoothing: float) -> np.ndarray:
    """Probabilities ``(n, m)`` from neighbour distances ``d (n, k)`` and their classes ``ny``."""
    n, k = d.shape
    wts = np.where(np.isfinite(d), cw[ny] / (np.maximum(d, 0.0) + 1e-6), 0.0)
    votes = np.zeros((n, m))
    np.add.at(votes, (np.repeat(np.arange(n), k), ny.ravel()), wts.ravel())
    total = votes.sum(axis=1, keepdims=True)
    P = np.divide(votes, total, out=np.full_like(votes, 1.0 / m), where=total > 0)
    return (1.0 - smoothing) * P + smoothing / m


class KNNHead(ClassifierHead):
    """Distance-weighted k-nearest neighbours.

    Args:
        n_neighbors: ``k``, or ``"auto"`` (default): chosen from :data:`K_GRID` by
            leave-one-out on the training set (neighbours from the same group excluded), highest
            class-weighted accuracy, ties broken by log loss.
        metric: ``"cosine"`` (default) or ``"euclidean"``.
        normalize: L2-normalise embeddings first (default True; cosine always normalises).
        smoothing: weight of the uniform distribution mixed into the votes (default 0.01).
        class_weight: ``"balanced"`` (default: rare classes' votes count more), ``None`` or a
            dict class name -> weight; it scales each neighbour's vote.
        seed: random seed (which rows tune ``n_neighbors`` on large sets).
    """

    kind = "knn"
    required_arrays = ("gallery", "gallery_y", "class_weight", "n_neighbors")
    uses_standardize = False

    def __init__(self, *, n_neighbors: Any = "auto", metric: str = "cosine", normalize: bool = True,
                 smoothing: float = 0.01, class_weight: Any = "balanced", seed: int = 0) -> None:
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.normalize = normalize
        self.smoothing = smoothing
        self.class_weight = class_weight
        self.seed = seed

    def _check_params(self) -> None:
        super()._check_params()
        check_number("n_neighbors", self.n_neighbors, integer=True, auto=True)
        check_choice("metric", self.metric, ("cosine", "euclidean"))
        s = self.smoothing
        if not isinstance(s, (int, float)) or isinstance(s, bool) or not 0 <= s < 1:
            raise ParameterError(f"smoothing must be a number in [0, 1), but got {s!r}.")

    def _normalizes(self) -> bool:
        return self.metric == "cosine" or bool(self.normalize)

    def _fit(self, Z, yc, w, cw, groups) -> None:
        m = int(yc.max()) + 1
        k = self.n_neighbors
        info: dict[str, Any] = {}
        if k == "auto":
            k, info = self._tune(Z, yc, cw, groups, m)
        k = int(min(k, len(Z)))
        self.arrays_.update(gallery=Z.astype(np.float64), gallery_y=yc.astype(np.int64), class_weight=cw,
                           n_neighbors=np.array([k], dtype=np.int64))
        self.fit_info_ = {**info, "n_neighbors": k}

    def _tune(self, Z, yc, cw, groups, m) -> tuple[int, dict[str, Any]]:
        n = len(Z)
        rng = np.random.default_rng(int(self.seed))
        q = np.sort(rng.choice(n, _TUNE_QUERIES, replace=False)) if n > _TUNE_QUERIES else np.arange(n)
        kmax = min(max(K_GRID), n - 1)
        dist, cols = [], []
        step = _chunk(n)
        for s in range(0, len(q), step):
            qs = q[s:s + step]
            D = _distances(Z[qs], Z, self.metric)
            D[np.arange(len(qs)), qs] = np.inf  # leave one out
            if groups is not None:
                D[groups[qs][:, None] == groups[None, :]] = np.inf  # and its augmented copies
            d, c = _neighbours(D, kmax)
            dist.append(d)
            cols.append(c)
        d, ny = np.concatenate(dist), yc[np.concatenate(cols)]
        usable = int(np.isfinite(d).sum(axis=1).min())
        cands = [k for k in K_GRID if k <= max(1, usable)]
        w = cw[yc[q]]
        scores = []
        for k in cands:
            P = _vote(d[:, :k], ny[:, :k], cw, m, float(self.smoothing))
            acc = float(np.sum(w * (P.argmax(1) == yc[q])) / w.sum())
            ll = float(np.sum(w * -np.log(np.clip(P[np.arange(len(q)), yc[q]], 1e-15, 1))) / w.sum())
            scores.append((-acc, ll))
        best = min(range(len(cands)), key=lambda i: scores[i])
        return cands[best], {"loo_accuracy": {str(k): round(-s[0], 5) for k, s in zip(cands, scores)}}

    def _output(self, Z: np.ndarray) -> np.ndarray:
        G, gy, cw = self.arrays_["gallery"], self.arrays_["gallery_y"], self.arrays_["class_weight"]
        m = len(self.arrays_["present"])
        k = int(self.arrays_["n_neighbors"][0])
        out = np.empty((len(Z), m))
        step = _chunk(len(G))
        for s in range(0, len(Z), step):
            d, c = _neighbours(_distances(Z[s:s + step], G, self.metric), k)
            out[s:s + step] = _vote(d, gy[c], cw, m, float(self.smoothing))
        return out
