"""Step ``choose``: ``embedder="auto"`` / ``head="auto"`` pick the features and the head for the user's photos.

Every installed embedder of the registry embeds the photos (cached by content, so the winner's
embeddings are reused by the real fit), and every head that suits small data (logistic
regression with its ``C`` chosen by inner cross-validation, kNN with its ``k`` chosen, a linear
SVM) is scored by repeated stratified group k-fold (:func:`faceforge.heads.splits.repeated_kfold`;
a photo's near duplicates stay on its side). The score is balanced accuracy (MAE for numbers,
where only ridge exists, so only the embedder is chosen). The best wins; scores within
:data:`TIE` of the best go to the cheaper embedder (:data:`COST_ORDER`) and the simpler head.

Bounded time: the search runs on a stratified subsample of at most :data:`MAX_PHOTOS` photos
(without augmented copies), with :data:`MIN_REPEATS` to :data:`MAX_REPEATS` repeats of the folds
while the fits stay within :data:`FIT_BUDGET_S`; the winner is then fitted on every photo.

Then the concatenation of the two best embedders (``"a+b"``, :mod:`faceforge.embedders.concat`;
their cached embeddings side by side) is scored the same way, unless the best already scores
perfectly; being dearer than either part, it wins only when it beats them by more than a tie.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np

from faceforge.train.config import TrainConfig

log = logging.getLogger(__name__)

AUTO = "auto"
#: the search runs on a stratified subsample of at most this many photos.
MAX_PHOTOS = 600
#: heads tried for classes (the default, ``logreg``, first: it wins ties).
CLASS_HEADS = ("logreg", "svm", "knn")
#: scores closer than this to the best are ties (0.5 points of balanced accuracy).
TIE = 0.005
#: cheaper embedders first (time per face on a CPU, the identity embedder first for people);
#: embedders not listed come after, by name.
COST_ORDER = ("dlib-resnet", "gendernet", "agegender", "expression", "effnet-lite0")
#: repeats of the folds per candidate: at least MIN_REPEATS, more while within FIT_BUDGET_S.
MIN_REPEATS = 1
MAX_REPEATS = 3
FIT_BUDGET_S = 90.0
#: a concatenation of two embedders is chosen only when it beats the best single one by more than
#: this (1 point of balanced accuracy; 1% of the MAE): it costs both embedders at every face.
PAIR_GAIN = 0.01


def wanted(cfg: TrainConfig) -> bool:
    """Whether ``cfg`` asks for the search (``embedder`` or ``head`` is ``"auto"``)."""
    return cfg.embedder == AUTO or cfg.head == AUTO


def placeholder(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with ``"auto"`` replaced by the defaults, for the cheap checks before the search."""
    return dataclasses.replace(cfg, embedder="dlib-resnet" if cfg.embedder == AUTO else cfg.embedder,
                               head=None if cfg.head == AUTO else cfg.head)


def candidates() -> list[str]:
    """Installed embedders of the registry, cheapest first."""
    from faceforge.registry import get_spec, is_installed, model_names

    names = sorted({get_spec(n).name for n in model_names("embed") if is_installed(n)}, key=_cost)
    return names


def _cost(name: str) -> tuple[int, str]:
    from faceforge.embedders.concat import split_name

    parts = split_name(name)
    if parts is not None:  # a concatenation costs its parts together, after every single embedder
        return (len(COST_ORDER) + 1 + sum(_cost(p)[0] for p in parts), name)
    return (COST_ORDER.index(name) if name in COST_ORDER else len(COST_ORDER), name)


def pair_to_try(board: list[dict[str, Any]], lower: bool) -> str | None:
    """The concatenation of the two best single embedders on ``board``, or ``None`` (fewer than two,
    or the best already perfect)."""
    from faceforge.embedders.concat import join_names, split_name

    best: dict[str, float] = {}
    for r in board:
        if split_name(r["embedder"]) is None:
            v = r["score"]
            best[r["embedder"]] = min(best.get(r["embedder"], v), v) if lower else max(best.get(r["embedder"], v), v)
    if len(best) < 2:
        return None
    ranked = sorted(best, key=lambda e: (best[e] if lower else -best[e], _cost(e)))
    if (best[ranked[0]] <= 0.0) if lower else (best[ranked[0]] >= 1.0):
        return None
    return join_names(sorted(ranked[:2], key=_cost))


def subsample(ds: Any, limit: int = MAX_PHOTOS, seed: int = 0) -> Any:
    """A stratified subsample of at most ``limit`` photos of ``ds`` (``ds`` itself when smaller)."""
    from faceforge.heads.splits import strata

    n = len(ds.samples)
    if n <= limit:
        return ds
    s = strata([x.label for x in ds.samples] if ds.task == "classification"
               else np.array([float(x.label) for x in ds.samples]))
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for c in np.unique(s):
        idx = np.flatnonzero(s == c)
        k = max(2, int(round(limit * len(idx) / n)))
        keep += rng.choice(idx, size=min(k, len(idx)), replace=False).tolist()
    keep = sorted(keep)
    return dataclasses.replace(ds, samples=[ds.samples[i] for i in keep], problems=[])


def choose(loaded: Any, cfg: TrainConfig) -> tuple[TrainConfig, dict[str, Any]]:
    """Score every (embedder, head) candidate on the user's photos and return the winner's settings.

    Args:
        loaded: step ``load``'s :class:`~faceforge.train.steps.Loaded`.
        cfg: the settings; ``embedder`` and / or ``head`` ``"auto"``.

    Returns:
        ``(cfg with the chosen embedder and head, report)``; the report is
        ``{"leaderboard": [{"embedder", "head", "score", "ci95", "photos", "metric"}...] (best first),
        "chosen": {"embedder", "head", "score"}, "metric", "photos", "seconds", "how"}``.

    Raises:
        DatasetError: no candidate could be scored (e.g. too few photos with a face).
    """
    from faceforge.data import EmbeddingCache, check_duplicates, embed_dataset
    from faceforge.errors import DatasetError
    from faceforge.heads.splits import auto_folds, merge_groups
    from faceforge.train.steps import check_usable
    from faceforge.train.validation import duplicate_links

    t0 = time.perf_counter()
    ds = loaded.dataset
    task = ds.task
    embedders = candidates() if cfg.embedder == AUTO else [cfg.embedder]
    forced = cfg.head not in (None, AUTO)  # a head the user named is kept
    if forced:
        heads: tuple[str, ...] = (str(cfg.head),)
    else:
        heads = ("ridge",) if task == "regression" else CLASS_HEADS
    sub = subsample(ds, MAX_PHOTOS, cfg.seed)
    cache = EmbeddingCache()
    board: list[dict[str, Any]] = []
    fit_s = 0.0
    dup: list[Any] | None = None
    lower = task == "regression"
    todo = list(embedders)
    paired = cfg.embedder != AUTO or len(embedders) < 2  # the pair of the two best is tried once, last
    done = 0
    why: DatasetError | None = None  # why the first embedder left a class too small
    while todo:
        name = todo.pop(0)
        cfg.emit("searching", {"embedder": name, "done": done, "total": done + len(todo) + 1 + (0 if paired else 1)})
        done += 1
        ed = embed_dataset(sub, embedder=name, detector=cfg.detector, crops=cfg.crops, augment=False,
                           cache=cache, workers=cfg.workers, progress=cfg.progress, alignment=cfg.alignment,
                           engine=cfg.engine, quality=cfg.quality)
        X, y, paths = ed.X, np.asarray(ed.y), np.asarray(ed.paths)
        if dup is None:
            dup = list(check_duplicates(sub, cache=cache))
        groups = merge_groups(paths, duplicate_links(dup, set(paths.tolist())))
        if len(y) < 4 or (task == "classification" and (len(np.unique(y)) < 2 or np.bincount(
                y.astype(int), minlength=len(ds.classes)).min() < 2)):
            log.info("auto: %s leaves too few photos with a face (%d); skipped", name, len(y))
            if why is None and task == "classification":
                try:  # the same words train would use: which class, which photos were dropped and why
                    check_usable(list(ds.classes), y, list(ed.problems))
                except DatasetError as e:
                    why = e
        else:
            k = auto_folds(y, groups)
            for head in heads:
                t1 = time.perf_counter()
                row = _score(X, y, groups, k, name, head, task, ds.classes, cfg, budget_left=FIT_BUDGET_S - fit_s)
                fit_s += time.perf_counter() - t1
                row["photos"] = int(len(y))
                board.append(row)
                log.info("auto: %s with %s: %.4f", name, head, row["score"])
        if not todo and not paired:
            paired = True
            pair = pair_to_try(board, lower)  # then the two best side by side
            if pair is not None:
                todo.append(pair)
    if not board:
        if why is not None:
            raise why
        raise DatasetError("The feature search found no embedder that keeps at least 2 photos with a face per "
                           "class. Add clear face photos, or pass --crops always when the photos are face crops.")
    win = pick(board, lower, heads)
    board.sort(key=lambda r: (r["score"] if lower else -r["score"], _cost(r["embedder"])))
    metric = "mae" if lower else "balanced_accuracy"
    report = {"leaderboard": board, "chosen": {"embedder": win["embedder"], "head": win["head"],
                                               "score": win["score"]},
              "metric": metric, "photos": len(sub.samples), "subsampled": len(sub.samples) < len(ds.samples),
              "seconds": round(time.perf_counter() - t0, 3),
              "how": (f"{len(board)} candidates scored by repeated stratified {metric} cross-validation on "
                      f"{len(sub.samples)} of {len(ds.samples)} photos (the two best embedders also side by "
                      f"side, kept only {PAIR_GAIN * 100:.0f} point(s) above the best alone); ties within "
                      f"{TIE * 100:.1f} points go to the cheaper embedder")}
    new = dataclasses.replace(cfg, embedder=win["embedder"], head=win["head"],
                              head_params=cfg.head_params if forced else None)
    return new, report


def pick(board: list[dict[str, Any]], lower: bool, heads: tuple[str, ...]) -> dict[str, Any]:
    """The winning row: the best score, a concatenation's counted :data:`PAIR_GAIN` worse (it must
    clearly help to be worth its cost); rows within :data:`TIE` of the best go to the cheaper
    embedder, then to the earlier head."""
    from faceforge.embedders.concat import split_name

    def eff(r: dict[str, Any]) -> float:
        if split_name(r["embedder"]) is None:
            return float(r["score"])
        return float(r["score"]) * (1 + PAIR_GAIN) if lower else float(r["score"]) - PAIR_GAIN

    best = min(map(eff, board)) if lower else max(map(eff, board))
    tol = TIE * (abs(best) if lower else 1.0)
    close = [r for r in board if abs(eff(r) - best) <= tol]
    return min(close, key=lambda r: (_cost(r["embedder"]), heads.index(r["head"]) if r["head"] in heads else 0))


def _score(X: np.ndarray, y: np.ndarray, groups: np.ndarray, k: int, embedder: str, head: str, task: str,
           classes: list[str], cfg: TrainConfig, budget_left: float) -> dict[str, Any]:
    """Mean over repeats of the out-of-fold score of one candidate, with a 95% interval."""
    from faceforge.embedders.base import embedder_class
    from faceforge.heads import make_head
    from faceforge.heads.splits import kfold

    params = dict(cfg.head_params or {}) if cfg.head not in (None, AUTO) else {}
    params.setdefault("normalize", bool(getattr(embedder_class(embedder), "normalize_for_heads", True)))
    scores: list[float] = []
    t0 = time.perf_counter()
    for r in range(MAX_REPEATS):
        if r >= MIN_REPEATS and (time.perf_counter() - t0) * (r + 1) / r > budget_left:
            break
        out = np.zeros(len(y)) if task == "regression" else np.zeros(len(y), int)
        seen = np.zeros(len(y), bool)
        for tr, te in kfold(y, k, seed=int(cfg.seed) + r, groups=groups):
            if task == "classification" and len(np.unique(y[tr])) < 2:
                continue
            h = make_head(head, task, seed=cfg.seed, **params)
            if task == "regression":
                h.fit(X[tr], y[tr], groups=groups[tr])
                out[te] = h.predict(X[te])
            else:
                h.fit(X[tr], y[tr], classes=classes, groups=groups[tr])
                out[te] = np.argmax(h.predict_proba(X[te]), axis=1)
            seen[te] = True
        scores.append(_metric(task, y[seen], out[seen]))
    mean = float(np.mean(scores))
    mean_ci = mean
    n = int(len(y))
    if task == "regression":
        half = 1.96 * float(np.std(scores, ddof=1)) / np.sqrt(len(scores)) if len(scores) > 1 else float("nan")
    else:
        # Agresti-Coull on the photos (the repeats share their photos, so they add no information)
        from faceforge.train.validation import agresti_coull

        pt, var, _ = agresti_coull(mean * n, n)
        half = 1.96 * float(np.sqrt(var))
        mean_ci = pt
    ci = [mean_ci - half, mean_ci + half] if task == "classification" else \
        ([mean - half, mean + half] if np.isfinite(half) else None)
    if ci is not None and task == "classification":
        ci = [max(0.0, ci[0]), min(1.0, ci[1])]
    return {"embedder": embedder, "head": head, "score": round(mean, 4),
            "ci95": [round(c, 4) for c in ci] if ci else None, "repeats": len(scores), "folds": int(k)}


def _metric(task: str, y: np.ndarray, out: np.ndarray) -> float:
    if task == "regression":
        return float(np.mean(np.abs(y.astype(float) - out)))
    yi = y.astype(int)
    return float(np.mean([np.mean(out[yi == c] == c) for c in np.unique(yi)]))
