"""Evaluation reports on :mod:`sklearn.metrics`, and a plain-text table of them.

The splits (:func:`split_holdout`, :func:`kfold`) live in :mod:`faceforge.heads.splits`; they are
re-exported here for older imports.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from faceforge.errors import ParameterError
from faceforge.heads.splits import kfold, split_holdout

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
        (mean recall over classes present in ``y_true``), ``macro_f1`` (over classes that are
        true or predicted at least once), ``log_loss``, ``top3_accuracy`` (only when ``k > 3``),
        ``per_class`` (name -> ``precision``, ``recall``, ``f1``, ``support``; 0 where
        undefined), and ``confusion_matrix`` (``k x k`` list of lists, rows = true class,
        columns = predicted).

    Raises:
        ParameterError: shapes that do not match.
    """
    from sklearn import metrics as skm

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
    labels = np.arange(k)
    with warnings.catch_warnings():
        # "y_pred contains classes not in y_true": such classes do not count, as documented
        warnings.simplefilter("ignore", UserWarning)
        balanced = skm.balanced_accuracy_score(yt, pred)
    precision, recall, f1, support = skm.precision_recall_fscore_support(yt, pred, labels=labels, zero_division=0)
    rep: dict[str, Any] = {
        "task": "classification",
        "n": int(n),
        "classes": classes,
        "accuracy": float(skm.accuracy_score(yt, pred)),
        "balanced_accuracy": float(balanced),
        "macro_f1": float(skm.f1_score(yt, pred, average="macro", zero_division=0)),
        "log_loss": float(skm.log_loss(yt, p, labels=labels)),
    }
    if k > 3:
        rep["top3_accuracy"] = float(skm.top_k_accuracy_score(yt, p, k=3, labels=labels))
    rep["per_class"] = {
        c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
            "support": int(support[i])}
        for i, c in enumerate(classes)
    }
    rep["confusion_matrix"] = skm.confusion_matrix(yt, pred, labels=labels).tolist()
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
        ``{"task": "regression", "n", "mae", "rmse", "r2"}`` (scikit-learn's ``r2_score``: for
        constant ``y_true`` 1.0 when perfect, else 0.0).

    Raises:
        ParameterError: empty or unequal inputs.
    """
    from sklearn import metrics as skm

    yt = np.asarray(y_true, dtype=np.float64).ravel()
    yp = np.asarray(y_pred, dtype=np.float64).ravel()
    if len(yt) != len(yp) or len(yt) == 0:
        raise ParameterError(
            f"y_true and y_pred must be non-empty and of equal length, but got {len(yt)} and {len(yp)}."
        )
    if len(yt) < 2:  # r2_score is undefined on one sample
        r2 = 1.0 if yt[0] == yp[0] else 0.0
    else:
        r2 = float(skm.r2_score(yt, yp))
    return {"task": "regression", "n": int(len(yt)), "mae": float(skm.mean_absolute_error(yt, yp)),
            "rmse": float(np.sqrt(skm.mean_squared_error(yt, yp))), "r2": float(r2)}


# -- text ------------------------------------------------------------------------------------

def format_report(report: dict[str, Any], max_matrix: int = 20) -> str:
    """A plain-text table of a :func:`classification_report` or :func:`regression_report`.

    Args:
        report: the report dict.
        max_matrix: print the confusion matrix only up to this many classes.

    Returns:
        The table (no colour codes).
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
