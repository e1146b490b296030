"""The head interface, input checks, class weights and preprocessing shared by every head.

A head is a small model on top of face embeddings. It is trained with scikit-learn (imported
lazily inside :meth:`Head.fit`) and predicts with numpy only, from plain arrays that
:meth:`Head.to_arrays` exports and :meth:`Head.from_arrays` reads back (no pickle).
"""

from __future__ import annotations

import contextlib
import importlib
import time
from typing import Any, Iterator, Sequence

import numpy as np

from faceforge.errors import BundleError, NotFittedError, ParameterError

#: Classification heads, best default first.
HEADS = ("logreg", "svm", "knn", "mlp")
#: Regression heads (numeric labels such as age).
REGRESSORS = ("ridge",)
TASKS = ("classification", "regression")

#: kind -> "module:Class" (imported on first use).
_HEAD_CLASSES = {
    "logreg": "faceforge.heads.linear:LogRegHead",
    "svm": "faceforge.heads.linear:SVMHead",
    "knn": "faceforge.heads.knn:KNNHead",
    "mlp": "faceforge.heads.mlp:MLPHead",
    "ridge": "faceforge.heads.regression:RidgeHead",
}

#: Version of the (params, arrays) layout written by :meth:`Head.to_arrays`.
HEAD_FORMAT = 1


# -- input checks ---------------------------------------------------------------------------

def check_X(X: Any, n_features: int | None = None, *, name: str = "X", min_rows: int = 0) -> np.ndarray:
    """Return ``X`` as a finite ``(n, d) float64`` array, or raise a clear error.

    Args:
        X: ``(n, d)`` numeric embeddings.
        n_features: the width a fitted head expects (``None``: any).
        name: the argument's name in messages.
        min_rows: the fewest rows allowed.

    Raises:
        ParameterError: wrong type, shape, width, or non-finite values.
    """
    arr = np.asarray(X)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ParameterError(
            f"{name} must be a numeric (n, d) array of face embeddings, but got dtype {arr.dtype}. "
            f"Fix: pass the embeddings as a float array (e.g. EmbeddedDataset.X)."
        )
    if arr.ndim != 2:
        raise ParameterError(
            f"{name} must have shape (n, d): one embedding per row, but got shape {arr.shape}. "
            f"Fix: for a single embedding x use x[None, :]."
        )
    if arr.shape[1] == 0 or arr.shape[0] < min_rows:
        raise ParameterError(
            f"{name} must have at least {max(min_rows, 1)} row(s) and 1 column, but got shape {arr.shape}. "
            f"Fix: embed more images."
        )
    if n_features is not None and arr.shape[1] != n_features:
        raise ParameterError(
            f"{name} has {arr.shape[1]} columns, but this head was trained on {n_features}-D embeddings. "
            f"Fix: embed with the same embedder the model was trained with."
        )
    arr = arr.astype(np.float64, copy=False)
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ParameterError(
            f"{name} must be finite, but rows {bad[:5].tolist()}{' ...' if len(bad) > 5 else ''} hold NaN or "
            f"infinity. Fix: drop those samples (a failed embedding?)."
        )
    return arr


def _check_len(X: np.ndarray, y: np.ndarray, name: str = "y") -> None:
    if len(y) != len(X):
        raise ParameterError(
            f"X and {name} must have the same length (one label per embedding), but X has {len(X)} rows "
            f"and {name} has {len(y)}. Fix: pass matching arrays."
        )


def encode_labels(y: Any, classes: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Turn class labels into ``(n,) int64`` indices into a list of class names.

    Args:
        y: ``(n,)`` class indices (ints, as in ``EmbeddedDataset.y``) or class names (strings).
        classes: the class names. Default: ``[str(i) ...]`` for indices, the sorted names for strings.

    Returns:
        ``(indices, classes)``.

    Raises:
        ParameterError: labels that are not class labels, or not in ``classes``.
    """
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ParameterError(f"y must be a 1-D array of labels, but got shape {arr.shape}. Fix: pass y.ravel().")
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    if arr.dtype.kind in "US" or arr.dtype == object:
        names = [str(v) for v in arr.tolist()]
        cls = sorted(set(names)) if classes is None else [str(c) for c in classes]
        index = {c: i for i, c in enumerate(cls)}
        missing = sorted(set(names) - set(index))
        if missing:
            raise ParameterError(f"labels {missing[:5]} are not in classes {cls[:10]}. Fix: pass the full class list.")
        return np.array([index[v] for v in names], dtype=np.int64), cls
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ParameterError(
                "a classification head needs class labels (integers or names), but y holds non-integer "
                "numbers. Fix: use task='regression' (the 'ridge' head) for numeric targets."
            )
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ParameterError(f"y must hold class indices or names, but got dtype {arr.dtype}.")
    arr = arr.astype(np.int64)
    if len(arr) and arr.min() < 0:
        raise ParameterError(f"class indices must be >= 0, but y holds {int(arr.min())}. Fix: encode classes as 0..k-1.")
    k = int(arr.max()) + 1 if len(arr) else 0
    cls = [str(i) for i in range(k)] if classes is None else [str(c) for c in classes]
    if k > len(cls):
        raise ParameterError(
            f"y holds class index {k - 1}, but only {len(cls)} classes were given. Fix: pass every class name."
        )
    return arr, cls


def check_groups(groups: Any, n: int) -> np.ndarray | None:
    """``(n,)`` group ids (e.g. source paths; augmented copies share one) as int codes, or ``None``."""
    if groups is None:
        return None
    g = np.asarray(groups)
    if g.ndim != 1 or len(g) != n:
        raise ParameterError(
            f"groups must have one entry per sample ({n}), but got shape {g.shape}. "
            f"Fix: pass the source path of each row (EmbeddedDataset.paths)."
        )
    _, codes = np.unique(g.astype(str) if g.dtype == object else g, return_inverse=True)
    return codes.astype(np.int64)


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
    try:
        import scipy.linalg  # noqa: F401  (load scipy's BLAS now, so the limit applies to it too)
        import sklearn  # noqa: F401
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl and scipy ship with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def internal_folds(yc: np.ndarray, groups: np.ndarray | None, seed: int, max_folds: int = 3) -> list:
    """Stratified, group-aware folds for tuning inside ``fit``; ``[]`` when a class is too small."""
    from faceforge.heads.metrics import _strata, kfold

    g = np.arange(len(yc)) if groups is None else groups
    s = _strata(yc)  # classes, or quantile bins of a float (regression) target
    per_class = [len(np.unique(g[s == c])) for c in np.unique(s)]
    k = min(max_folds, min(per_class))
    if k < 2:
        return []
    return kfold(s, k=k, seed=seed, groups=groups)


# -- the head base class ---------------------------------------------------------------------

class Head:
    """Base class of every head: numpy-only prediction from arrays, scikit-learn only to fit.

    Attributes:
        kind: the head's name (``"logreg"``, ``"svm"``, ``"knn"``, ``"mlp"``, ``"ridge"``).
        task: ``"classification"`` or ``"regression"``.
        classes_: class names (``[]`` for regression); set by :meth:`fit`.
        n_features_: embedding width seen in :meth:`fit`.
        fit_info_: what fitting chose and measured (seconds, tuned hyper-parameters, ...).
    """

    kind = ""
    task = "classification"
    #: head-specific parameters and their defaults
    defaults: dict[str, Any] = {}
    #: arrays every fitted head of this kind holds (besides the shared ones)
    required_arrays: tuple[str, ...] = ()
    #: whether features are standardised (the ``standardize`` parameter exists)
    uses_standardize = True

    def __init__(self, *, class_weight: Any = "balanced", seed: int = 0, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ParameterError(
                f"head {self.kind!r} has no parameter(s) {unknown}. Valid: {sorted(self.defaults)}, "
                f"class_weight, seed."
            )
        self.params = {**self.defaults, **params}
        self.class_weight = _check_class_weight(class_weight)
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise ParameterError(f"seed must be an integer, but got {seed!r}.")
        self.seed = int(seed)
        self._check_params()
        self.classes_: list[str] = []
        self.n_features_: int | None = None
        self.fit_info_: dict[str, Any] = {}
        self._state: dict[str, np.ndarray] = {}

    # -- to implement ------------------------------------------------------------------------
    def _check_params(self) -> None:
        p = self.params
        for flag in ("normalize", "standardize"):
            if flag in p and not isinstance(p[flag], bool):
                raise ParameterError(f"{flag} must be True or False, but got {p[flag]!r}.")

    def _fit(self, Z: np.ndarray, yc: np.ndarray, w: np.ndarray, cw: np.ndarray,
             groups: np.ndarray | None) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _output(self, Z: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """Compact probabilities ``(n, m)`` (classification) or values ``(n,)`` (regression)."""
        raise NotImplementedError

    # -- public API ----------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return self.n_features_ is not None

    def get_params(self) -> dict[str, Any]:
        """JSON-ready parameters: enough to build an identical, unfitted head with :func:`make_head`."""
        return {"kind": self.kind, "task": self.task, "class_weight": self.class_weight, "seed": self.seed,
                **{k: (list(v) if isinstance(v, tuple) else v) for k, v in self.params.items()}}

    def fit(self, X: Any, y: Any, *, classes: Sequence[str] | None = None, groups: Any = None) -> "Head":
        """Train the head.

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
            ParameterError: bad shapes or labels, or fewer than 2 classes.
        """
        X = check_X(X, min_rows=2)
        groups = check_groups(groups, len(X))
        t0 = time.perf_counter()
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
            cw = class_weights(yc, m, self.class_weight, [names[i] for i in present])
            w = cw[yc]
            self.classes_ = list(names)
            self._state = {"present": present.astype(np.int64)}
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
            self.classes_ = []
            self._state = {}
        Z = self._preprocess_fit(X)
        with fit_threads():
            self._fit(Z, yc, w, cw, groups)
        self.n_features_ = int(X.shape[1])
        self.fit_info_ = {**self.fit_info_, "n_samples": int(len(X)),
                          "seconds": round(time.perf_counter() - t0, 4)}
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities.

        Args:
            X: ``(n, d)`` embeddings.

        Returns:
            ``(n, k) float64`` probabilities over :attr:`classes_` (rows sum to 1).
        """
        if self.task != "classification":
            raise ParameterError(f"{self.kind!r} is a regression head; it has no probabilities. Use predict().")
        Z = self._prepare(X)
        out = np.zeros((len(Z), len(self.classes_)))
        if len(Z):
            out[:, self._state["present"]] = self._output(Z)
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
        params = {"head_format": HEAD_FORMAT, "kind": self.kind, "task": self.task, "params": self.get_params(),
                  "classes": list(self.classes_), "n_features": self.n_features_, "fit_info": dict(self.fit_info_)}
        return params, {k: np.array(v, copy=True) for k, v in self._state.items()}

    @classmethod
    def from_arrays(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> "Head":
        """Rebuild a fitted head from :meth:`to_arrays` output; predictions are identical.

        Called on :class:`Head` itself it builds the right subclass from ``params["kind"]``.

        Raises:
            BundleError: the params or arrays are incomplete or from a newer format.
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
        klass = head_class(kind) if cls is Head or cls.kind != kind else cls
        for k in ("kind", "task"):
            hp.pop(k, None)
        head = klass(**hp)
        need = set(klass.required_arrays) | ({"present"} if klass.task == "classification" else set())
        if head.params.get("standardize"):
            need |= {"mean", "scale"}
        missing = sorted(need - set(arrays))
        if missing:
            raise BundleError(f"head {kind!r} is missing arrays {missing}; the model file is damaged. Retrain it.")
        head._state = {k: np.asarray(v) for k, v in arrays.items()}
        head.classes_ = classes
        head.n_features_ = n_features
        head.fit_info_ = dict(params.get("fit_info", {}))
        head._restore()
        return head

    # -- helpers ---------------------------------------------------------------------------------
    def _restore(self) -> None:
        """Hook: rebuild derived state after :meth:`from_arrays`."""

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise NotFittedError(
                f"this {self.kind!r} head is not trained yet. Fix: call fit(X, y) first, or load a trained model."
            )

    def _prepare(self, X: Any) -> np.ndarray:
        self._require_fitted()
        X = check_X(X, self.n_features_)
        return self._preprocess(X)

    def _preprocess_fit(self, X: np.ndarray) -> np.ndarray:
        if self.params.get("normalize", True):
            X = l2_normalize(X)
        if self.uses_standardize and self.params.get("standardize", False):
            mean = X.mean(axis=0)
            scale = X.std(axis=0)
            scale[scale < 1e-12] = 1.0
            self._state["mean"], self._state["scale"] = mean, scale
        return self._preprocess(X, normalized=True)

    def _preprocess(self, X: np.ndarray, normalized: bool = False) -> np.ndarray:
        if not normalized and self.params.get("normalize", True):
            X = l2_normalize(X)
        if self.uses_standardize and self.params.get("standardize", False):
            X = (X - self._state["mean"]) / self._state["scale"]
        return X

    def __repr__(self) -> str:
        extra = f", classes={len(self.classes_)}" if self.classes_ else ""
        state = "fitted" if self.fitted else "not fitted"
        return f"{type(self).__name__}(kind={self.kind!r}, task={self.task!r}{extra}, {state})"


def _check_class_weight(cw: Any) -> Any:
    if cw is None or cw == "balanced":
        return cw
    if isinstance(cw, dict):
        out = {}
        for k, v in cw.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0 or not np.isfinite(v):
                raise ParameterError(f"class_weight[{k!r}] must be a positive number, but got {v!r}.")
            out[str(k)] = float(v)
        return out
    raise ParameterError(
        f"class_weight must be 'balanced', None or a dict class name -> weight, but got {cw!r}."
    )


def head_class(kind: str) -> type[Head]:
    """The :class:`Head` subclass for ``kind``."""
    if kind not in _HEAD_CLASSES:
        raise ParameterError(f"Unknown head {kind!r}. Choose one of: {', '.join(HEADS + REGRESSORS)}.")
    mod, name = _HEAD_CLASSES[kind].split(":")
    return getattr(importlib.import_module(mod), name)


def make_head(kind: str = "auto", task: str = "classification", *, class_weight: Any = "balanced",
              seed: int = 0, **params: Any) -> Head:
    """Build an unfitted head.

    Args:
        kind: ``"logreg"`` (default for classification), ``"svm"``, ``"knn"``, ``"mlp"``, or
            ``"ridge"`` (regression); ``"auto"`` picks the default for ``task``.
        task: ``"classification"`` or ``"regression"``.
        class_weight: ``"balanced"`` (each class counts equally, against imbalance), ``None``,
            or a dict class name -> weight. Ignored by regression heads.
        seed: random seed; equal seeds and data give identical heads.
        **params: head-specific parameters (see each head's ``defaults``), e.g. ``C=1.0``.

    Example:
        >>> head = make_head("knn", "classification", n_neighbors=3)
        >>> head.get_params()["n_neighbors"]
        3

    Raises:
        ParameterError: unknown kind, task or parameter, or a kind that does not fit the task.
    """
    if task not in TASKS:
        raise ParameterError(f"Unknown task {task!r}. Choose one of: {', '.join(TASKS)}.")
    valid = HEADS if task == "classification" else REGRESSORS
    if kind in (None, "auto"):
        kind = valid[0]
    if kind not in _HEAD_CLASSES:
        raise ParameterError(f"Unknown head {kind!r}. Choose one of: {', '.join(valid)} (for task {task!r}).")
    if kind not in valid:
        other = "regression" if task == "classification" else "classification"
        raise ParameterError(
            f"Head {kind!r} is a {other} head, but task is {task!r}. Choose one of: {', '.join(valid)}."
        )
    return head_class(kind)(class_weight=class_weight, seed=seed, **params)


def head_from_arrays(params: dict[str, Any], arrays: dict[str, np.ndarray]) -> Head:
    """Rebuild any fitted head from :meth:`Head.to_arrays` output."""
    return Head.from_arrays(params, arrays)
