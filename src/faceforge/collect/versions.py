"""Model versions beside the model file: retrain warm, keep every version, promote only what is not worse.

The promoted model is ``MODEL`` (e.g. ``people.ffm``, what ``classify -m people.ffm`` reads); every
version lives in ``MODEL.versions/``: ``v0001.ffm`` with its training report
(``v0001.report.json``), the photos it trained on (``v0001.train.csv``) and those it was measured
on (``v0001.validation.csv``); ``history.json`` lists the versions (a version is listed only
once its files are complete). Promoting a version copies its bytes over ``MODEL`` atomically, so
a rollback gives back the earlier version's predictions exactly. One lock
(``MODEL.versions/.lock``) serialises retrains, promotions and rollbacks of a model.

**The promotion rule** (:func:`retrain`): the new version and the promoted model are measured on
the same validation photos, the dataset's fixed split (:mod:`faceforge.collect.split`), which no
version trains on. ``promote="if_better"`` (default) promotes the new version when
``new >= current - margin`` (``new <= current + margin`` for an error such as ``"mae"``;
``margin`` defaults to half a point of accuracy, :data:`DEFAULT_MARGIN`, and 0 for errors); the
first version is promoted (there is nothing to compare); ``"always"`` / ``"never"`` decide without
looking. The metric (default ``"balanced_accuracy"``) is read from what users get
(``evaluate``'s headline: a known face called "unknown" is an error), and a validation class the
model does not know counts as wrong for it, so a new person makes the new version win.

A model file found at ``MODEL`` that no version holds (trained by ``faceforge train``, or copied
there by hand) is first kept as a version ("imported"), so nothing promoted over it is lost.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from faceforge._fs import sha256_file
from faceforge._fs import atomic_write, pid_alive
from faceforge.collect import split as S
from faceforge.collect import versions_store as V
from faceforge.collect.versions_store import lock, settings_of, versions_dir
from faceforge.errors import DatasetError, ParameterError, VersionError

log = logging.getLogger(__name__)

#: Metrics the promotion rule can compare, and whether higher is better.
METRICS = {"balanced_accuracy": True, "accuracy": True, "mae": False, "rmse": False}
PROMOTE = ("if_better", "always", "never")
#: Settings of a model that its next version keeps (TrainConfig fields).
KEPT = ("embedder", "head", "detector", "crops", "alignment", "augment", "seed", "task", "target_far", "negatives",
        "known", "val", "folds", "repeats", "head_params", "learning_curve", "quality")


@dataclass
class RetrainResult:
    """What :func:`retrain` did.

    Attributes:
        version: the new version's name (``"v0003"``).
        promoted: whether it is now the model at ``model``.
        decision: ``"promoted"`` or ``"kept"`` (stored, not promoted).
        reason: one sentence: the rule's verdict with the numbers.
        metrics: the metric, its source, the validation photos and both values (see history.json).
        seconds: wall time of the whole retrain.
        model: the promoted model file.
        file: the new version's file.
        record: the version's full record in ``history.json``.
    """

    version: str
    promoted: bool
    decision: str
    reason: str
    metrics: dict[str, Any]
    seconds: float
    model: Path
    file: Path
    record: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields."""
        return {"version": self.version, "promoted": self.promoted, "decision": self.decision, "reason": self.reason,
                "metrics": self.metrics, "seconds": self.seconds, "model": str(self.model), "file": str(self.file),
                "record": self.record}


# -- measuring and deciding ---------------------------------------------------------------------------

def _score(rep: dict[str, Any], metric: str, val_counts: dict[str, int]) -> tuple[float | None, str]:
    """``(value, source)`` of ``metric`` in an evaluate report; a class the model lacks counts as wrong."""
    if rep.get("task") == "regression":
        return (float(rep[metric]) if rep.get(metric) is not None else None), "plain"
    unknown = set(rep.get("unknown_classes") or [])
    head = rep.get("headline") or {}
    if head.get("per_class"):
        per = {c: (0.0 if c in unknown else float(v)) for c, v in head["per_class"].items()}
        if metric == "balanced_accuracy":
            return sum(per.values()) / len(per), "headline"
        lost = sum(round(float(head["per_class"][c]) * val_counts.get(c, 0)) for c in unknown if c in head["per_class"])
        return (int(head["correct"]) - lost) / max(int(head["images"]), 1), "headline"
    value = rep.get(metric)
    if value is None:
        return None, "plain"
    known = [c for c in val_counts if c not in unknown]
    if metric == "balanced_accuracy":
        return float(value) * len(known) / max(len(val_counts), 1), "plain"
    return float(value) * sum(val_counts[c] for c in known) / max(sum(val_counts.values()), 1), "plain"


#: How much worse (in the metric's units) a new version may score and still be promoted by default:
#: half a point of accuracy. Differences this small are noise on any validation split a user has
#: (the 95% interval of 90% accuracy on 1,000 photos is about +-1.9 points), and a version trained
#: on more photos should not be kept out by them: in the 5,000-photo benchmark
#: (benchmarks/bench_retrain.py) the version with 100 more photos scored 90.0% like the current
#: one on 1,024 validation photos, a hair (under 0.05 points) lower, and with margin 0 was kept out.
DEFAULT_MARGIN = 0.005


def _words(metric: str, value: float | None) -> str:
    if value is None:
        return "not measured"
    if METRICS[metric]:
        return f"{100 * value:.2f}%"  # two decimals: a kept version must not read "90.0% vs 90.0%"
    return f"{value:.3g}"


def _measure(path: Path, val_csv: Path, metric: str, val_counts: dict[str, int], **kw: Any) -> dict[str, Any]:
    from faceforge.train import evaluate

    rep = evaluate(path, val_csv, **kw)
    value, source = _score(rep, metric, val_counts)
    head = rep.get("headline") or {}
    images = int(head.get("images") or rep.get("images") or rep.get("n") or 0)
    return {"value": value, "source": source, "images": images,
            "unknown_classes": rep.get("unknown_classes", [])}


def _decide(name: str, current: dict[str, Any] | None, new: dict[str, Any] | None, cur: dict[str, Any] | None,
            promote: str, metric: str, margin: float) -> tuple[bool, str]:
    label = metric.replace("_", " ")
    n = (new or {}).get("images", 0)
    newv = (new or {}).get("value")
    said = (f"{label} {_words(metric, newv)} on {n} validation photos" if new
            else "not measured (no validation photos of 2 classes or more)")
    cur_name = current["version"] if current else None
    curv = (cur or {}).get("value")
    cur_said = f"current {cur_name} {_words(metric, curv)}" if cur_name else "no current model"
    if promote == "always":
        return True, f"{name} promoted (promote='always'): {said}, {cur_said}"
    if promote == "never":
        return False, f"kept {cur_name or 'no model'} (promote='never'): {name} {said}, stored beside it"
    if current is None:
        first = "the first version" if name == "v0001" else "no current model"
        return True, f"{name} promoted: {first} (nothing to compare), {said}"
    if cur is not None and cur.get("error"):
        return True, f"{name} promoted: {said}; the current {cur_name} could not be measured ({cur['error']})"
    if newv is None or curv is None:
        return False, (f"kept {cur_name}: {name} could not be compared with it ({said}); add photos until the "
                       f"validation split holds 2 classes or more, or pass promote='always'")
    higher = METRICS[metric]
    ok = newv >= curv - margin if higher else newv <= curv + margin
    rule = f"{'>=' if higher else '<='} current {'-' if higher else '+'} margin {margin:g}"
    if ok:
        return True, f"{name} promoted: {said}, {cur_said} (rule: new {rule})"
    return False, f"kept {cur_name}: {name} {said}, {cur_said}; the rule new {rule} does not hold"


# -- the public API ----------------------------------------------------------------------------------

def _check_training_set(train_ph: list[S.Photo], val_ph: list[S.Photo], dataset: Path) -> None:
    """Train's own reading of the training photos (no image decoded), before anything is written."""
    from collections import Counter

    from faceforge.data import load_dataset

    have, held = Counter(p.label for p in train_ph), Counter(p.label for p in val_ph)
    labels = set(have) | set(held)
    numbers = all(re.fullmatch(r"-?\d+(\.\d+)?", c) for c in labels) and len(labels) > 10  # regression: train decides
    small = [] if numbers else [c for c in sorted(labels) if have[c] < 2]
    if small:
        lines = "; ".join(f"class {c!r} has {have[c]} photo(s) to train on ({have[c] + held[c]} in "
                          f"{dataset / c}, {held[c]} held out for validation)" for c in small[:10])
        raise DatasetError(f"{lines}; every class needs at least 2 training photos. Add photos of "
                           f"{'that class' if len(small) == 1 else 'those classes'}, or remove the folder(s).")
    if len(have) < 2 and not numbers:
        raise DatasetError(f"{dataset}: only one class ({next(iter(have), 'none')!r}); a classifier needs at least "
                           f"two. Add a folder of photos for each other class.")
    with tempfile.TemporaryDirectory(prefix="faceforge-retrain-") as tmp:
        csv = Path(tmp) / "train.csv"
        csv.write_bytes(S.csv_bytes(train_ph))
        try:
            load_dataset(csv)
        except DatasetError as e:
            raise DatasetError(f"{e} (retrain trains on the photos of {dataset} outside its fixed validation split: "
                               f"{len(train_ph)} photos, {len(val_ph)} held out for validation.)") from e


def _sweep_work(folder: Path) -> None:
    """Remove the work folders of killed retrains (their pid is dead)."""
    for d in folder.glob(".work-*"):
        try:
            pid = int(d.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not pid_alive(pid):
            shutil.rmtree(d, ignore_errors=True)


def retrain(dataset: str | os.PathLike, model: str | os.PathLike, *, promote: str = "if_better",
            margin: float | None = None,
            metric: str = "balanced_accuracy", val_fraction: float = S.VAL_FRACTION, engine: Any = None,
            workers: int | None = None, progress: bool = False, on_event: Callable[[str, Any], None] | None = None,
            wait: float | None = None, **train_overrides: Any) -> RetrainResult:
    """Train a new version of ``model`` on the dataset as it is now, store it, and promote it if not worse.

    The new version trains on every photo outside the fixed validation split
    (:func:`faceforge.collect.split.fixed_split`), warm (embeddings come from the cache), with the
    settings of the model it replaces (embedder, head, detector, crops, unknown check...) unless
    ``train_overrides`` say otherwise (``embedder="auto"`` searches again). The first version uses
    :func:`faceforge.train.train`'s defaults. Then both are measured on the validation photos and
    the promotion rule (module docstring) decides.

    Args:
        dataset: a folder of class folders (``DATASET/CLASS/*.jpg``; hidden folders and ``review/`` skipped).
        model: the promoted model file (``people.ffm``); its versions go to ``people.ffm.versions/``.
        promote: ``"if_better"`` (the rule), ``"always"`` or ``"never"``.
        margin: how much worse than the current model the new version may be and still be promoted
            (in the metric's units: 0.01 = one point of accuracy). Default: :data:`DEFAULT_MARGIN`
            (half a point) for accuracies, 0 for errors (``"mae"``).
        metric: ``"balanced_accuracy"`` (default), ``"accuracy"``; ``"mae"`` / ``"rmse"`` for numbers
            (a classification metric asked of a regression model means ``"mae"``).
        val_fraction: rule 1 of the split: the share of photos held out, in [0, 0.9).
        engine, workers, progress: where and how photos are embedded (as for ``train``).
        on_event: ``(name, payload)`` callback: train's events, then ``"split"`` and ``"decided"``.
        wait: seconds to wait for another retrain of the same model (None: as long as it takes).
        **train_overrides: :class:`~faceforge.train.TrainConfig` settings for this and later versions.

    Returns:
        :class:`RetrainResult`.

    Raises:
        DatasetError: no photos, or a class left with fewer than 2 training photos (nothing is written).
        ParameterError: a bad ``promote``, ``margin``, ``metric`` or setting.
        BusyError: another retrain of the model held the lock for more than ``wait`` seconds.
    """
    from faceforge._fs import check_output
    from faceforge.train import TrainConfig, train

    t0 = time.perf_counter()
    if promote not in PROMOTE:
        raise ParameterError(f"promote must be one of {', '.join(PROMOTE)}, got {promote!r}.")
    if metric not in METRICS:
        raise ParameterError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}.")
    if margin is None:
        margin = DEFAULT_MARGIN if METRICS[metric] else 0.0
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or margin != margin:
        raise ParameterError(f"margin must be a number (0.0: not worse at all), got {margin!r}.")
    bad = sorted(k for k in train_overrides if k in ("engine", "workers", "progress", "on_event"))
    if bad:
        raise ParameterError(f"retrain takes {', '.join(bad)} as its own arguments, not as training settings.")
    TrainConfig.from_kwargs(**train_overrides)  # an unknown or bad setting fails before anything is read
    model, dataset = Path(model), Path(dataset)
    if model.suffix == "":
        model = model.with_suffix(".ffm")
    check_output(model, [dataset], what="model file")
    check_output(V.versions_dir(model), [dataset], kind="folder", what="versions folder")
    photos = S.class_photos(dataset)
    if not photos:
        raise DatasetError(f"{dataset}: no photos in class folders (DATASET/CLASS/photo.jpg; hidden folders and "
                           f"review/ are skipped). Ingest photos first (`faceforge ingest INBOX --into {dataset}`) "
                           f"or put each class's photos in a sub-folder.")

    def plan(records: list[dict[str, Any]]) -> tuple[list[S.Photo], list[S.Photo]]:
        trained: set[str] = set()
        for r in records:
            if r.get("train_csv"):
                trained |= S.read_shas(V.versions_dir(model) / r["train_csv"])
        return S.fixed_split(photos, val_fraction, trained=trained)

    train_ph, val_ph = plan(V.load(model))  # read-only first: a dataset problem writes nothing
    _check_training_set(train_ph, val_ph, dataset)
    folder = V.versions_dir(model)
    with V.lock(model, wait):
        records = V.load(model)
        current = V.adopt(model, records)
        stack = V.stack(records)
        base = current or next((r for r in records if stack and r["version"] == stack[-1]), None)
        train_ph, val_ph = plan(records)
        kwargs = {**((base or {}).get("settings") or {}), **train_overrides}
        number = max((r["number"] for r in records), default=0) + 1
        name = f"v{number:04d}"
        if on_event is not None:
            on_event("split", {"version": name, "train": len(train_ph), "validation": len(val_ph)})
        _sweep_work(folder)
        work = folder / f".work-{os.getpid()}-{number}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            train_csv, val_csv = work / f"{name}.train.csv", work / f"{name}.validation.csv"
            atomic_write(train_csv, S.csv_bytes(train_ph))
            atomic_write(val_csv, S.csv_bytes(val_ph))
            try:
                res = train(train_csv, work / f"{name}.ffm", engine=engine, workers=workers, progress=progress,
                            on_event=on_event, **kwargs)
            except DatasetError as e:
                raise DatasetError(f"{e} (retrain trains on the photos of {dataset} outside its fixed validation "
                                   f"split: {len(train_ph)} photos, {len(val_ph)} held out.)") from e
            task = res.manifest["task"]
            used = metric
            if task == "regression" and METRICS[metric]:
                used = "mae"
            elif task != "regression" and not METRICS[metric]:
                raise ParameterError(f"metric {metric!r} measures numbers, but {dataset} trained a classifier; "
                                     f"use balanced_accuracy or accuracy.")
            counts: dict[str, int] = {}
            for p in val_ph:
                counts[p.label] = counts.get(p.label, 0) + 1
            kw = {"workers": workers, "engine": engine, "progress": progress}
            new = cur = None
            if val_ph and (task == "regression" or len(counts) >= 2):
                new = _measure(work / f"{name}.ffm", val_csv, used, counts, **kw)
                if current is not None:
                    try:
                        cur = _measure(model, val_csv, used, counts, **kw)
                    except Exception as e:  # noqa: BLE001 -- a broken current model loses to a working one
                        log.warning("the current model %s could not be measured: %s", model, e)
                        cur = {"value": None, "error": str(e)}
            promoted, reason = _decide(name, current, new, cur, promote, used, float(margin))
            metrics = {"metric": used, "source": (new or {}).get("source"), "higher_is_better": METRICS[used],
                       "margin": float(margin), "validation_photos": (new or {}).get("images", len(val_ph)),
                       "validation_classes": len(counts), "new": {"version": name, **(new or {})},
                       "current": None if current is None else {"version": current["version"], **(cur or {})}}
            settings = {k: v for k, v in {**kwargs, **V.settings_of(res.manifest)}.items() if k in KEPT}
            if "known" in kwargs:
                settings.pop("negatives", None)
            for f in sorted(work.iterdir()):  # every file in place before the version is listed
                if f.name != f"{name}.ffm" and not f.name.startswith("."):
                    os.replace(f, folder / f.name)
            os.replace(work / f"{name}.ffm", folder / f"{name}.ffm")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        record: dict[str, Any] = {
            "version": name, "number": number, "created": V.now(), "file": f"{name}.ffm",
            "sha256": sha256_file(folder / f"{name}.ffm"), "report": f"{name}.report.json",
            "train_csv": f"{name}.train.csv", "validation_csv": f"{name}.validation.csv", "promoted": promoted,
            "decision": "promoted" if promoted else "kept", "reason": reason,
            "compared_with": current["version"] if current else None, "metrics": metrics,
            "dataset_state": {**S.dataset_state(dataset, photos), "train": len(train_ph), "validation": len(val_ph),
                              "val_fraction": float(val_fraction)},
            "settings": settings,
            "train": {"photos": len(train_ph), "seconds": res.timings.get("total_s"),
                      "cache_hits": res.timings.get("cache_hits"), "cache_misses": res.timings.get("cache_misses")}}
        if promoted:
            V.push(records, record, "retrain")
            V.install(model, record)
        records.append(record)
        V.save(model, records)
    log.info("%s", reason)
    if on_event is not None:
        on_event("decided", record)
    return RetrainResult(name, promoted, record["decision"], reason, metrics, round(time.perf_counter() - t0, 3),
                         model, folder / record["file"], record)


def history(model: str | os.PathLike) -> list[dict[str, Any]]:
    """The versions of ``model``, oldest first, each record of ``history.json`` with ``current``
    (whether ``model`` holds its bytes now) added.

    Raises:
        VersionError: an unreadable history.
    """
    model = Path(model)
    records = V.load(model)
    current = V.current(model, records)
    return [{**r, "current": current is not None and r["version"] == current["version"]} for r in records]


def promote(model: str | os.PathLike, version: Any, *, wait: float | None = None) -> dict[str, Any]:
    """Make ``version`` (``3``, ``"3"`` or ``"v0003"``) the model at ``model`` (its bytes, atomically).

    Returns:
        The version's record (``current`` True).

    Raises:
        VersionError: no such version, or its file is missing or changed.
    """
    model = Path(model)
    with V.lock(model, wait):
        records = V.load(model)
        V.adopt(model, records)
        record = V.find(model, records, version)
        current = V.current(model, records)
        V.install(model, record)
        if current is None or current["version"] != record["version"]:
            V.push(records, record, "promote")
            V.save(model, records)
    return {**record, "current": True}


def rollback(model: str | os.PathLike, *, wait: float | None = None) -> dict[str, Any]:
    """Promote again the version that was promoted before the current one (repeat to go further back).

    Returns:
        The record of the version now at ``model``.

    Raises:
        VersionError: no version was promoted before the current one.
    """
    model = Path(model)
    with V.lock(model, wait):
        records = V.load(model)
        V.adopt(model, records)
        stack = V.stack(records)
        if len(stack) < 2:
            only = f"only {stack[0]} was ever promoted" if stack else "no version was ever promoted"
            raise VersionError(f"{model}: nothing to roll back to: {only}. Promote a version by name "
                               f"(`faceforge models promote {model} VERSION`), see `faceforge models history {model}`.")
        record = V.find(model, records, stack[-2])
        V.install(model, record)
        V.push(records, record, "rollback")
        V.save(model, records)
    return {**record, "current": True}


__all__ = ["METRICS", "PROMOTE", "RetrainResult", "history", "lock", "promote", "retrain", "rollback",
           "settings_of", "versions_dir"]
