"""Class health over time: too few photos, a class that stopped growing, new photos unlike the old.

:func:`class_health` runs at the end of every ingest (its result is ``IngestReport.health``);
:func:`unlike_old` is the check ingest uses to refuse a class's new batch before filing it.

"Unlike its old photos" must work for identity classes (one person per class) and for attribute
classes that hold many people (male / female, age bands). It is judged on the 128-d dlib-resnet
embeddings of the main faces and combines two measures:

* ``ratio``: the distance of the new batch's mean embedding from the old photos' mean, over the
  95th percentile of the same distance for batches of the same size drawn from the old photos
  (each draw compared with the mean of the old photos not drawn; 200 draws, seeded). A new batch
  like the old photos scores about 0.3-1.0; another person's photos 1.2-5.
* ``knn_share``: the share of the new faces whose k nearest old faces (k = 5, fewer for small
  classes) are mostly of this class, over the same share for the class's own old faces (leave
  one out). Only measured when another class has old photos.

A batch is flagged when ``ratio > 1.0`` and (when measured) ``knn_share < 0.7`` x the class's own
share; with a single class, when ``ratio > 1.2``. At least :data:`MIN_OLD` old photos are needed.

Measured (dlib-resnet on the photo detector's main faces; 20 to 30 trials per case):

================================================  ===============  ===========================
case                                              flagged: same     flagged: another's photos
================================================  ===============  ===========================
AT&T faces, 20 people, 6 old + 4 new per person   0 %              100 %
AT&T faces, 20 people, 3 old + 2 new              0 %              100 %
TV characters, 8 people, 3 old + 2 new            0 %              100 %
UTKFace gender, 100 old per class, 25 new people  0 %              100 % (other gender)
UTKFace gender, 100 old per class, 10 new people  0 %              100 %
UTKFace gender, 100 old per class, 5 new people   0 %              80 %
================================================  ===============  ===========================

(The mean rule alone at ``ratio > 1.0`` flagged 3-10 % of same-class batches; the kNN share alone
overlapped for gender batches of 5-10. Expression classes are not separable in an identity
embedding: a batch of the wrong emotion is not reliably flagged.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Fewer photos than this in a class is a warning.
MIN_PHOTOS = 20
#: A class with no new photo in its last this many runs has stopped growing.
STALLED_RUNS = 3
#: The unlike check: mean-distance ratio above which a batch may be unlike (see the module docs).
UNLIKE_RATIO = 1.0
#: ... with a single class (no kNN share to confirm it).
UNLIKE_RATIO_ALONE = 1.2
#: ... and the kNN share, relative to the class's own, below which it is unlike.
UNLIKE_KNN = 0.7
#: Old photos a class needs before its new batches are judged.
MIN_OLD = 3
_DRAWS = 200


def _knn_share(X: np.ndarray, old: np.ndarray, labels: np.ndarray, cls: str, k: int,
               exclude: np.ndarray | None = None) -> float:
    d = np.linalg.norm(X[:, None, :] - old[None, :, :], axis=2)
    if exclude is not None:
        d[np.arange(len(X)), exclude] = np.inf
    nn = np.argsort(d, axis=1)[:, :k]
    return float(np.mean([(labels[r] == cls).mean() > 0.5 for r in nn])) if len(X) else 1.0


def unlike_old(old_by_class: Mapping[str, np.ndarray], cls: str, new: np.ndarray, *,
               ratio: float = UNLIKE_RATIO, ratio_alone: float = UNLIKE_RATIO_ALONE,
               knn: float = UNLIKE_KNN, seed: int = 0) -> dict[str, Any] | None:
    """Whether ``new`` faces look unlike the old faces of ``cls`` (see the module docs).

    Args:
        old_by_class: ``{class: (n, d) embeddings}`` of the old faces of every class.
        cls: the class the new faces were filed under.
        new: ``(m, d)`` embeddings of the new batch.
        ratio, ratio_alone, knn: the rule's thresholds.
        seed: seed of the draws.

    Returns:
        None when it cannot be judged (fewer than :data:`MIN_OLD` old faces, or no new face), else
        ``{"flagged": bool, "ratio": float, "knn_share": float | None, "knn_base": float | None,
        "reason": str}``.
    """
    old = np.asarray(old_by_class.get(cls, np.zeros((0, 0))), np.float32)
    new = np.atleast_2d(np.asarray(new, np.float32))
    if len(old) < MIN_OLD or not len(new) or new.shape[1] != old.shape[1]:
        return None
    rng = np.random.default_rng(seed)
    n = min(len(new), len(old) - 1)
    mu = old.mean(0)
    null = np.empty(_DRAWS)
    for i in range(_DRAWS):
        pick = rng.choice(len(old), size=n, replace=False)
        rest = np.delete(old, pick, 0)
        null[i] = np.linalg.norm(old[pick].mean(0) - rest.mean(0))
    r = float(np.linalg.norm(new.mean(0) - mu) / max(float(np.percentile(null, 95)), 1e-9))
    others = [c for c, e in old_by_class.items() if c != cls and len(e)]
    share = base = None
    if others:
        allE = np.concatenate([old] + [np.asarray(old_by_class[c], np.float32) for c in others])
        labels = np.array([cls] * len(old) + [c for c in others for _ in range(len(old_by_class[c]))])
        k = max(1, min(5, len(old) - 1))
        base = _knn_share(old, allE, labels, cls, k, exclude=np.arange(len(old)))
        share = _knn_share(new, allE, labels, cls, k)
        flagged = r > ratio and share < knn * base
    else:
        flagged = r > ratio_alone
    if flagged:
        why = (f"the {len(new)} new face(s) look unlike the {len(old)} old photos of {cls!r} (their mean is "
               f"{r:.2f}x as far from the old photos' mean as batches of old photos are"
               + (f"; {share:.0%} of them are nearest to {cls!r} faces, against {base:.0%} of its old photos"
                  if share is not None else "") + ")")
    else:
        why = ""
    return {"flagged": bool(flagged), "ratio": round(r, 3), "knn_share": None if share is None else round(share, 3),
            "knn_base": None if base is None else round(base, 3), "reason": why}


def _photos(dataset: Path) -> dict[str, int]:
    from faceforge.collect.ledger import META_DIR, REVIEW_DIR
    from faceforge.sources.walk import media_kind

    out: dict[str, int] = {}
    if not dataset.is_dir():
        return out
    for d in sorted(dataset.iterdir()):
        if not d.is_dir() or d.name.startswith(".") or d.name in (META_DIR, REVIEW_DIR):
            continue
        out[d.name] = sum(1 for here, dirs, files in os.walk(d) for f in files
                          if not f.startswith(".") and media_kind(Path(here) / f) == "image")
    return out


def class_health(dataset: str | os.PathLike, new_faces_by_class: Mapping[str, np.ndarray] | None = None, *,
                 old_faces_by_class: Mapping[str, np.ndarray] | None = None,
                 runs: Sequence[Mapping[str, Any]] | None = None, min_photos: int = MIN_PHOTOS,
                 stalled_runs: int = STALLED_RUNS) -> list[dict[str, Any]]:
    """The health of every class of ``dataset``.

    Args:
        dataset: the dataset folder (class folders; ``review/`` and hidden folders are not classes).
        new_faces_by_class: ``{class: (n, d) embeddings}`` of this run's new faces (judged
            against ``old_faces_by_class``); None: no unlike check.
        old_faces_by_class: the old faces' embeddings (default: the ledger's faces not in this run
            are not known here, so pass them; None: no unlike check).
        runs: earlier runs' reports, oldest first (``IngestReport.to_dict()``, with ``routed``);
            default: the ledger's finished runs.
        min_photos: fewer photos than this is a warning.
        stalled_runs: no new photo in this many last runs that filed photos (this one included
            when it filed any) is a warning; runs that filed nothing are not counted.

    Returns:
        One dict per class, sorted by name: ``class``, ``photos`` (images in its folder), ``new``,
        ``runs_without_new`` (None when fewer runs than ``stalled_runs``), ``unlike`` (see
        :func:`unlike_old`, or None), ``flags`` (``few_photos``, ``stalled``, ``unlike``) and
        ``warnings`` (one sentence per flag).
    """
    from faceforge.collect.ledger import Ledger

    root = Path(dataset)
    photos = _photos(root)
    new = dict(new_faces_by_class or {})
    if runs is None:
        runs = [r["report"] for r in Ledger(root, create=False).runs() if r.get("report")]
    # runs that filed nothing at all (nothing arrived) say nothing about one class stopping
    history = [dict(r.get("routed") or {}) for r in runs if any((r.get("routed") or {}).values())]
    if any(len(v) for v in new.values()):
        history.append({c: len(v) for c, v in new.items()})
    out = []
    for c in sorted(set(photos) | set(new)):
        flags, warnings = [], []
        n = photos.get(c, 0)
        if n < min_photos:
            flags.append("few_photos")
            warnings.append(f"class {c!r} has {n} photo(s); aim for {min_photos} or more (add photos of {c!r}).")
        quiet = None
        if len(history) >= stalled_runs:
            quiet = 0
            for h in reversed(history):
                if h.get(c):
                    break
                quiet += 1
            if quiet >= stalled_runs:
                flags.append("stalled")
                warnings.append(f"class {c!r} got no new photo in the last {quiet} run(s): it stopped growing "
                                f"(is its source still delivering?).")
        unlike = None
        if old_faces_by_class is not None and c in new and len(new[c]):
            unlike = unlike_old(old_faces_by_class, c, new[c])
            if unlike and unlike["flagged"]:
                flags.append("unlike")
                warnings.append(unlike["reason"][0].upper() + unlike["reason"][1:] + ".")
        out.append({"class": c, "photos": n, "new": int(len(new.get(c, ()))), "runs_without_new": quiet,
                    "unlike": unlike, "flags": flags, "warnings": warnings})
    return out


__all__ = ["MIN_OLD", "MIN_PHOTOS", "STALLED_RUNS", "UNLIKE_KNN", "UNLIKE_RATIO", "UNLIKE_RATIO_ALONE",
           "class_health", "unlike_old"]
