"""The head interface (a scikit-learn estimator), class weights and preprocessing shared by every head.

A head is a small model on top of face embeddings. It follows scikit-learn's estimator contract:
every parameter is an explicit keyword of ``__init__``, stored unchanged and checked by ``fit``;
what fitting learns ends in ``_``. So :func:`sklearn.base.clone`, ``get_params`` /
``set_params`` and :class:`~sklearn.model_selection.GridSearchCV` work on heads. Fitting uses
scikit-learn (the estimators are imported inside ``fit``); prediction is numpy only, from plain
arrays that :meth:`Head.to_arrays` exports and :meth:`Head.from_arrays` reads back (no pickle).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Iterator, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from faceforge.errors import BundleError, NotFittedError, ParameterError
from faceforge.heads.checks import (  # noqa: F401  (check_groups, encode_labels: re-exported)
    _check_len,
    check_class_weight,
    check_flag,
    check_groups,
    check_seed,
    check_X,
    encode_labels,
)
from faceforge.heads.splits import internal_folds  # noqa: F401  (re-exported for the heads)

#: Classification heads, best default first.
HEADS = ("logreg", "svm", "knn", "mlp")
#: Regression heads (numeric labels such as age).
REGRESSORS = ("ridge",)
TASKS = ("classification", "regression")


#: Version of the (params, arrays) layout written by :meth:`Head.to_arrays`.
HEAD_FORMAT = 1


# -- numerics shared by heads ----------------------------------------------------------------

def l2_normalize(X: np.ndarray) -> np.ndarray:
    """Rows of ``X (n, d)`` scaled to unit length (zero rows stay zero)."""
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def softmax(Z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``Z (n, k)``."""
    Z = Z - Z.max(axis=1, keepdims=True)
    E = np.exp(Z)
    return E / E.sum(axis=1, keepdims=True)


def class_weights(yc: np.ndarray, m: int, class_weight: Any, names: Sequence[str]) -> np.ndarray:
    """Per-class weights ``(m,)`` for compact labels ``yc``, scaled so the mean sample weight is 1.

    Args:
        yc: ``(n,)`` compact labels in ``0..m-1``.
        m: number of classes present.
        class_weight: ``"balanced"`` (weight ``n / (m * count)``), ``None`` (all 1), or a dict
            class name -> weight.
        names: the name of each compact class.

    Returns:
        ``(m,)`` weights.
    """
    counts = np.bincount(yc, minlength=m).astype(np.float64)
    if class_weight is None:
        cw = np.ones(m)
    elif class_weight == "balanced":
        cw = len(yc) / (m * np.maximum(counts, 1))
    else:
        cw = np.array([float(class_weight.get(str(nm), 1.0)) for nm in names])
    mean = float((cw[yc]).mean())
    return cw / mean if mean > 0 else cw


@contextlib.contextmanager
def fit_threads() -> Iterator[None]:
    """Run scikit-learn fits with single-threaded BLAS.

    Heads are small; two BLAS thread pools (numpy's and scipy's) competing for a few cores made
    lbfgs fits ~20x slower on a 2-core machine.
    """
    import scipy.linalg  # noqa: F401  (load scipy's BLAS now, so the limit applies to it too)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.bool_, np.integer, np.floating)):
        return v.item()
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    return v


# -- the head base classes -------------------------------------------------------------------

class Head(BaseEstimator):
    """Base class of every head: a scikit-learn estimator that predicts with numpy from arrays.

    Subclasses list every parameter as a keyword of ``__init__`` (stored unchanged) and check
    them in :meth:`_check_params`, which :meth:`fit` (and :func:`make_head`) call.

    Attributes:
        kind: the head's name (``"logreg"``, ``"svm"``, ``"knn"``, ``"mlp"``, ``"ridge"``).
        task: ``"classification"`` or ``"regression"``.
        classes_: class names (``[]`` for regression); set by :meth:`fit`.
        n_features_in_: embedding width seen in :meth:`fit` (also ``n_features_``).
        arrays_: the fitted numpy arrays (what :meth:`to_arrays` exports).
        fit_info_: what fitting chose and measured (seconds, tuned hyper-parameters, ...).
    """

    kind = ""
    task = "classification"
    #: arrays every fitted head of this kind holds (besides the shared ones)
    required_arrays: tuple[str, ...] = ()
    #: whether features can be standardised (the ``standardize`` parameter exists)
    uses_standardize = True

    class_weight: Any
    seed: Any
    n_features_in_: int

    # -- to implement ------------------------------------------------------------------------
    def _check_params(self) -> None:
        """Raise :class:`ParameterError` for a bad parameter (subclasses extend this)."""
        check_class_weight(self.class_weight)
        check_seed(self.seed)
        for flag in ("normalize", "standardize"):
            if hasattr(self, flag):
                check_flag(flag, getattr(self, flag))

    def _fit(self, Z: np.ndarray, yc: np.ndarray, w: np.ndarray, cw: np.ndarray,
             groups: np.ndarray | None) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _output(self, Z: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """Compact probabilities ``(n, m)`` (classification) or values ``(n,)`` (regression)."""
        raise NotImplementedError

    def _normalizes(self) -> bool:
        return bool(getattr(self, "normalize", True))

    def _standardizes(self) -> bool:
        return self.uses_standardize and bool(getattr(self, "standardize", False))

    # -- public API ----------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`from_arrays`) has run."""
        return hasattr(self, "n_features_in_")

    def __sklearn_is_fitted__(self) -> bool:
        return self.fitted

    @property
    def n_features_(self) -> int | None:
        """Embedding width seen in :meth:`fit` (``None`` before): scikit-learn's ``n_features_in_``."""
        return getattr(self, "n_features_in_", None)

    def fit(self, X: Any, y: Any, *, classes: Sequence[str] | None = None, groups: Any = None) -> "Head":
        """Check the parameters and train the head.

        Args:
            X: ``(n, d)`` embeddings.
            y: ``(n,)`` class indices or names (classification) / numbers (regression).
            classes: class names for integer ``y`` (default ``"0"``, ``"1"``, ...). Classes with no
                sample get probability 0.
            groups: ``(n,)`` source image of each row; rows of one group never land on both
                sides of the internal tuning splits (augmented copies).

        Returns:
            ``self``.

        Raises:
            ParameterError: bad parameters, shapes or labels, or fewer than 2 classes.
        """
        self._check_params()
        if hasattr(self, "n_features_in_"):
            del self.n_features_in_  # a failed refit leaves the head unfitted, not half-fitted
        cwd = check_class_weight(self.class_weight)
        X = check_X(X, min_rows=2)
        groups = check_groups(groups, len(X))
        t0 = time.perf_counter()
        state: dict[str, np.ndarray] = {}
        if self.task == "classification":
            yi, names = encode_labels(y, classes)
            _check_len(X, yi)
            present = np.unique(yi)
            if len(present) < 2:
                raise ParameterError(
                    f"a classifier needs at least 2 classes, but y holds only {[names[i] for i in present]}. "
                    f"Fix: add a folder of other faces; for 'me / not me' use a 'not_me' class of other "
                    f"people's faces (and OpenSet to flag strangers)."
                )
            yc = np.searchsorted(present, yi)
            m = len(present)
            cw = class_weights(yc, m, cwd, [names[i] for i in present])
            w = cw[yc]
            classes_ = list(names)
            state["present"] = present.astype(np.int64)
        else:
            yv = np.asarray(y)
            if yv.ndim != 1 or not (np.issubdtype(yv.dtype, np.number)) or yv.dtype == bool:
                raise ParameterError(
                    f"a regression head needs a 1-D array of numbers, but got shape {yv.shape} dtype {yv.dtype}. "
                    f"Fix: pass numeric labels (e.g. ages), or use task='classification'."
                )
            yc = yv.astype(np.float64)
            _check_len(X, yc)
            if not np.isfinite(yc).all():
                raise ParameterError("y must be finite, but holds NaN or infinity. Fix: drop those samples.")
            if np.ptp(yc) == 0:
                raise ParameterError(f"y is constant ({yc[0]}); there is nothing to learn. Fix: check the labels.")
            w = np.ones(len(yc))
            cw = np.ones(1)
            classes_ = []
        self.arrays_ = state
        self.classes_ = classes_
        self.fit_info_: dict[str, Any] = {}
        Z = self._preprocess_fit(X)
        with fit_threads():
            self._fit(Z, yc, w, cw, groups)
        self.n_features_in_ = int(X.shape[1])
        self.fit_info_ = {**self.fit_info_, "n_samples": int(len(X)),
                          "seconds": round(time.perf_counter() - t0, 4)}
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (numpy only).

        Args:
            X: ``(n, d)`` embeddings.

        Returns:
            ``(n, k) float64`` probabilities over :attr:`classes_` (rows sum to 1).

        Raises:
            ParameterError: a regression head, or embeddings of the wrong shape.
            NotFittedError: the head is not trained.
        """
        if self.task != "classification":
            raise ParameterError(f"{self.kind!r} is a regression head; it has no probabilities. Use predict().")
        Z = self._prepare(X)
        out = np.zeros((len(Z), len(self.classes_)))
        if len(Z):
            out[:, self.arrays_["present"]] = self._output(Z)
        return out

    def predict(self, X: Any) -> np.ndarray:
        """Predictions: ``(n,) int64`` class indices into :attr:`classes_`, or ``(n,) float64`` values."""
        if self.task == "classification":
            return np.argmax(self.predict_proba(X), axis=1).astype(np.int64)
        Z = self._prepare(X)
        return self._output(Z) if len(Z) else np.zeros(0)

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Export the fitted head as ``(JSON-ready params, numpy arrays)`` (see :meth:`from_arrays`)."""
        self._require_fitted()
        hp = {k: _jsonable(v) for k, v in self.get_params(deep=False).items()}
        hp["class_weight"] = check_class_weight(self.class_weight)
        hp["seed"] = int(self.seed)
        params = {"head_format": HEAD_FORMAT, "kind": self.kind, "task": self.task,
                  "params": {"kind": self.kind, "task": self.task, **hp},
                  "classes": list(self.classes_), "n_features": self.n_features_in_, "fit_info": dict(self.fit_info_)}
        return params, {k: np.array(v, copy=True) for k, v in self.arrays_.items()}

    @classmethod
    def from_arrays(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> "Head":
        """Rebuild a fitted head from :meth:`to_arrays` output; predictions are identical.

        Called on :class:`Head` itself it builds the right subclass from ``params["kind"]``.

        Raises:
            BundleError: the params or arrays are incomplete, invalid, or from a newer format.
        """
        try:
            kind = params["kind"]
            hp = dict(params["params"])
            n_features = int(params["n_features"])
            classes = [str(c) for c in params["classes"]]
        except (KeyError, TypeError, ValueError) as e:
            raise BundleError(f"head parameters are incomplete ({e!r}); the model file is damaged. Retrain it.") from e
        if int(params.get("head_format", 1)) > HEAD_FORMAT:
            raise BundleError(
                f"the head uses layout {params['head_format']}, newer than this faceforge reads ({HEAD_FORMAT}). "
                f"Fix: upgrade faceforge."
            )
        try:
            klass = head_class(kind) if cls in (Head, ClassifierHead, RegressorHead) or cls.kind != kind else cls
        except ParameterError as e:
            raise BundleError(f"the model file holds an unknown head {kind!r}. Fix: upgrade faceforge.") from e
        for k in ("kind", "task"):
            hp.pop(k, None)
        unknown = sorted(set(hp) - set(klass._get_param_names()))
        if unknown:
            raise BundleError(f"head {kind!r} has no parameter(s) {unknown}; the model file is from another "
                              f"faceforge. Fix: upgrade faceforge, or retrain the model.")
        head = klass(**hp)
        try:
            head._check_params()
        except ParameterError as e:
            raise BundleError(f"head {kind!r} in the model file has a bad parameter: {e}") from e
        need = set(klass.required_arrays) | ({"present"} if klass.task == "classification" else set())
        if head._standardizes():
            need |= {"mean", "scale"}
        missing = sorted(need - set(arrays))
        if missing:
            raise BundleError(f"head {kind!r} is missing arrays {missing}; the model file is damaged. Retrain it.")
        head.arrays_ = {k: np.asarray(v) for k, v in arrays.items()}
        head.classes_ = classes
        head.n_features_in_ = n_features
        head.fit_info_ = dict(params.get("fit_info", {}))
        return head

    # -- helpers ---------------------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if not self.fitted:
            raise NotFittedError(
                f"this {self.kind!r} head is not trained yet. Fix: call fit(X, y) first, or load a trained model."
            )

    def _prepare(self, X: Any) -> np.ndarray:
        self._require_fitted()
        X = check_X(X, self.n_features_in_)
        return self._preprocess(X)

    def _preprocess_fit(self, X: np.ndarray) -> np.ndarray:
        if self._normalizes():
            X = l2_normalize(X)
        if self._standardizes():
            mean = X.mean(axis=0)
            scale = X.std(axis=0)
            scale[scale < 1e-12] = 1.0
            self.arrays_["mean"], self.arrays_["scale"] = mean, scale
        return self._preprocess(X, normalized=True)

    def _preprocess(self, X: np.ndarray, normalized: bool = False) -> np.ndarray:
        if not normalized and self._normalizes():
            X = l2_normalize(X)
        if self._standardizes():
            X = (X - self.arrays_["mean"]) / self.arrays_["scale"]
        return X


class ClassifierHead(ClassifierMixin, Head):
    """Base of the classification heads (scikit-learn classifier: ``score`` is accuracy)."""

    task = "classification"

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy on ``X`` against ``y`` (class indices, or names from :attr:`classes_`)."""
        from sklearn.metrics import accuracy_score

        self._require_fitted()
        yi, _ = encode_labels(y, self.classes_)
        return float(accuracy_score(yi, self.predict(X), sample_weight=sample_weight))


class RegressorHead(RegressorMixin, Head):
    """Base of the regression heads (scikit-learn regressor: ``score`` is R²)."""

    task = "regression"


def head_class(kind: str) -> type[Head]:
    """The :class:`Head` subclass for a kind name (``"logreg"``, ``"svm"``, ``"knn"``, ``"mlp"``, ``"ridge"``),
    from its registry entry (``faceforge.registry``, task ``"head"``).

    Raises:
        ParameterError: an unknown kind.
    """
    from faceforge.registry import model_class, model_names

    if kind not in model_names("head"):
        raise ParameterError(f"Unknown head {kind!r}. Choose one of: {', '.join(HEADS + REGRESSORS)}.")
    return model_class(kind, "head")


def make_head(kind: str = "auto", task: str = "classification", *, class_weight: Any = "balanced",
              seed: int = 0, **params: Any) -> Head:
    """Build an unfitted head, with its parameters checked now (not only when fitting).

    Args:
        kind: ``"logreg"`` (default for classification), ``"svm"``, ``"knn"``, ``"mlp"``, or
            ``"ridge"`` (regression); ``"auto"`` picks the default for ``task``.
        task: ``"classification"`` or ``"regression"``.
        class_weight: ``"balanced"`` (each class counts equally, against imbalance), ``None``,
            or a dict class name -> weight. Ignored by regression heads.
        seed: random seed; equal seeds and data give identical heads.
        **params: the head's own parameters (the keywords of its class), e.g. ``C=1.0``.

    Returns:
        The head (a scikit-learn estimator).

    Example:
        >>> head = make_head("knn", "classification", n_neighbors=3)
        >>> head.get_params()["n_neighbors"]
        3

    Raises:
        ParameterError: unknown kind, task or parameter, a bad parameter value, or a kind that
            does not fit the task.
    """
    if task not in TASKS:
        raise ParameterError(f"Unknown task {task!r}. Choose one of: {', '.join(TASKS)}.")
    valid = HEADS if task == "classification" else REGRESSORS
    if kind in (None, "auto"):
        kind = valid[0]
    if kind not in HEADS + REGRESSORS:
        raise ParameterError(f"Unknown head {kind!r}. Choose one of: {', '.join(valid)} (for task {task!r}).")
    klass = head_class(kind)
    if klass.task != task:
        raise ParameterError(
            f"Head {kind!r} is a {klass.task} head, but task is {task!r}. Choose one of: {', '.join(valid)}."
        )
    names = klass._get_param_names()
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise ParameterError(f"head {kind!r} has no parameter(s) {unknown}. Valid: {', '.join(sorted(names))}.")
    head = klass(class_weight=class_weight, seed=seed, **params)
    head._check_params()
    return head


def head_from_arrays(params: dict[str, Any], arrays: dict[str, np.ndarray]) -> Head:
    """Rebuild any fitted head from :meth:`Head.to_arrays` output."""
    return Head.from_arrays(params, arrays)
