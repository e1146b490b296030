"""Leakage-free splits on scikit-learn's splitters: stratified, and group-aware when ``groups`` is given.

Splits take a ``groups`` array (the source image of each row): every row of a group lands on the
same side, so augmented copies of one photo are never trained on and scored at once
(:class:`~sklearn.model_selection.StratifiedGroupKFold`; without groups each row is its own
group). Floating-point (regression) targets are stratified by quantile bins.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from faceforge.errors import ParameterError
from faceforge.heads.checks import check_groups

__all__ = ["auto_folds", "internal_folds", "kfold", "merge_groups", "repeated_kfold", "split_holdout", "strata"]

#: Quantile bins used to stratify a numeric (regression) target.
REGRESSION_BINS = 5


def strata(y: Any) -> np.ndarray:
    """Stratum of each row: the class (integer / string labels), or for floating-point
    (regression) targets one of up to :data:`REGRESSION_BINS` quantile bins."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ParameterError(f"y must be 1-D, but got shape {arr.shape}.")
    if np.issubdtype(arr.dtype, np.floating):
        edges = np.quantile(arr, np.linspace(0, 1, REGRESSION_BINS + 1)[1:-1])
        return np.searchsorted(edges, arr, side="right")
    _, codes = np.unique(arr.astype(str) if arr.dtype == object else arr, return_inverse=True)
    return codes.ravel()


def _folds(s: np.ndarray, g: np.ndarray | None, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedGroupKFold

    # Without groups every row is its own group: unlike StratifiedKFold, this also splits
    # classes with fewer rows than folds (they miss some folds).
    g = np.arange(len(s)) if g is None else g
    with warnings.catch_warnings():
        # "The least populated class in y has only n members": small classes are expected here,
        # and callers check that every class stays on the training side.
        warnings.simplefilter("ignore", UserWarning)
        splits = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros((len(s), 1)), s, g)
        return [(np.sort(tr).astype(np.int64), np.sort(va).astype(np.int64)) for tr, va in splits]


def kfold(y: Any, k: int = 5, seed: int = 0, groups: Any = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold over groups.

    Args:
        y: ``(n,)`` labels (floats: stratified by quantile bins).
        k: number of folds (2 .. number of groups).
        seed: random seed (shuffles the groups).
        groups: ``(n,)`` source image of each row; ``None``: each row is its own group.

    Returns:
        ``k`` pairs ``(train_idx, val_idx)`` of sorted ``int64`` row indices; every row is in
        exactly one ``val_idx``.

    Raises:
        ParameterError: ``k`` outside 2 .. number of groups.
    """
    s = strata(y)
    g = check_groups(groups, len(s))
    ng = len(np.unique(g)) if g is not None else len(s)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 2 <= k <= ng:
        raise ParameterError(
            f"k must be an integer from 2 to the number of groups ({ng}), but got {k!r}. Fix: use fewer folds."
        )
    largest = int(np.bincount(s).max())
    if k > largest:
        raise ParameterError(
            f"{k} folds need a class with at least {k} images, but the largest class has {largest}. "
            f"Fix: use at most {largest} folds, or a hold-out split."
        )
    return _folds(s, g, int(k), seed)


def auto_folds(y: Any, groups: Any = None, max_folds: int = 5) -> int:
    """The number of folds for :func:`repeated_kfold`: ``max_folds``, but at most the number of
    groups (photos) in the smallest class (or quantile bin), and at least 2.

    With ``k`` no larger than the smallest class, every class can have a photo in every fold and
    keep one on the training side.
    """
    s = strata(y)
    g = check_groups(groups, len(s))
    g = np.arange(len(s)) if g is None else g
    smallest = min(len(np.unique(g[s == c])) for c in np.unique(s)) if len(s) else 0
    return int(max(2, min(int(max_folds), smallest)))


def repeated_kfold(y: Any, k: int, repeats: int, seed: int = 0,
                   groups: Any = None) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Repeated stratified group k-fold: :func:`kfold` ``repeats`` times with seeds ``seed``, ``seed + 1``, ...

    (scikit-learn's ``RepeatedStratifiedKFold`` does not keep groups together; this does.)

    Args:
        y: ``(n,)`` labels (floats: stratified by quantile bins).
        k: folds per repeat (see :func:`auto_folds`).
        repeats: number of repeats (>= 1), each a different shuffle of the groups.
        seed: seed of the first repeat.
        groups: ``(n,)`` source image of each row; ``None``: each row is its own group.

    Returns:
        One list of ``k`` pairs ``(train_idx, val_idx)`` per repeat; within a repeat every row is
        in exactly one ``val_idx``.

    Raises:
        ParameterError: ``k`` as in :func:`kfold`, or ``repeats`` < 1.
    """
    if not isinstance(repeats, (int, np.integer)) or isinstance(repeats, bool) or repeats < 1:
        raise ParameterError(f"repeats must be an integer >= 1, but got {repeats!r}. Fix: use repeats=1 or more.")
    return [kfold(y, k, seed=int(seed) + r, groups=groups) for r in range(int(repeats))]


def merge_groups(groups: Any, links: Any) -> np.ndarray:
    """Groups joined by links: rows whose groups are linked (directly or through others) share one group.

    Used to keep near-duplicate photos (the same picture re-saved or resized) on one side of every
    split, as augmented copies already are.

    Args:
        groups: ``(n,)`` group of each row (e.g. its source image path).
        links: pairs ``(a, b)`` of group values that belong together; values not in ``groups``
            are ignored.

    Returns:
        ``(n,)`` array: each row's group replaced by the smallest group value of its linked set.
    """
    g = np.asarray(groups)
    parent: dict[Any, Any] = {}

    def find(x: Any) -> Any:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    present = set(g.tolist())
    for a, b in links:
        if a in present and b in present:
            ra, rb = find(a), find(b)
            if ra != rb:
                lo, hi = (ra, rb) if str(ra) <= str(rb) else (rb, ra)
                parent[hi] = lo
    if not parent:
        return g.copy()
    return np.array([find(v) for v in g.tolist()], dtype=g.dtype if g.dtype != object else object)


def split_holdout(y: Any, val: float = 0.2, seed: int = 0, groups: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Stratified hold-out split that keeps each group on one side.

    ``train_test_split`` of the groups, stratified by class, sends ``val`` of them to the
    validation side. Where that cannot stratify (a class with a single group, fewer validation
    groups than classes), the validation side is one fold of a stratified group k-fold with
    ``k = round(1 / val)``. A class never loses all its groups to the validation side.

    Args:
        y: ``(n,)`` class indices / names, or floats (regression: stratified by quantile bins).
        val: fraction for validation, in (0, 1).
        seed: random seed.
        groups: ``(n,)`` source image of each row (augmented copies share it); ``None``: each
            row is its own group.

    Returns:
        ``(train_idx, val_idx)``: sorted ``int64`` row indices (``val_idx`` empty when there
        are fewer than 2 groups).

    Raises:
        ParameterError: ``val`` outside (0, 1).
    """
    if not isinstance(val, (int, float)) or not 0 < float(val) < 1:
        raise ParameterError(f"val must be a fraction in (0, 1), but got {val!r}.")
    s = strata(y)
    g = check_groups(groups, len(s))
    ng = len(np.unique(g)) if g is not None else len(s)
    # scikit-learn needs some class with at least k rows; fewer folds hold out a bit more
    k = min(max(2, int(round(1.0 / float(val)))), ng, int(np.bincount(s).max()))
    if k < 2:
        return np.arange(len(s), dtype=np.int64), np.zeros(0, np.int64)
    tr, va = _holdout(s, g, float(val), seed) or _folds(s, g, k, seed)[0]
    # a class whose only group(s) landed on the validation side goes back to training
    back = np.isin(s[va], s[tr], invert=True)
    if back.any():
        tr, va = np.sort(np.r_[tr, va[back]]), va[~back]
    return tr, va


def _holdout(s: np.ndarray, g: np.ndarray | None, val: float, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``train_test_split`` of the groups, stratified by each group's stratum; ``None`` where it cannot
    stratify (a class with one group, fewer validation groups than classes)."""
    from sklearn.model_selection import train_test_split

    g = np.arange(len(s)) if g is None else g
    uniq, first = np.unique(g, return_index=True)
    try:
        _, va_groups = train_test_split(uniq, test_size=val, stratify=s[first], random_state=seed)
    except ValueError:
        return None
    is_val = np.isin(g, va_groups)
    return np.flatnonzero(~is_val).astype(np.int64), np.flatnonzero(is_val).astype(np.int64)


def internal_folds(yc: np.ndarray, groups: np.ndarray | None, seed: int, max_folds: int = 3) -> list:
    """Stratified, group-aware folds for tuning inside ``fit``; ``[]`` when a class is too small."""
    g = np.arange(len(yc)) if groups is None else groups
    s = strata(yc)  # classes, or quantile bins of a float (regression) target
    per_class = [len(np.unique(g[s == c])) for c in np.unique(s)]
    k = min(max_folds, min(per_class))
    if k < 2:
        return []
    return _folds(s, groups, k, seed)
