"""Metrics (numpy only) and leakage-free splits for evaluating heads.

Splits take a ``groups`` array (the source image of each row): every row of a group lands on
the same side, so augmented copies of one photo are never trained on and scored at once.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from faceforge.errors import ParameterError
from faceforge.heads.base import check_groups

__all__ = ["classification_report", "regression_report", "format_report", "split_holdout", "kfold"]


# -- classification --------------------------------------------------------------------------

def classification_report(y_true: Any, proba: Any, classes: Sequence[str]) -> dict[str, Any]:
    """Score class probabilities against true labels.

    Args:
        y_true: ``(n,)`` true class indices into ``classes`` (or class names).
        proba: ``(n, k)`` predicted probabilities, ``k == len(classes)``.
        classes: the ``k`` class names.

    Returns:
        A JSON-ready dict: ``task``, ``n``, ``classes``, ``accuracy``, ``balanced_accuracy``
        (mean recall over classes present in ``y_true``), ``macro_f1``, ``log_loss``,
        ``top3_accuracy`` (only when ``k > 3``), ``per_class`` (name -> ``precision``,
        ``recall``, ``f1``, ``support``; 0 where undefined), and ``confusion_matrix`` (``k x k``
        list of lists, rows = true class, columns = predicted).

    Raises:
        ParameterError: shapes that do not match.
    """
    classes = [str(c) for c in classes]
    k = len(classes)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != k:
        raise ParameterError(
            f"proba must have shape (n, {k}) (one column per class), but got {p.shape}. "
            f"Fix: pass head.predict_proba(X) and head.classes_."
        )
    yt = _encode(y_true, classes)
    if len(yt) != len(p):
        raise ParameterError(f"y_true has {len(yt)} labels but proba has {len(p)} rows. Fix: pass matching arrays.")
    n = len(yt)
    if n == 0:
        raise ParameterError("no samples to score. Fix: evaluate on at least one sample.")
    pred = np.argmax(p, axis=1)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (yt, pred), 1)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    # Classes that occur neither in y_true nor in the predictions do not count in macro averages.
    active = (support > 0) | (predicted > 0)
    eps = np.finfo(np.float64).eps
    ll = float(-np.mean(np.log(np.clip(p[np.arange(n), yt], eps, 1.0))))
    rep: dict[str, Any] = {
        "task": "classification",
        "n": int(n),
        "classes": classes,
        "accuracy": float(tp.sum() / n),
        "balanced_accuracy": float(recall[support > 0].mean()),
        "macro_f1": float(f1[active].mean()) if active.any() else 0.0,
        "log_loss": ll,
    }
    if k > 3:
        top = np.argsort(-p, axis=1, kind="stable")[:, :3]
        rep["top3_accuracy"] = float(np.mean(np.any(top == yt[:, None], axis=1)))
    rep["per_class"] = {
        c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
            "support": int(support[i])}
        for i, c in enumerate(classes)
    }
    rep["confusion_matrix"] = cm.tolist()
    return rep


def _encode(y: Any, classes: list[str]) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ParameterError(f"y_true must be 1-D, but got shape {arr.shape}.")
    if arr.dtype.kind in "US" or arr.dtype == object:
        index = {c: i for i, c in enumerate(classes)}
        missing = sorted({str(v) for v in arr.tolist()} - set(index))
        if missing:
            raise ParameterError(f"labels {missing[:5]} are not among classes {classes[:10]}.")
        return np.array([index[str(v)] for v in arr.tolist()], dtype=np.int64)
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        if np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ParameterError(f"y_true must hold class indices or names, but got dtype {arr.dtype}.")
    arr = arr.astype(np.int64)
    if len(arr) and (arr.min() < 0 or arr.max() >= len(classes)):
        raise ParameterError(
            f"y_true holds class indices outside 0..{len(classes) - 1}. Fix: pass the matching class list."
        )
    return arr


# -- regression ------------------------------------------------------------------------------

def regression_report(y_true: Any, y_pred: Any) -> dict[str, Any]:
    """Score numeric predictions.

    Args:
        y_true: ``(n,)`` true values.
        y_pred: ``(n,)`` predicted values.

    Returns:
        ``{"task": "regression", "n", "mae", "rmse", "r2"}``. ``r2`` follows scikit-learn:
        1 - SSE/SST, and for constant ``y_true`` 1.0 when perfect, else 0.0.
    """
    yt = np.asarray(y_true, dtype=np.float64).ravel()
    yp = np.asarray(y_pred, dtype=np.float64).ravel()
    if len(yt) != len(yp) or len(yt) == 0:
        raise ParameterError(
            f"y_true and y_pred must be non-empty and of equal length, but got {len(yt)} and {len(yp)}."
        )
    err = yp - yt
    sse = float(np.sum(err**2))
    sst = float(np.sum((yt - yt.mean()) ** 2))
    r2 = 1.0 - sse / sst if sst > 0 else (1.0 if sse == 0 else 0.0)
    return {"task": "regression", "n": int(len(yt)), "mae": float(np.mean(np.abs(err))),
            "rmse": float(np.sqrt(np.mean(err**2))), "r2": float(r2)}


# -- text ------------------------------------------------------------------------------------

def format_report(report: dict[str, Any], max_matrix: int = 20) -> str:
    """A plain-text table of a :func:`classification_report` or :func:`regression_report`.

    Args:
        report: the report dict.
        max_matrix: print the confusion matrix only up to this many classes.
    """
    if report.get("task") == "regression":
        return (f"samples  {report['n']}\n"
                f"MAE      {report['mae']:.4g}\n"
                f"RMSE     {report['rmse']:.4g}\n"
                f"R2       {report['r2']:.4f}")
    lines = [f"samples            {report['n']}",
             f"accuracy           {report['accuracy']:.4f}",
             f"balanced accuracy  {report['balanced_accuracy']:.4f}",
             f"macro F1           {report['macro_f1']:.4f}",
             f"log loss           {report['log_loss']:.4f}"]
    if "top3_accuracy" in report:
        lines.append(f"top-3 accuracy     {report['top3_accuracy']:.4f}")
    classes = list(report["per_class"])
    w = max([5, *(len(c) for c in classes)])
    lines += ["", f"{'class':<{w}}  precision  recall      f1  support"]
    for c, r in report["per_class"].items():
        lines.append(f"{c:<{w}}  {r['precision']:9.3f}  {r['recall']:6.3f}  {r['f1']:6.3f}  {r['support']:7d}")
    cm = report.get("confusion_matrix")
    if cm is not None and len(cm) <= max_matrix:
        cw = max(4, max(len(str(v)) for row in cm for v in row) + 1)
        idx = [str(i) for i in range(len(cm))]
        lines += ["", "confusion matrix (rows: true, columns: predicted)",
                  " " * (w + 5) + "".join(f"{i:>{cw}}" for i in idx)]
        for i, (c, row) in enumerate(zip(classes, cm)):
            lines.append(f"{c:<{w}} {i:>3} " + "".join(f"{v:>{cw}}" for v in row))
    elif cm is not None:
        lines += ["", f"(confusion matrix of {len(cm)} classes omitted; see the PNG)"]
    return "\n".join(lines)


# -- splits ----------------------------------------------------------------------------------

def _strata(y: Any) -> np.ndarray:
    """Stratum of each row: the class (integer / string labels), or for floating-point
    (regression) targets one of up to 5 quantile bins."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ParameterError(f"y must be 1-D, but got shape {arr.shape}.")
    if np.issubdtype(arr.dtype, np.floating):
        edges = np.quantile(arr, np.linspace(0, 1, 6)[1:-1])
        return np.searchsorted(edges, arr, side="right")
    _, codes = np.unique(arr.astype(str) if arr.dtype == object else arr, return_inverse=True)
    return codes.ravel()


def _group_table(y: Any, groups: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(group id of each row, stratum of each group, rows per group)."""
    s = _strata(y)
    n = len(s)
    g = np.arange(n) if groups is None else check_groups(groups, n)
    ng = int(g.max()) + 1 if n else 0
    # A group's stratum: the most common stratum among its rows.
    counts = np.zeros((ng, int(s.max()) + 1 if n else 1), dtype=np.int64)
    np.add.at(counts, (g, s), 1)
    return g, counts.argmax(axis=1), counts.sum(axis=1)


def split_holdout(y: Any, val: float = 0.2, seed: int = 0, groups: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Stratified hold-out split that keeps each group on one side.

    Each class (floating-point targets: quantile bin) sends about ``val`` of its groups to the
    validation side (stochastic rounding, seeded), and always keeps at least one for training.

    Args:
        y: ``(n,)`` class indices / names, or floats (regression: stratified by quantile bins).
        val: fraction for validation, in (0, 1).
        seed: random seed.
        groups: ``(n,)`` source image of each row (augmented copies share it); ``None``: each
            row is its own group.

    Returns:
        ``(train_idx, val_idx)``: sorted ``int64`` row indices.
    """
    if not 0 < float(val) < 1:
        raise ParameterError(f"val must be a fraction in (0, 1), but got {val!r}.")
    g, gs, _ = _group_table(y, groups)
    rng = np.random.default_rng(seed)
    val_groups = []
    for s in np.unique(gs):
        members = rng.permutation(np.flatnonzero(gs == s))
        n_val = min(int(np.floor(val * len(members) + rng.random())), len(members) - 1)
        val_groups.extend(members[:n_val].tolist())
    is_val = np.isin(g, np.asarray(val_groups, dtype=np.int64))
    return np.flatnonzero(~is_val).astype(np.int64), np.flatnonzero(is_val).astype(np.int64)


def kfold(y: Any, k: int = 5, seed: int = 0, groups: Any = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold over groups.

    Each class's groups are shuffled and dealt round-robin over the folds (continuing where
    the previous class stopped, so fold sizes stay even).

    Args:
        y: ``(n,)`` labels.
        k: number of folds (2 .. number of groups).
        seed: random seed.
        groups: ``(n,)`` source image of each row; ``None``: each row is its own group.

    Returns:
        ``k`` pairs ``(train_idx, val_idx)`` of sorted ``int64`` row indices; every row is in
        exactly one ``val_idx``.
    """
    g, gs, _ = _group_table(y, groups)
    ng = len(gs)
    if not isinstance(k, (int, np.integer)) or not 2 <= k <= ng:
        raise ParameterError(
            f"k must be an integer from 2 to the number of groups ({ng}), but got {k!r}. Fix: use fewer folds."
        )
    rng = np.random.default_rng(seed)
    fold_of_group = np.zeros(ng, dtype=np.int64)
    start = int(rng.integers(k))
    for s in np.unique(gs):
        members = rng.permutation(np.flatnonzero(gs == s))
        fold_of_group[members] = (start + np.arange(len(members))) % k
        start = (start + len(members)) % k
    fold = fold_of_group[g]
    return [(np.flatnonzero(fold != f).astype(np.int64), np.flatnonzero(fold == f).astype(np.int64))
            for f in range(k)]
