"""The learning curve: validation and training score against the number of training images."""

from __future__ import annotations

import logging
import warnings
from typing import Any, Callable, Sequence

import numpy as np

log = logging.getLogger(__name__)

#: Fractions of each training split used for the learning curve (1.0 is the validation fit itself).
CURVE_FRACTIONS = (0.1, 0.25, 0.5, 1.0)


def learning_curve(fit: Callable[[np.ndarray], Any], X: np.ndarray, y: np.ndarray, groups: np.ndarray,
                   aug: np.ndarray, splits: Sequence[tuple[np.ndarray, np.ndarray]] | tuple[np.ndarray, np.ndarray],
                   task: str, seed: int, full_heads: Any = None) -> dict[str, Any] | None:
    """Validation and training score against training-set size, on the validation's own splits.

    In each split, each fraction of :data:`CURVE_FRACTIONS` takes that share of every class's
    source images of the training side (at least one each; a photo and its augmented copies, or
    any rows sharing a group, stay together) and is scored on that split's validation side.

    Args:
        fit: trains a head on the given row indices.
        X, y, groups, aug: embeddings, labels, group (source image) and "is augmented" of each row.
        splits: the ``(train_idx, val_idx)`` pairs (or one pair) of the validation.
        task: ``"classification"`` (score: balanced accuracy) or ``"regression"`` (MAE).
        seed: seeds which images each fraction takes.
        full_heads: the heads already fitted on each split's whole training side (saves one fit
            each), or one head for one pair.

    Returns:
        ``{"metric", "fractions", "train_images", "validation", "training", "folds"}``:
        ``validation[i]`` / ``training[i]`` hold one score per split at ``fractions[i]``, and
        ``train_images[i]`` the mean number of training photos; ``None`` when a fraction is too
        small to fit.
    """
    from sklearn.metrics import balanced_accuracy_score, mean_absolute_error

    def score(h: Any, idx: np.ndarray) -> float:
        idx = idx[~aug[idx]]
        if task == "regression":
            return float(mean_absolute_error(y[idx], h.predict(X[idx])))
        return float(balanced_accuracy_score(y[idx], np.argmax(h.predict_proba(X[idx]), axis=1)))

    if isinstance(splits, tuple) and len(splits) == 2 and isinstance(splits[0], np.ndarray):
        pairs = [splits]
        heads = [full_heads]
    else:
        pairs = list(splits)
        heads = list(full_heads) if full_heads is not None else [None] * len(pairs)
    rng = np.random.default_rng(seed)
    sizes = np.zeros((len(CURVE_FRACTIONS), len(pairs)))
    val = [[0.0] * len(pairs) for _ in CURVE_FRACTIONS]
    trn = [[0.0] * len(pairs) for _ in CURVE_FRACTIONS]
    for j, ((tr, te), full_head) in enumerate(zip(pairs, heads)):
        g_tr = groups[tr]
        uniq, first = np.unique(g_tr, return_index=True)
        strata = y[tr][first] if task == "classification" else np.zeros(len(uniq))
        order = {c: rng.permutation(uniq[strata == c]) for c in np.unique(strata)}
        for i, f in enumerate(CURVE_FRACTIONS):
            chosen = np.concatenate([g[:max(1, int(np.ceil(f * len(g))))] for g in order.values()])
            idx = tr[np.isin(g_tr, chosen)]
            try:
                h = full_head if f == 1.0 and full_head is not None else fit(idx)
            except Exception as e:  # e.g. too few rows for the head at 10%
                log.info("learning curve: no fit on %.0f%% of the training images (%s)", 100 * f, e)
                return None
            sizes[i, j] = int((~aug[idx]).sum())
            with warnings.catch_warnings():
                # "y_pred contains classes not in y_true": a small fit can predict a class absent here
                warnings.simplefilter("ignore", UserWarning)
                val[i][j] = round(score(h, te), 4)
                trn[i][j] = round(score(h, idx), 4)
    mean_sizes = [int(round(v)) for v in sizes.mean(axis=1)]
    # on small sets 10% and 25% can both be one photo per class: keep each size once (the last)
    keep = [i for i in range(len(mean_sizes)) if i + 1 == len(mean_sizes) or mean_sizes[i + 1] != mean_sizes[i]]
    return {"metric": "MAE" if task == "regression" else "balanced accuracy",
            "fractions": [CURVE_FRACTIONS[i] for i in keep], "train_images": [mean_sizes[i] for i in keep],
            "validation": [val[i] for i in keep], "training": [trn[i] for i in keep], "folds": len(pairs)}
