"""Training as named steps: load -> check -> embed -> split -> calibrate -> fit -> report -> save.

Each step is a small function that takes and returns explicit objects, so a step can be run,
inspected or replaced alone (:func:`faceforge.train.train` runs them in order)::

    cfg = TrainConfig(head="svm")
    loaded = load("photos/", cfg)
    plan = check(loaded, cfg)            # cheap checks, before the expensive embedding
    emb = embed(loaded, cfg)
    splits = split(emb, cfg)
    calib = calibrate(emb, plan, cfg)    # the unknown check (also refitted in every fold)
    fitted = fit(emb, splits, plan, cfg, calib)
    rep = report(fitted, splits, calib)
    result = save("people.ffm", loaded, emb, plan, fitted, calib, rep, cfg)
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceforge._fs import atomic_write
from faceforge.errors import DatasetError
from faceforge.train.config import TrainConfig, crops_name
from faceforge.train.rules import NEGATIVE_NAMES as NEGATIVE_NAMES  # re-exported (faceforge.train.core)
from faceforge.train.rules import fold_problems
from faceforge.train.rules import known_classes as known_classes
from faceforge.train.rules import negatives_hint as negatives_hint
from faceforge.train.unknown import MAX_AUTO_FRR as MAX_AUTO_FRR  # re-exported
from faceforge.train.unknown import Calibration as Calibration
from faceforge.train.unknown import calibrate as calibrate
from faceforge.train.unknown import fold_accepts, users_headline

log = logging.getLogger(__name__)

MODEL_SUFFIX = ".ffm"


# -- what the steps pass on ------------------------------------------------------------------

@dataclass
class Loaded:
    """Step ``load``: the data set (samples, classes, task) and the problems found reading it."""

    source: Path
    dataset: Any
    problems: list[Any]


@dataclass
class Plan:
    """Step ``check``: what will be trained, decided before any image is embedded."""

    task: str
    head: str
    head_params: dict[str, Any]
    classes: list[str]
    known: list[int] | None = None
    known_because: str = ""
    #: a hint when a class is named like "anyone else" but ``negatives`` was not given
    hint: str = ""


@dataclass
class Embedded:
    """Step ``embed``: one row per (possibly augmented) image."""

    data: Any
    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    augmented: np.ndarray
    problems: list[Any]
    seconds: float


@dataclass
class Splits:
    """Step ``split``: ``(train_idx, test_idx)`` pairs (test rows never augmented) and how."""

    pairs: list[tuple[np.ndarray, np.ndarray]]
    how: str
    #: the repeat of each pair (all 0 but for repeated k-fold)
    repeat: list[int] = field(default_factory=list)
    #: the :class:`~faceforge.train.validation.Scheme` chosen
    scheme: Any = None
    #: the group of each row used to split (source image, near duplicates joined)
    groups: np.ndarray | None = None


@dataclass
class Fitted:
    """Step ``fit``: the final head (all rows), validation outputs and the learning curve."""

    head: Any
    y_true: np.ndarray | None
    y_out: np.ndarray | None
    curve: dict[str, Any] | None
    task: str
    classes: list[str]
    #: the row and the repeat of each validation output
    rows: np.ndarray | None = None
    repeat: np.ndarray | None = None
    #: repeats of the validation that ran (the time budget may cut repeated k-fold short)
    repeats_run: int = 0
    #: whether the unknown check, refitted in each fold, accepted each validation output
    #: (``None``: the model has no unknown check)
    accepted: np.ndarray | None = None


@dataclass
class TrainResult:
    """What :func:`faceforge.train.train` produced.

    Attributes:
        model_path: the model file.
        report: validation report (metrics on held-out images).
        report_path: JSON report beside the model.
        plots: PNG files written (confusion matrix, learning curve).
        problems: data problems found (unreadable files, duplicates, small classes, ...).
        timings: seconds per phase (``embed_s``, ``fit_s``, ``total_s``) and cache hits / misses.
        manifest: the model file's manifest.
    """

    model_path: Path
    report: dict[str, Any]
    report_path: Path
    plots: list[Path] = field(default_factory=list)
    problems: list[Any] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)


# -- the steps ---------------------------------------------------------------------------------

def load(data: str | os.PathLike, cfg: TrainConfig) -> Loaded:
    """Read a folder of class folders or a CSV (emits ``"dataset"``).

    Raises:
        DatasetError: missing or unusable data.
    """
    from faceforge.data import load_dataset

    extra: dict[str, Any] = {"image_root": cfg.image_root} if cfg.image_root is not None else {}
    ds = load_dataset(data, task=cfg.task, label_column=cfg.label_column, path_column=cfg.path_column, **extra)
    cfg.emit("dataset", ds)
    return Loaded(Path(data), ds, list(ds.problems))


def check(loaded: Loaded, cfg: TrainConfig) -> Plan:
    """Decide the head and the known classes, and check them against the data (no image is read).

    Raises:
        ParameterError: a head that does not fit the task, bad head parameters, or unknown
            ``known`` classes.
    """
    from faceforge.embedders.base import embedder_class
    from faceforge.heads import make_head
    from faceforge.train import auto

    if auto.wanted(cfg):  # before the search: check with the defaults in place of "auto"
        cfg = auto.placeholder(cfg)
    ds = loaded.dataset
    kind = cfg.head or ("ridge" if ds.task == "regression" else "logreg")
    params = dict(cfg.head_params or {})
    # every head takes "normalize" (kNN's cosine metric normalises anyway)
    params.setdefault("normalize", bool(getattr(embedder_class(cfg.embedder), "normalize_for_heads", True)))
    make_head(kind, ds.task, seed=cfg.seed, **params)  # refuses a bad head or parameter now
    plan = Plan(ds.task, kind, params, list(ds.classes))
    if ds.task == "classification":
        plan.known, plan.known_because = known_classes(plan.classes, cfg.known, cfg.negatives)
        if cfg.known is None and cfg.negatives is None:
            plan.hint = negatives_hint(plan.classes)
            if plan.hint:
                log.info("%s", plan.hint)
    return plan


def embed(loaded: Loaded, cfg: TrainConfig) -> Embedded:
    """Embed every image (cached), refuse classes left too small, find duplicates (emits ``"embedded"``).

    Duplicates are looked for after embedding because the check reuses the file hashes the
    embedding pass stored.

    Raises:
        DatasetError: a class with fewer than 2 usable photos.
    """
    from faceforge.data import EmbeddingCache, check_duplicates, embed_dataset
    from faceforge.errors import ParameterError
    from faceforge.train import auto

    if auto.wanted(cfg):
        raise ParameterError("embed needs a chosen embedder, but got embedder / head 'auto'. Run the search "
                             "first: cfg, board = faceforge.train.auto.choose(loaded, cfg), or name one.")
    ds = loaded.dataset
    cache = EmbeddingCache()
    t0 = time.perf_counter()
    ed = embed_dataset(ds, embedder=cfg.embedder, detector=cfg.detector, crops=cfg.crops, augment=cfg.augment,
                       cache=cache, workers=cfg.workers, progress=cfg.progress, alignment=cfg.alignment,
                       engine=cfg.engine, quality=cfg.quality)
    seconds = time.perf_counter() - t0
    problems = list(loaded.problems)
    problems += [p for p in ed.problems if p not in problems]
    aug = np.asarray(ed.augmented, bool)
    if ds.task == "classification":
        check_usable(ds.classes, np.asarray(ed.y)[~aug], ed.problems)
    problems += list(check_duplicates(ds, cache=cache))  # after embedding: reuses its file hashes
    cfg.emit("embedded", ed)
    return Embedded(ed, ed.X, ed.y, np.asarray(ed.paths), aug, problems, seconds)


def split(emb: Embedded, cfg: TrainConfig) -> Splits:
    """Validation splits (:mod:`faceforge.train.validation`): repeated k-fold under
    :data:`~faceforge.train.validation.SMALL_SET` photos, else one stratified hold-out;
    ``folds >= 2`` or ``val`` given force k-fold or the hold-out (``val=0``: none).

    A photo, its augmented copies and its near duplicates stay on one side; augmented copies are
    never tested on; a class left without training photos in a split keeps them for training.
    """
    from faceforge.heads.splits import merge_groups, repeated_kfold, split_holdout
    from faceforge.train import validation as V

    y, aug = emb.y, emb.augmented
    groups = merge_groups(emb.groups, V.duplicate_links(emb.problems, set(np.asarray(emb.groups)[~aug].tolist())))
    photos = int((~aug).sum())
    scheme = V.choose(y[~aug], groups[~aug], photos, val=cfg.val, folds=cfg.folds, repeats=cfg.repeats)
    if scheme.method == "none":
        return Splits([], "none (val=0)", scheme=scheme, groups=groups)
    if scheme.method == "holdout":
        pairs, repeat = [split_holdout(y, val=scheme.val, seed=cfg.seed, groups=groups)], [0]
    else:
        per = repeated_kfold(y, scheme.folds, scheme.repeats, seed=cfg.seed, groups=groups)
        pairs = [p for folds in per for p in folds]
        repeat = [r for r, folds in enumerate(per) for _ in folds]
    out = []
    for tr, te in pairs:
        te = te[~aug[te]]
        if getattr(emb.data, "task", "classification") == "classification":
            lost = ~np.isin(y[te], y[tr])
            if lost.any():
                tr, te = np.sort(np.r_[tr, te[lost]]), te[~lost]
        out.append((tr, te))
    if not any(len(te) for _, te in out):  # e.g. 2 photos per class: none can be held out
        return Splits([], "none: too few photos to hold any out for validation (add photos, or use folds)",
                      scheme=scheme, groups=groups)
    return Splits(out, V.describe(scheme.method, scheme.folds, scheme.repeats, scheme.val, photos), repeat,
                  scheme, groups)


def fit_head(emb: Embedded, plan: Plan, cfg: TrainConfig, idx: np.ndarray) -> Any:
    """A new head of the plan's kind, trained on rows ``idx``."""
    from faceforge.heads import make_head

    h = make_head(plan.head, plan.task, seed=cfg.seed, **plan.head_params)
    if plan.task == "regression":
        return h.fit(emb.X[idx], emb.y[idx], groups=emb.groups[idx])
    return h.fit(emb.X[idx], emb.y[idx], classes=plan.classes, groups=emb.groups[idx])


def fit(emb: Embedded, splits: Splits, plan: Plan, cfg: TrainConfig, calib: Calibration | None = None) -> Fitted:
    """Fit one head per validation split (and the learning curve on the same folds), then the final
    head on every row.

    With ``calib`` holding an unknown check, the check is refitted on each fold's training photos
    too (:func:`~faceforge.train.unknown.fold_accepts`), so the report can say what users get.

    Repeated k-fold stops after fewer repeats when the first one shows that all would take more
    than :data:`~faceforge.train.validation.TIME_BUDGET_S` (at least
    :data:`~faceforge.train.validation.MIN_REPEATS` run).
    """
    from faceforge.train import validation as V
    from faceforge.train.curve import learning_curve

    rows: list[np.ndarray] = []
    outs: list[np.ndarray] = []
    reps: list[np.ndarray] = []
    acc: list[np.ndarray] = []
    used: list[tuple[tuple[np.ndarray, np.ndarray], Any]] = []
    planned = splits.scheme.repeats if splits.scheme is not None else 1
    limit = planned
    t0 = time.perf_counter()
    for i, (tr, te) in enumerate(splits.pairs):
        r = splits.repeat[i] if splits.repeat else 0
        if r >= limit:
            break
        if len(te):
            h = fit_head(emb, plan, cfg, tr)
            used.append(((tr, te), h))
            rows.append(te)
            reps.append(np.full(len(te), r))
            outs.append(h.predict(emb.X[te]) if plan.task == "regression" else h.predict_proba(emb.X[te]))
            ok = fold_accepts(emb, plan, cfg, calib, tr, te)
            if ok is not None:
                acc.append(ok)
        nxt = splits.repeat[i + 1] if splits.repeat and i + 1 < len(splits.pairs) else None
        if r == 0 and nxt != 0 and planned > V.MIN_REPEATS:  # the first repeat is done: time it
            took = time.perf_counter() - t0
            if took * planned > V.TIME_BUDGET_S:
                limit = max(V.MIN_REPEATS, int(V.TIME_BUDGET_S // max(took, 1e-9)))
                log.info("validation: %d repeats instead of %d (%.1f s per repeat)", limit, planned, took)
    curve = None
    if used and cfg.learning_curve:
        pairs, heads = zip(*used[:V.CURVE_FOLDS])
        groups = splits.groups if splits.groups is not None else emb.groups
        curve = learning_curve(lambda idx: fit_head(emb, plan, cfg, idx), emb.X, emb.y, groups,
                               emb.augmented, list(pairs), plan.task, cfg.seed, list(heads))
    final = fit_head(emb, plan, cfg, np.arange(len(emb.y)))
    if not rows:
        return Fitted(final, None, None, curve, plan.task, plan.classes)
    r_all = np.concatenate(rows)
    return Fitted(final, emb.y[r_all], np.concatenate(outs), curve, plan.task, plan.classes, r_all,
                  np.concatenate(reps), len(np.unique(np.concatenate(reps))),
                  np.concatenate(acc) if acc and len(acc) == len(rows) else None)


def report(fitted: Fitted, splits: Splits, calib: Calibration, cfg: TrainConfig | None = None,
           plan: Plan | None = None, auto: dict[str, Any] | None = None) -> dict[str, Any]:
    """The validation report (emits ``"validated"`` with it).

    ``headline`` is what users get (:func:`~faceforge.train.unknown.users_headline`: the final
    labels after the unknown check refitted in each fold); ``validation`` and the top-level
    metrics are the head alone (top-1, without the unknown check): scheme, denominators, mean
    and 95% interval (:func:`faceforge.train.validation.scored`). Then the curve, the unknown
    check and, after a feature search, its leaderboard (``auto``).
    """
    from faceforge.train import validation as V

    rep: dict[str, Any] = {}
    if fitted.y_true is not None and fitted.y_out is not None and fitted.rows is not None \
            and fitted.repeat is not None:
        rep = V.scored(fitted.task, fitted.classes, fitted.y_true, fitted.y_out, fitted.rows, fitted.repeat,
                       splits.scheme, fitted.repeats_run)
    else:
        scheme = splits.scheme
        rep["validation"] = {"method": "none", "folds": 0, "repeats": 0, "n": 0,
                             "photos": scheme.photos if scheme is not None else 0, "description": splits.how,
                             "why": scheme.why if scheme is not None else ""}
    head = users_headline(fitted, splits, calib, plan.known if plan is not None else None, rep["validation"])
    if head is not None:
        rep = {"headline": head, **rep}
    if fitted.curve is not None:
        rep["learning_curve"] = fitted.curve
    if calib.unknown is not None:
        rep["unknown"] = calib.unknown
    if auto is not None:
        rep["auto"] = auto
    if cfg is not None:
        cfg.emit("validated", rep)
    return rep


def save(output: str | os.PathLike, loaded: Loaded, emb: Embedded, plan: Plan, fitted: Fitted, calib: Calibration,
         rep: dict[str, Any], cfg: TrainConfig, timings: dict[str, float] | None = None) -> TrainResult:
    """Write the model file, the JSON report and the plots beside it (emits ``"saved"``).

    Args:
        output: the model file (``.ffm`` added when it has no suffix).
        loaded, emb, plan, fitted, calib, rep: what the earlier steps returned.
        cfg: the settings.
        timings: seconds so far (``fit_s``, ``total_s`` ...); cache hits / misses are added.

    Returns:
        :class:`TrainResult`.
    """
    from faceforge import __version__
    from faceforge.embedders.base import embedder_weights
    from faceforge.heads import save_bundle

    output = Path(output)
    if output.suffix == "":
        output = output.with_suffix(MODEL_SUFFIX)
    ds, ed = loaded.dataset, emb.data
    head_params_json, head_arrays = fitted.head.to_arrays()
    arrays = {f"head.{k}": v for k, v in head_arrays.items()}
    manifest: dict[str, Any] = {
        "kind": "faceforge-classifier",
        "task": plan.task,
        "classes": list(plan.classes),
        "embedder": cfg.embedder,
        "embedder_sha256": embedder_weights(cfg.embedder),
        "embedder_version": ed.config.get("embedder_version", "1"),
        "embedding_dim": int(emb.X.shape[1]),
        "detector": cfg.detector,
        "crops": crops_name(cfg.crops),
        "upscale": ed.config.get("upscale"),
        "alignment": cfg.alignment,
        **({} if cfg.quality == "fast" else {"quality": cfg.quality}),  # fast: the manifest of old
        "head": {"kind": plan.head, **head_params_json},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "faceforge_version": __version__,
        "seed": cfg.seed,
        "augment": bool(cfg.augment),
        "data": {"source": str(loaded.source.resolve()), "images": len(ds.samples),
                 "rows": int(len(emb.y)), "face_sources": dict(ed.face_sources),
                 "per_class": _per_class(ds)},
        "metrics": {k: v for k, v in rep.items() if k not in ("confusion_matrix", "per_class")},
    }
    if calib.openset is not None:
        os_params, os_arrays = calib.openset.to_arrays()
        manifest["openset"] = os_params
        arrays.update({f"openset.{k}": v for k, v in os_arrays.items()})
    save_bundle(output, manifest, arrays)

    problems = list(emb.problems) + fold_problems(plan.task, plan.classes, np.asarray(emb.y)[~emb.augmented],
                                                    rep.get("validation"), str(loaded.source))
    if plan.hint:
        from faceforge.data import Problem

        problems.append(Problem("negatives_hint", str(loaded.source), plan.hint, "info"))
    warning = rep.get("validation", {}).get("warning")
    if warning:
        from faceforge.data import Problem

        problems.append(Problem("wide_interval", str(loaded.source), warning[0].upper() + warning[1:], "warning"))
    report_path = _sidecar(output, ".report.json")
    times = {**(timings or {}), "cache_hits": ed.cache_hits, "cache_misses": ed.cache_misses}
    full = {"model": str(output), "task": plan.task, "classes": plan.classes, "report": rep,
            "problems": [_problem_dict(p) for p in problems], "timings": times}
    atomic_write(report_path, json.dumps(full, indent=2, default=_json_default).encode())
    plots: list[Path] = []
    if plan.task == "classification" and "confusion_matrix" in rep:
        from faceforge.heads.plots import confusion_matrix_png

        r = rep.get("confusion_matrix_repeats")
        title = (f"balanced accuracy {rep['balanced_accuracy']:.3f} ({rep['validation']['description']}; "
                 f"counts summed over the {r} repeats)") if r else None
        plots.append(confusion_matrix_png(rep, _sidecar(output, ".confusion.png"), title=title))
    if fitted.curve is not None:
        from faceforge.heads.plots import learning_curve_png

        c = fitted.curve
        plots.append(learning_curve_png(c["train_images"], c["validation"], _sidecar(output, ".learning.png"),
                                        train_scores=c["training"], metric=c["metric"],
                                        title=f"learning curve ({rep['validation']['description']})"))
    result = TrainResult(output, rep, report_path, plots, problems, times, manifest)
    cfg.emit("saved", result)
    return result


# -- checks and helpers ------------------------------------------------------------------------

def check_usable(classes: list[str], y: np.ndarray, problems: list[Any]) -> None:
    """Refuse classes left with fewer than 2 photos once unreadable / faceless ones are dropped.

    Raises:
        DatasetError: naming each such class and why photos were dropped.
    """
    counts = np.bincount(np.asarray(y, int), minlength=len(classes))
    small = [(c, int(n)) for c, n in zip(classes, counts) if n < 2]
    if not small:
        return
    bad = [p for p in problems if getattr(p, "kind", "") not in ("few_images", "duplicate", "near_duplicate")
           and getattr(p, "severity", "") in ("warning", "error")]
    lines = [f"class {c!r} has {n} usable photo(s)" for c, n in small]
    detail = " ".join(p.message for p in bad[:5])
    raise DatasetError("Too few usable photos: " + ", ".join(lines) + " after unreadable photos and photos "
                       "without a face were dropped; every class needs at least 2. Add clear photos of the face "
                       "or remove the class." + (f" Dropped: {detail}" if detail else ""))


def _sidecar(model_path: Path, suffix: str) -> Path:
    return model_path.with_name(model_path.stem + suffix)


def _per_class(ds: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    if ds.task != "classification":
        return out
    for s in ds.samples:
        out[str(s.label)] = out.get(str(s.label), 0) + 1
    return out


def _problem_dict(p: Any) -> dict[str, Any]:
    return {k: getattr(p, k) for k in ("kind", "path", "message", "severity") if hasattr(p, k)}


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)
