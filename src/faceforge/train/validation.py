"""Validation that means something on small sets: which scheme, and an interval around its score.

Below :data:`SMALL_SET` photos one hold-out scores too few photos to mean anything (20% of 50
photos is 10 images: one photo more or less right moves the score by 10 points), so the default
is **repeated stratified k-fold over all photos**: every photo is scored once per repeat by a
head that never saw it (nor its augmented copies, nor its near duplicates: they share a group).

* ``k`` = :data:`MAX_FOLDS`, but at most the number of photos of the smallest class (and >= 2),
  so every class keeps photos on the training side of every fold.
* ``repeats`` = as many as fit in :data:`MAX_FITS` head fits (at most :data:`MAX_REPEATS`, at
  least 2); when the first repeat is slow, fewer, so that validation takes about
  :data:`TIME_BUDGET_S` seconds at most. The embeddings are cached: only heads are refitted.

**Why 300.** A 20% hold-out of 300 photos scores 60 photos; at 80% accuracy the 95% binomial
interval on 60 photos is +-10 points, the width :data:`WIDE_CI` warns about. Below that a
hold-out cannot be precise, while k-fold over all photos scores every photo; above it the hold-out
is precise enough and k-fold would cost ``k`` times the fits.

**The interval** (``ci95``) is an Agresti-Coull binomial interval on the pooled out-of-fold
predictions: over all photos for accuracy; for balanced accuracy (the mean of per-class recalls,
which weighs a photo of class ``c`` by ``1 / n_c``) over Kish's effective number of photos
``C^2 / sum_c(1 / n_c)`` (all photos when the classes are balanced, fewer when a class is small;
conservative when the classes' recalls differ). Each photo counts once, with its share of right
answers over the repeats: repeats reuse the same photos, so their folds are correlated and
counting every repeat as new photos (or a t-interval over repeats) would be far too narrow; what
limits precision is the number of photos. Agresti-Coull stays honest at 100% (it does not
collapse to [1, 1] like a bootstrap). For regression (MAE), a t-interval over photos of each
photo's mean absolute error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Below this many photos (source images), the default validation is repeated k-fold.
SMALL_SET = 300
#: Folds of the repeated k-fold (fewer when the smallest class has fewer photos).
MAX_FOLDS = 5
#: Head fits the repeated k-fold may take (folds x repeats).
MAX_FITS = 40
#: Repeats at most, and at least (when the time budget cuts them).
MAX_REPEATS = 10
MIN_REPEATS = 2
#: About how long the repeated k-fold may take; repeats are cut after the first when it is slow.
TIME_BUDGET_S = 60.0
#: Folds of the learning curve (the first ones of the validation, in order).
CURVE_FOLDS = 10
#: Warn when the 95% interval is wider than +- this (10 points).
WIDE_CI = 0.10
#: Hold-out fraction above :data:`SMALL_SET` photos.
DEFAULT_VAL = 0.2

_Z = 1.959963984540054  # the 97.5% normal quantile


@dataclass(frozen=True)
class Scheme:
    """How the photos are validated.

    Attributes:
        method: ``"repeated_kfold"``, ``"kfold"`` (one repeat), ``"holdout"`` or ``"none"``.
        folds: folds per repeat (0 for hold-out / none).
        repeats: repeats planned (1 for k-fold and hold-out).
        val: the hold-out fraction (0 unless ``method == "holdout"``).
        photos: photos (source images) in the data.
        why: the reason for the choice, in words.
    """

    method: str
    folds: int
    repeats: int
    val: float
    photos: int
    why: str


def choose(y: np.ndarray, groups: np.ndarray, photos: int, *, val: float | None, folds: int,
           repeats: int | None) -> Scheme:
    """The validation scheme for these photos and settings (``val`` / ``folds`` given force a choice).

    Args:
        y: labels of the original (not augmented) rows.
        groups: their groups (source image, near duplicates joined).
        photos: number of photos.
        val: the hold-out fraction the user asked for (``None``: choose).
        folds: the folds the user asked for (``0``: choose).
        repeats: the repeats the user asked for (``None``: choose).
    """
    from faceforge.heads.splits import auto_folds

    if folds and folds >= 2:
        r = int(repeats or 1)
        return Scheme("repeated_kfold" if r > 1 else "kfold", int(folds), r, 0.0, photos, "asked for (folds)")
    if val is not None:
        if val <= 0:
            return Scheme("none", 0, 0, 0.0, photos, "asked for (val=0)")
        return Scheme("holdout", 0, 1, float(val), photos, "asked for (val)")
    if photos >= SMALL_SET:
        return Scheme("holdout", 0, 1, DEFAULT_VAL, photos,
                      f"{photos} photos (>= {SMALL_SET}): a {DEFAULT_VAL:.0%} hold-out scores enough of them")
    k = auto_folds(y, groups, MAX_FOLDS)
    r = int(repeats) if repeats else max(MIN_REPEATS, min(MAX_REPEATS, MAX_FITS // k))
    return Scheme("repeated_kfold", k, r, 0.0, photos,
                  f"{photos} photos (< {SMALL_SET}): one hold-out would score too few, so every photo is "
                  f"scored by {k}-fold cross-validation repeated {r} times" +
                  (f" ({k} folds: the smallest class has {k} photos)" if k < MAX_FOLDS else ""))


def describe(method: str, folds: int, repeats: int, val: float, photos: int) -> str:
    """``"5-fold x 4 repeats"``-style words for a scheme as run."""
    if method == "holdout":
        return f"stratified hold-out ({val:.0%} of images)"
    if method == "kfold":
        return f"{folds}-fold cross-validation"
    if method == "repeated_kfold":
        return f"{folds}-fold x {repeats} repeats over all {photos} photos"
    return "none"


def agresti_coull(successes: float, n: float) -> tuple[float, float, float]:
    """Centre and variance of the Agresti-Coull estimate of a proportion, and its ``n``-adjusted count.

    Returns:
        ``(p_tilde, variance, n_tilde)``.
    """
    nt = n + _Z ** 2
    pt = (successes + _Z ** 2 / 2) / nt
    return pt, pt * (1 - pt) / nt, nt


def _interval(centre: float, var: float, point: float) -> list[float]:
    half = _Z * math.sqrt(max(var, 0.0))
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    return [round(min(lo, point), 4), round(max(hi, point), 4)]


def summarize(task: str, y: np.ndarray, rows: np.ndarray, right: np.ndarray | None, err: np.ndarray | None,
              repeat: np.ndarray, scheme: Scheme, repeats_run: int,
              classes: list[str] | None = None) -> dict[str, Any]:
    """The report's ``validation`` entry: scheme, denominators, mean score and its 95% interval.

    Args:
        task: ``"classification"`` or ``"regression"``.
        y: labels of every row (class indices, or values).
        rows: the row scored by each out-of-fold prediction.
        right: classification: whether each prediction was right.
        err: regression: the absolute error of each prediction.
        repeat: the repeat of each prediction.
        scheme: the scheme chosen.
        repeats_run: the repeats that ran (the time budget may cut them).
        classes: the class names (classification).
    """
    uniq, inv = np.unique(rows, return_inverse=True)
    n = len(uniq)
    method = scheme.method
    if method == "repeated_kfold" and repeats_run < 2:
        method = "kfold"
    out: dict[str, Any] = {
        "method": method, "folds": scheme.folds, "repeats": repeats_run, "n": int(n),
        "photos": scheme.photos, "predictions": int(len(rows)),
        "description": describe(method, scheme.folds, repeats_run, scheme.val, scheme.photos),
        "why": scheme.why,
    }
    if method == "holdout":
        out["val"] = scheme.val
    reps = np.unique(repeat)
    if task == "regression":
        e = np.asarray(err, np.float64)
        per_photo = np.bincount(inv, weights=e) / np.bincount(inv)
        mae = float(per_photo.mean())
        if n > 1:
            from scipy import stats

            half = float(stats.t.ppf(0.975, n - 1) * per_photo.std(ddof=1) / math.sqrt(n))
        else:
            half = float("inf")
        out.update(metric="MAE", mean=round(mae, 4), ci95=[round(max(0.0, mae - half), 4), round(mae + half, 4)],
                   ci_method="t-interval over photos of each photo's mean absolute error (over repeats)",
                   per_repeat=[round(float(e[repeat == r].mean()), 4) for r in reps])
        return out
    ok = np.asarray(right, np.float64)
    share = np.bincount(inv, weights=ok) / np.bincount(inv)  # each photo's share of right answers
    cls = np.asarray(y)[uniq].astype(np.int64)
    present, n_c = np.unique(cls, return_counts=True)
    recalls = [float(share[cls == c].mean()) for c in present]
    bal = float(np.mean(recalls))
    # balanced accuracy weighs photo i by 1 / (C n_c): Kish's effective number of photos
    n_eff = len(present) ** 2 / float(np.sum(1.0 / n_c))
    pt_b, var_b, _ = agresti_coull(bal * n_eff, n_eff)
    bal_ci = _interval(pt_b, var_b, bal)
    acc = float(share.mean())
    pt, var, _ = agresti_coull(float(share.sum()), float(n))
    per_rep = []
    for r in reps:
        m = repeat == r
        yc = np.asarray(y)[rows[m]].astype(np.int64)
        per_rep.append(round(float(np.mean([ok[m][yc == c].mean() for c in np.unique(yc)])), 4))
    out.update(metric="balanced accuracy", mean=round(bal, 4), ci95=bal_ci,
               accuracy={"mean": round(acc, 4), "ci95": _interval(pt, var, acc)},
               per_class_photos={(classes[int(c)] if classes else str(int(c))): int(k)
                                 for c, k in zip(present, n_c)},
               effective_photos=round(n_eff, 1),
               ci_method="Agresti-Coull binomial interval on the pooled out-of-fold predictions (balanced "
                         "accuracy: over the effective number of photos), each photo counted once with its "
                         "share of right answers over the repeats",
               per_repeat=per_rep)
    if len(per_rep) > 1:
        out["repeat_sd"] = round(float(np.std(per_rep, ddof=1)), 4)
    half = (bal_ci[1] - bal_ci[0]) / 2
    if half > WIDE_CI:
        out["warning"] = (f"the validation score is uncertain: balanced accuracy {bal:.0%} with a 95% interval of "
                          f"{bal_ci[0]:.0%}-{bal_ci[1]:.0%} (+-{half:.0%}, wider than +-{WIDE_CI:.0%}) over "
                          f"{n} photos. Add photos (the interval narrows with the square root of their number) "
                          f"before trusting this figure.")
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.0f}"


def headline(v: dict[str, Any]) -> str:
    """``"balanced accuracy 83% (95% CI 71-92%) over 50 photos, 5-fold x 4 repeats"``."""
    if "mean" not in v:
        return f"validation: {v.get('description', 'none')}"
    lo, hi = v["ci95"]
    if v.get("metric") == "MAE":
        head = f"MAE {v['mean']:.2f} (95% CI {lo:.2f}-{hi:.2f})"
    else:
        head = f"balanced accuracy {v['mean']:.0%} (95% CI {_pct(lo)}-{hi:.0%})"
        if "accuracy" in v:
            a = v["accuracy"]
            head += f", accuracy {a['mean']:.0%} (95% CI {_pct(a['ci95'][0])}-{a['ci95'][1]:.0%})"
    method = v.get("method")
    if method == "repeated_kfold":
        how = f"{v['folds']}-fold x {v['repeats']} repeats"
    elif method == "kfold":
        how = f"{v['folds']}-fold cross-validation"
    else:
        how = f"hold-out of {v.get('val', 0):.0%} of {v.get('photos', v['n'])} photos"
    return f"{head} over {v['n']} photos, {how}"


def duplicate_links(problems: list[Any], paths: set[str]) -> list[tuple[str, str]]:
    """Pairs of photos the duplicate checks found to be the same picture (exact or near copies).

    The problems of :func:`faceforge.data.check_duplicates` name the copy (``path``) and, in their
    message, the photo it copies; both must be among ``paths``.
    """
    links = []
    for p in problems:
        if getattr(p, "kind", "") not in ("duplicate", "near_duplicate"):
            continue
        msg, b = str(p.message), str(p.path)
        i = msg.find(b)
        if b not in paths or i < 0:
            continue
        rest = msg[i + len(b):]
        for marker in (" copy of ", ") as "):
            j = rest.find(marker)
            if j < 0:
                continue
            tail = rest[j + len(marker):]
            for end in (" (both ", ". Keep "):
                a = tail.split(end)[0]
                if a in paths and a != b:
                    links.append((a, b))
                    break
            break
    return links


def scored(task: str, classes: list[str], y_true: np.ndarray, y_out: np.ndarray, rows: np.ndarray,
           repeat: np.ndarray, scheme: Scheme, repeats_run: int) -> dict[str, Any]:
    """The report's metrics on the pooled validation outputs, with ``validation`` (:func:`summarize`).

    With repeated k-fold every photo is predicted once per repeat: ``n`` and the per-class
    ``support`` count photos, ``predictions`` the outputs, and the confusion matrix sums the
    repeats (``confusion_matrix_repeats``).

    Args:
        task: ``"classification"`` or ``"regression"``.
        classes: the class names.
        y_true, y_out: true label and head output (probabilities, or values) of each prediction.
        rows: the row of each prediction.
        repeat: the repeat of each prediction.
        scheme: the scheme chosen.
        repeats_run: the repeats that ran.
    """
    from faceforge.heads.metrics import classification_report, regression_report

    y_true = np.asarray(y_true)
    by_row = np.zeros(int(rows.max()) + 1, dtype=y_true.dtype)
    by_row[rows] = y_true
    if task == "regression":
        rep = regression_report(y_true, y_out)
        v = summarize("regression", by_row, rows, None, np.abs(np.asarray(y_out, np.float64) - y_true), repeat,
                      scheme, repeats_run)
    else:
        rep = classification_report(y_true, y_out, classes)
        right = np.argmax(np.asarray(y_out), axis=1) == y_true
        v = summarize("classification", by_row, rows, right, None, repeat, scheme, repeats_run, classes)
        if repeats_run > 1:
            for c, m in rep["per_class"].items():
                m["support"] = v["per_class_photos"].get(c, 0)
            rep["confusion_matrix_repeats"] = repeats_run
    if repeats_run > 1:
        rep["n"], rep["predictions"] = v["n"], v["predictions"]
    rep["validation"] = v
    return rep
