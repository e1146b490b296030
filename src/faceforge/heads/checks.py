"""Input checks shared by every head: embeddings, labels and groups, with errors that say the fix."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from faceforge.errors import ParameterError

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
        raise ParameterError(f"class indices must be >= 0, but y holds {int(arr.min())}. "
                             "Fix: encode classes as 0..k-1.")
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


# -- parameter checks (run by ``fit``, never by ``__init__``) ----------------------------------

def check_flag(name: str, value: Any) -> None:
    """Raise unless ``value`` is ``True`` or ``False``."""
    if not isinstance(value, (bool, np.bool_)):
        raise ParameterError(f"{name} must be True or False, but got {value!r}.")


def check_number(name: str, value: Any, *, integer: bool = False, zero: bool = False, auto: bool = False) -> None:
    """Raise unless ``value`` is a positive (``zero``: non-negative) number (``integer``: integer).

    ``auto`` also accepts the string ``"auto"`` (a value the head chooses itself).
    """
    if auto and isinstance(value, str) and value == "auto":
        return
    if integer:
        ok_type = isinstance(value, (int, np.integer))
    else:
        ok_type = isinstance(value, (int, float, np.integer, np.floating))
    if not ok_type or isinstance(value, (bool, np.bool_)) or not np.isfinite(value) or not (
            value >= 0 if zero else value > 0):
        what = f"{'non-negative' if zero else 'positive'} {'integer' if integer else 'number'}"
        also = " or 'auto'" if auto else ""
        raise ParameterError(f"{name} must be a {what}{also}, but got {value!r}.")


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    """Raise unless ``value`` is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ParameterError(f"{name} must be one of {sorted(choices)}, but got {value!r}.")


def check_seed(seed: Any) -> int:
    """``seed`` as an ``int``, or raise."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, (bool, np.bool_)):
        raise ParameterError(f"seed must be an integer, but got {seed!r}.")
    return int(seed)


def check_class_weight(cw: Any) -> Any:
    """``"balanced"``, ``None``, or a clean dict class name (str) -> positive float; else raise."""
    if cw is None or (isinstance(cw, str) and cw == "balanced"):
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
