"""Step ``calibrate`` and what users get: the "unknown" check, fitted once on every photo and again
inside every validation fold, so that the validation headline counts a known face called
"unknown" as an error, as users will see it.

* :func:`calibrate` decides whether the check applies (the rule: ``people``, ``negatives`` or
  ``attributes``; see :mod:`faceforge.train.rules`) and fits it on every original photo.
* :func:`fold_accepts` refits the same check on a fold's training photos and says which of its
  validation photos it accepts.
* :func:`users_headline` turns the pooled out-of-fold labels after the check into the report's
  ``headline``: balanced accuracy and accuracy with 95% intervals and their denominators, the
  share of known photos rejected, and one sentence.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceforge.errors import FaceforgeError
from faceforge.train.config import TrainConfig
from faceforge.types import UNKNOWN

log = logging.getLogger(__name__)

#: Without ``known`` / ``negatives``, the unknown check is dropped when it would reject more known faces
#: than this: the classes are attributes (gender, smiling), not people.
MAX_AUTO_FRR = 0.5


@dataclass
class Calibration:
    """Step ``calibrate``: the "unknown" detector (or ``None``) and what it measured."""

    openset: Any | None
    unknown: dict[str, Any] | None


def calibrate(emb: Any, plan: Any, cfg: TrainConfig) -> Calibration:
    """Fit the "unknown" check (:class:`~faceforge.heads.OpenSet`) for ``target_far`` on the original photos.

    Without ``known`` / ``negatives`` classes, the check is kept only when the classes are people:
    the embedder is an identity embedder (its registry input has an identity ``threshold``) and
    the check rejects at most :data:`MAX_AUTO_FRR` of known faces.

    Args:
        emb: step ``embed``'s :class:`~faceforge.train.steps.Embedded`.
        plan: step ``check``'s :class:`~faceforge.train.steps.Plan`.
        cfg: the settings (``embedder`` already chosen, not ``"auto"``).
    """
    from faceforge.embedders.base import identity_threshold
    from faceforge.heads import OpenSet

    if plan.task != "classification" or cfg.target_far is None:
        return Calibration(None, None)
    if plan.known is None and identity_threshold(cfg.embedder) is None:
        # An attribute embedder (expression, agegender, effnet-lite0, a concatenation...): faces of strangers are
        # not far from the classes in its space, so an unknown check would only reject true faces
        # (measured: expression features on FER2013 smiling / not_smiling kept it and called
        # smiles "unknown").
        why = (f"{cfg.embedder} describes what a face looks like, not whose it is, so the classes are "
               f"attributes and every face gets a class. Pass known=[...] or negatives=... "
               f"(CLI --known / --negatives) to add an unknown check.")
        unknown0: dict[str, Any] = {"disabled": why, "rule": "attributes", "why": why}
        if plan.hint:
            unknown0["hint"] = plan.hint
        return Calibration(None, unknown0)
    keep = ~emb.augmented
    far = float(cfg.target_far)
    openset: Any = OpenSet().fit(emb.X[keep], emb.y[keep], target_far=far, seed=cfg.seed, groups=emb.groups[keep],
                                 known=plan.known)
    unknown: dict[str, Any] = {"target_far": far, "threshold": float(openset.threshold), "far": float(openset.far),
                               "frr": float(openset.frr), "known": [plan.classes[i] for i in openset.classes_],
                               "impostor_trials": int(openset.n_impostor), "genuine_trials": int(openset.n_genuine)}
    if plan.known is not None:
        unknown["negatives"] = [c for i, c in enumerate(plan.classes) if i not in plan.known]
        unknown["known_because"] = plan.known_because
        unknown.update(rule="negatives", why=plan.known_because)
    elif openset.frr > MAX_AUTO_FRR:
        # Classes that are not people (gender, emotion, ...): every face resembles some other
        # class, so a threshold that lets few "impostors" through rejects most true faces.
        why = (f"at a {far:.0%} false-accept rate the unknown check would reject {openset.frr:.0%} "
               f"of known faces (more than {MAX_AUTO_FRR:.0%}): the classes look like attributes, not people, "
               f"so every face gets a class. Pass known=[...] or negatives=... (CLI --known / --negatives) "
               f"to force it.")
        unknown = {"disabled": why, "frr": float(openset.frr), "rule": "attributes", "why": why}
        openset = None
    else:
        unknown.update(rule="people", why=(
            f"every class is a person to recognise: at a {far:.0%} false-accept rate the unknown check rejects "
            f"{openset.frr:.0%} of known faces (at most {MAX_AUTO_FRR:.0%}), so faces far from every class "
            f"are called unknown"))
    if plan.hint:
        unknown["hint"] = plan.hint
    return Calibration(openset, unknown)


def fold_accepts(emb: Any, plan: Any, cfg: TrainConfig, calib: Calibration | None, tr: np.ndarray,
                 te: np.ndarray) -> np.ndarray | None:
    """Which validation rows ``te`` the unknown check accepts, refitted on the fold's training rows ``tr``.

    The check is refitted like :func:`calibrate` (same target, same known classes, original photos
    only), so a validation photo is judged by a check that never saw it.

    Returns:
        ``(len(te),) bool``, or ``None`` when the model has no unknown check. A fold whose
        training side cannot fit the check (e.g. a single known person left) accepts every row.
    """
    if calib is None or calib.openset is None or cfg.target_far is None:
        return None
    from faceforge.heads import OpenSet

    orig = tr[~emb.augmented[tr]]
    try:
        os_fold = OpenSet().fit(emb.X[orig], emb.y[orig], target_far=float(cfg.target_far), seed=cfg.seed,
                                groups=emb.groups[orig], known=plan.known)
    except FaceforgeError as e:  # too few photos on this fold's training side
        log.info("validation fold: unknown check not fitted (%s); every face accepted", e)
        return np.ones(len(te), bool)
    return np.asarray(os_fold.accept(emb.X[te]), bool)


def rejected_index(classes: list[str], known: list[int] | None) -> int:
    """The class index a rejected face gets: the one negatives class, else -1 (``"unknown"``)."""
    if known is None:
        return -1
    neg = [i for i in range(len(classes)) if i not in known]
    return neg[0] if len(neg) == 1 else -1


def users_headline(fitted: Any, splits: Any, calib: Calibration, plan_known: list[int] | None,
                   validation: dict[str, Any]) -> dict[str, Any] | None:
    """The accuracy users get on the validation photos: each photo's final label after the unknown
    check (a known face called unknown is an error), pooled over the folds and repeats.

    Args:
        fitted: step ``fit``'s :class:`~faceforge.train.steps.Fitted` (``accepted`` per output).
        splits: step ``split``'s :class:`~faceforge.train.steps.Splits`.
        calib: step ``calibrate``'s result.
        plan_known: the known classes (``None``: all).
        validation: the report's ``validation`` (the head alone), reused without a check.

    Returns:
        ``{"metric", "mean", "ci95", "accuracy", "n", "method", ..., "unknown_check",
        "known_rejected", "known_predictions", "rejected_label", "text"}``; ``None`` for
        regression or without validation.
    """
    from faceforge.train import validation as V

    if fitted.task != "classification" or fitted.y_out is None or "mean" not in validation:
        return None
    y_true = np.asarray(fitted.y_true).astype(np.int64)
    top1 = np.argmax(np.asarray(fitted.y_out), axis=1)
    classes = list(fitted.classes)
    rej = rejected_index(classes, plan_known)
    rejected_label = classes[rej] if rej >= 0 else UNKNOWN
    keep_keys = ("method", "folds", "repeats", "n", "photos", "predictions", "description", "val")
    if fitted.accepted is None:
        out = {k: validation[k] for k in (*keep_keys, "metric", "mean", "ci95", "accuracy") if k in validation}
        rule = (calib.unknown or {}).get("rule", "off")
        out.update(unknown_check=False, known_rejected=None, rejected_label=None,
                   text=f"{V.headline(validation)}; every face gets a class (no unknown check: rule {rule})")
        return out
    final = np.where(fitted.accepted, top1, rej)
    right = final == y_true
    rows = np.asarray(fitted.rows)
    by_row = np.zeros(int(rows.max()) + 1, dtype=np.int64)
    by_row[rows] = y_true
    v = V.summarize("classification", by_row, rows, right, None, fitted.repeat, splits.scheme, fitted.repeats_run,
                    classes)
    known_mask = np.ones(len(y_true), bool) if plan_known is None else np.isin(y_true, plan_known)
    said_rejected = ~fitted.accepted & (top1 != rej)
    known_rejected = float(said_rejected[known_mask].mean()) if known_mask.any() else None
    out = {k: v[k] for k in (*keep_keys, "metric", "mean", "ci95", "accuracy", "warning") if k in v}
    out.update(unknown_check=True, rejected_label=rejected_label, known_rejected=known_rejected,
               known_predictions=int(known_mask.sum()))
    share = f"{known_rejected:.1%} of {int(known_mask.sum())} predictions" if known_rejected is not None else "none"
    out["text"] = (f"{V.headline(v)}; a known face called {rejected_label!r} counts as an error "
                   f"(known faces rejected: {share})")
    return out
