"""The learning curve: validation and training score against the number of training images."""

from __future__ import annotations

import logging
import warnings
from typing import Any, Callable

import numpy as np

log = logging.getLogger(__name__)

#: Fractions of each training split used for the learning curve (1.0 is the validation fit itself).
CURVE_FRACTIONS = (0.1, 0.25, 0.5, 1.0)


def learning_curve(fit: Callable[[np.ndarray], Any], X: np.ndarray, y: np.ndarray, groups: np.ndarray,
                   aug: np.ndarray, split: tuple[np.ndarray, np.ndarray], task: str,
                   seed: int, full_head: Any = None) -> dict[str, Any] | None:
    """Validation and training score against training-set size, on one validation split.

    Each fraction of :data:`CURVE_FRACTIONS` takes that share of every class's source images
    (at least one each; a photo and its augmented copies stay together).

    Args:
        fit: trains a head on the given row indices.
        X, y, groups, aug: embeddings, labels, source image and "is augmented" of each row.
        split: ``(train_idx, val_idx)``.
        task: ``"classification"`` (score: balanced accuracy) or ``"regression"`` (MAE).
        seed: seeds which images each fraction takes.
        full_head: the head already fitted on all of ``train_idx`` (saves one fit).

    Returns:
        ``{"metric", "fractions", "train_images", "validation", "training"}``, or ``None``
        when a fraction is too small to fit.
    """
    from sklearn.metrics import balanced_accuracy_score, mean_absolute_error

    def score(h: Any, idx: np.ndarray) -> float:
        idx = idx[~aug[idx]]
        if task == "regression":
            return float(mean_absolute_error(y[idx], h.predict(X[idx])))
        return float(balanced_accuracy_score(y[idx], np.argmax(h.predict_proba(X[idx]), axis=1)))

    rng = np.random.default_rng(seed)
    tr, te = split
    g_tr = groups[tr]
    uniq, first = np.unique(g_tr, return_index=True)
    strata = y[tr][first] if task == "classification" else np.zeros(len(uniq))
    order = {c: rng.permutation(uniq[strata == c]) for c in np.unique(strata)}
    sizes, val, trn = [], [], []
    for f in CURVE_FRACTIONS:
        chosen = np.concatenate([g[:max(1, int(np.ceil(f * len(g))))] for g in order.values()])
        idx = tr[np.isin(g_tr, chosen)]
        try:
            h = full_head if f == 1.0 and full_head is not None else fit(idx)
        except Exception as e:  # e.g. too few rows for the head at 10%
            log.info("learning curve: no fit on %.0f%% of the training images (%s)", 100 * f, e)
            return None
        sizes.append(len(chosen))
        with warnings.catch_warnings():
            # "y_pred contains classes not in y_true": a small fit can predict a class absent here
            warnings.simplefilter("ignore", UserWarning)
            val.append([round(score(h, te), 4)])
            trn.append([round(score(h, idx), 4)])
    return {"metric": "MAE" if task == "regression" else "balanced accuracy",
            "fractions": list(CURVE_FRACTIONS), "train_images": sizes, "validation": val, "training": trn}
