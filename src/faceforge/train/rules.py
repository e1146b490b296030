"""Rules on the user's classes: which ones the unknown check guards, and what small classes do to the folds.

The me / not-me rule applies only when asked: ``known`` / ``negatives`` (CLI ``--known`` /
``--negatives``) turn it on; a class's name never does (a name like ``not_me`` only gets a hint,
:func:`negatives_hint`). :func:`fold_problems` puts in plain words what scikit-learn would warn
about (and faceforge silences) when classes are too small for the folds.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

from faceforge.errors import ParameterError

#: Class names that look like "anyone else": only a hint is printed (pass ``negatives`` to mean it);
#: a class is never re-interpreted because of its name.
NEGATIVE_NAMES = re.compile(r"^(not[ _.-]?.+|non[ _.-].+|others?|other[ _.-]people|negatives?|strangers?|"
                            r"unknowns?|background|nobody|none|noise)$", re.IGNORECASE)


def known_classes(classes: list[str], known: Sequence[str] | str | None,
                  negatives: Sequence[str] | str | None = None) -> tuple[list[int] | None, str]:
    """Indices of the known classes (``None``: all), and why: the me / not-me rule applies only when
    ``known`` or ``negatives`` is given (never because of a folder's name).

    Raises:
        ParameterError: a name that is not a class, a class both known and negative, or no
            negatives / no known class left.
    """
    kn, neg = _names(known, "known"), _names(negatives, "negatives")
    missing = [k for k in (kn or []) + (neg or []) if k not in classes]
    if missing:
        raise ParameterError(f"classes {missing} (known / negatives) are not among the classes {classes}. "
                             f"Fix: use the folder / label names.")
    if neg is not None:
        both = sorted(set(neg) & set(kn or []))
        if both:
            raise ParameterError(f"classes {both} are given both as known and as negatives; name each once.")
        idx = [i for i, c in enumerate(classes) if c not in neg and (kn is None or c in kn)]
        rest = [c for i, c in enumerate(classes) if c not in neg and i not in idx]
        if rest:
            raise ParameterError(f"classes {rest} are neither known nor negatives; add them to one of the two "
                                 f"or leave known out (the classes that are not negatives are then known).")
        if not idx:
            raise ParameterError(f"negatives {neg} leave no class to recognise; the people to recognise need "
                                 f"their own class(es) beside the negatives.")
        return idx, (f"negatives={neg} given: {[classes[i] for i in idx]} are recognised, a face is one of them "
                     f"only when it is close enough to their photos, else {neg[0]!r}")
    if kn is not None:
        idx = sorted({classes.index(k) for k in kn})
        if len(idx) == len(classes) and len(idx) < 2:
            raise ParameterError("one known class needs a class of other people's faces as negatives.")
        if len(idx) == len(classes):
            return None, "given"
        return idx, f"known={kn} given: the other classes are negatives"
    return None, ""


def negatives_hint(classes: list[str]) -> str:
    """A hint (not a change) when a class is named like "anyone else" (:data:`NEGATIVE_NAMES`)."""
    neg = [c for c in classes if NEGATIVE_NAMES.match(c.strip())]
    if not neg or len(neg) == len(classes):
        return ""
    return (f"class {neg[0]!r} looks like 'anyone else'; pass --negatives {neg[0]} if it is "
            f"(train(..., negatives={neg[0]!r})); without it, {neg[0]!r} is an ordinary class")


def _names(names: Sequence[str] | str | None, what: str) -> list[str] | None:
    if names is None:
        return None
    out = [names] if isinstance(names, str) else list(names)
    if not out:
        raise ParameterError(f"{what} must name at least one class.")
    return out


def fold_problems(task: str, classes: list[str], y: np.ndarray, v: Any, source: str) -> list[Any]:
    """Plain words for classes too small for the validation folds.

    Args:
        task: ``"classification"`` or ``"regression"``.
        classes: the class names.
        y: the class of each original (not augmented) photo.
        v: the report's ``validation`` entry.
        source: the data set (the problems' path).

    Returns:
        :class:`~faceforge.data.Problem` list (empty when the folds fit).
    """
    from faceforge.data import Problem
    from faceforge.train.validation import MAX_FOLDS

    v = v if isinstance(v, dict) else {}
    k = int(v.get("folds") or 0)
    if task != "classification" or k < 2 or not len(y):
        return []
    counts = np.bincount(np.asarray(y, int), minlength=len(classes))
    c = int(np.argmin(counts))
    n = int(counts[c])
    if "smallest class" in str(v.get("why", "")) and k < MAX_FOLDS:
        return [Problem("few_for_folds", source, f"class {classes[c]!r} has {n} photos: too few for "
                        f"{MAX_FOLDS}-fold validation, using {k} folds", "info")]
    if n < k:
        small = int((counts < k).sum())
        return [Problem("few_for_folds", source, f"class {classes[c]!r} has {n} photos, fewer than the {k} "
                        f"folds asked for: {small} class(es) are missing from some folds' tests", "warning")]
    return []
