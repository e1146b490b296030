"""Linear heads: multinomial logistic regression (the default) and a calibrated linear SVM.

Both L2-normalise the embeddings, standardise each feature (mean and scale stored), and keep
``W (d, m)`` and ``b (m,)``: prediction is ``softmax(a * (Z @ W + b))`` in numpy, with ``a = 1``
for logistic regression and a fitted inverse temperature for the SVM.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from faceforge.heads.base import ClassifierHead, internal_folds, softmax
from faceforge.heads.checks import check_number

#: C values tried by ``C="auto"`` (standardised features; multiplied by d without standardising).
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
#: C values tried by the SVM's ``C="auto"``.
SVM_C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)
#: Range of the SVM's inverse temperature.
TEMPERATURE_RANGE = (1e-3, 1e4)


def _weighted_nll(P: np.ndarray, yc: np.ndarray, w: np.ndarray) -> float:
    from sklearn.metrics import log_loss

    return float(log_loss(yc, P, sample_weight=w, labels=np.arange(P.shape[1])))


def _as_full(coef: np.ndarray, intercept: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's coefficients as ``W (d, m)``, ``b (m,)``; binary ``f`` becomes ``[-f/2, f/2]``."""
    if m == 2 and coef.shape[0] == 1:
        w = coef[0] / 2
        return np.stack([-w, w], axis=1), np.array([-intercept[0] / 2, intercept[0] / 2])
    return coef.T.copy(), intercept.copy()


#: ``C="auto"`` searches on at most this many rows (a stratified sample of whole photos): on
#: FER2013's 28,709 images x 1280 features the full search (7 C values x 3 folds) took longer
#: than half an hour on 2 cores; the final fit still uses every row.
TUNE_ROWS = 4000
#: scikit-learn's guess that labels with few photos per class are numbers: many people with 2-3
#: photos each are a classification, and say so themselves (the training report's problems)
FEW_PER_CLASS = r"The number of unique classes is greater than 50% of the number of samples"


def tuning_rows(yc: np.ndarray, groups: np.ndarray | None, seed: int, limit: int = TUNE_ROWS) -> np.ndarray:
    """Row indices for hyper-parameter search: all rows, or about ``limit`` of them.

    The sample takes the same share of every class's groups (photos; at least 3 each), and all
    rows (augmented copies) of a chosen photo.
    """
    n = len(yc)
    if n <= limit:
        return np.arange(n)
    g = np.arange(n) if groups is None else np.asarray(groups)
    uniq, first, inv = np.unique(g, return_index=True, return_inverse=True)
    cls = yc[first]
    rng = np.random.default_rng(seed)
    share = limit / n
    keep = np.zeros(len(uniq), bool)
    for c in np.unique(cls):
        members = np.flatnonzero(cls == c)
        take = min(len(members), max(3, int(round(share * len(members)))))
        keep[rng.choice(members, take, replace=False)] = True
    return np.flatnonzero(keep[inv])


class _LinearHead(ClassifierHead):
    required_arrays: tuple[str, ...] = ("W", "b")
    grid: tuple[float, ...] = C_GRID

    C: Any
    max_iter: Any
    standardize: Any

    def _check_params(self) -> None:
        super()._check_params()
        check_number("C", self.C, auto=True)
        check_number("max_iter", self.max_iter, integer=True)

    def _grid(self, d: int) -> tuple[float, ...]:
        return self.grid if self.standardize else tuple(c * d for c in self.grid)

    def _decision(self, Z: np.ndarray) -> np.ndarray:
        return Z @ self.arrays_["W"] + self.arrays_["b"]


class LogRegHead(_LinearHead):
    """Multinomial logistic regression (the default head).

    Args:
        C: inverse regularisation strength on standardised features, or ``"auto"`` (default):
            chosen from :data:`C_GRID` by the lowest class-weighted log loss in an internal
            3-fold split (falls back to 0.1 when a class has fewer than 2 images). Larger C
            gives more confident probabilities.
        normalize: L2-normalise embeddings first (default True).
        standardize: scale each feature to zero mean / unit variance (default True).
        max_iter: lbfgs iterations (default 1000).
        class_weight: ``"balanced"`` (default), ``None`` or a dict class name -> weight.
        seed: random seed.
    """

    kind = "logreg"

    def __init__(self, *, C: Any = "auto", normalize: bool = True, standardize: bool = True, max_iter: int = 1000,
                 class_weight: Any = "balanced", seed: int = 0) -> None:
        self.C = C
        self.normalize = normalize
        self.standardize = standardize
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.seed = seed

    def _fit_one(self, Z: np.ndarray, yc: np.ndarray, w: np.ndarray, C: float):
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        est = LogisticRegression(C=C, max_iter=int(self.max_iter), random_state=int(self.seed))
        with warnings.catch_warnings():
            # the tuning fits stop at max_iter on purpose; fit_info_ records convergence of the final fit
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.filterwarnings("ignore", message=FEW_PER_CLASS, category=UserWarning)
            est.fit(Z, yc, sample_weight=w)
        return est

    def _fit(self, Z, yc, w, cw, groups) -> None:
        m = int(yc.max()) + 1
        C = self.C
        info: dict[str, Any] = {}
        if C == "auto":
            grid = self._grid(Z.shape[1])
            rows = tuning_rows(yc, groups, int(self.seed))
            Zt, yt, wt = Z[rows], yc[rows], w[rows]
            folds = internal_folds(yt, None if groups is None else groups[rows], int(self.seed))
            if len(rows) < len(yc):
                info["C_search_rows"] = int(len(rows))
            if folds:
                losses = []
                for c in grid:
                    P = np.zeros((len(yt), m))
                    for tr, va in folds:
                        est = self._fit_one(Zt[tr], yt[tr], wt[tr], c)
                        P[np.ix_(va, est.classes_)] = est.predict_proba(Zt[va])
                    losses.append(_weighted_nll(P, yt, wt))
                C = float(grid[int(np.argmin(losses))])
                info["cv_log_loss"] = {f"{c:g}": round(v, 5) for c, v in zip(grid, losses)}
            else:
                C = float(grid[2])
        est = self._fit_one(Z, yc, w, float(C))
        W, b = _as_full(est.coef_, est.intercept_, m)
        self.arrays_.update(W=W, b=b)
        self.fit_info_ = {**info, "C": float(C), "n_iter": int(np.max(est.n_iter_)),
                          "converged": bool(np.max(est.n_iter_) < int(self.max_iter))}

    def _output(self, Z: np.ndarray) -> np.ndarray:
        return softmax(self._decision(Z))


def fit_temperature(D: np.ndarray, yc: np.ndarray, w: np.ndarray) -> float:
    """Inverse temperature ``a`` minimising the weighted log loss of ``softmax(a * D)``.

    Args:
        D: ``(n, m)`` decision values.
        yc: ``(n,)`` true compact labels.
        w: ``(n,)`` sample weights.

    Returns:
        ``a`` in :data:`TEMPERATURE_RANGE` (bounded scalar minimisation over ``log a`` with
        :func:`scipy.optimize.minimize_scalar`; the loss is convex in ``a``).

    The targets are smoothed as in Platt scaling: the true class gets ``(N + 1) / (N + 2)``
    (``N``: its number of samples), so separable data give confident, not infinite, scores.
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    m = D.shape[1]
    counts = np.bincount(yc, minlength=m).astype(np.float64)
    eps = 1.0 / (counts[yc] + 2.0)
    T = np.repeat((eps / (m - 1))[:, None], m, axis=1)
    T[np.arange(len(yc)), yc] = 1.0 - eps

    def loss(log_a: float) -> float:
        logp = log_softmax(np.exp(log_a) * D, axis=1)
        return float(-np.sum(w * np.sum(T * logp, axis=1)) / np.sum(w))

    lo, hi = np.log(TEMPERATURE_RANGE[0]), np.log(TEMPERATURE_RANGE[1])
    res = minimize_scalar(loss, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(res.x))


class SVMHead(_LinearHead):
    """Linear SVM (one-vs-rest, squared hinge) with probabilities from a fitted temperature.

    Probabilities are ``softmax(a * decision)``; ``a`` is fitted (see :func:`fit_temperature`)
    on out-of-fold decision values of an internal 3-fold split (on the training decisions when
    a class has fewer than 2 images). For two classes this is Platt scaling without bias.

    Args:
        C: inverse regularisation strength on standardised features (default 0.003), or
            ``"auto"`` (chosen from :data:`SVM_C_GRID` by out-of-fold log loss).
        normalize, standardize: as for logreg (default True).
        max_iter: liblinear iterations (default 5000).
        class_weight: ``"balanced"`` (default), ``None`` or a dict class name -> weight.
        seed: random seed.
    """

    kind = "svm"
    required_arrays = ("W", "b", "temperature")
    grid = SVM_C_GRID

    def __init__(self, *, C: Any = 0.003, normalize: bool = True, standardize: bool = True, max_iter: int = 5000,
                 class_weight: Any = "balanced", seed: int = 0) -> None:
        self.C = C
        self.normalize = normalize
        self.standardize = standardize
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.seed = seed

    def _fit_one(self, Z, yc, w, C, m):
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.svm import LinearSVC

        est = LinearSVC(C=C, max_iter=int(self.max_iter), random_state=int(self.seed))
        with warnings.catch_warnings():
            # liblinear often stops at max_iter on standardised embeddings; the temperature fit calibrates anyway
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.filterwarnings("ignore", message=FEW_PER_CLASS, category=UserWarning)
            est.fit(Z, yc, sample_weight=w)
        W, b = _as_full(est.coef_, est.intercept_, len(est.classes_))
        return W, b, est.classes_, est.n_iter_

    def _oof(self, Z, yc, w, C, m, folds) -> np.ndarray:
        D = np.full((len(yc), m), -1e3)  # a class missing from a fold's training side scores very low
        for tr, va in folds:
            W, b, cl, _ = self._fit_one(Z[tr], yc[tr], w[tr], C, m)
            D[np.ix_(va, cl)] = Z[va] @ W + b
        return D

    def _fit(self, Z, yc, w, cw, groups) -> None:
        m = int(yc.max()) + 1
        folds = internal_folds(yc, groups, int(self.seed))
        C = self.C
        info: dict[str, Any] = {}
        oof = None
        if C == "auto":
            grid = self._grid(Z.shape[1])
            if folds:
                tried = []
                for c in grid:
                    D = self._oof(Z, yc, w, c, m, folds)
                    a = fit_temperature(D, yc, w)
                    tried.append((_weighted_nll(softmax(a * D), yc, w), c, D))
                losses = [t[0] for t in tried]
                _, C, oof = tried[int(np.argmin(losses))]  # the first of equal losses
                info["cv_log_loss"] = {f"{c:g}": round(v, 5) for c, v in zip(grid, losses)}
            else:
                C = 0.003 if self.standardize else 0.003 * Z.shape[1]
        C = float(C)
        if oof is None and folds:
            oof = self._oof(Z, yc, w, C, m, folds)
        W, b, _, n_iter = self._fit_one(Z, yc, w, C, m)
        D = oof if oof is not None else Z @ W + b
        a = fit_temperature(D, yc, w)
        self.arrays_.update(W=W, b=b, temperature=np.array([a]))
        self.fit_info_ = {**info, "C": C, "inverse_temperature": a,
                          "calibration": "out-of-fold" if oof is not None else "training data",
                          "n_iter": int(n_iter)}

    def _output(self, Z: np.ndarray) -> np.ndarray:
        return softmax(float(self.arrays_["temperature"][0]) * self._decision(Z))
