"""Training and evaluating face classifiers on cached embeddings ("bottlenecks")."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from faceforge._fs import atomic_write
from faceforge.errors import ParameterError

log = logging.getLogger(__name__)

MODEL_SUFFIX = ".ffm"


@dataclass
class TrainResult:
    """What :func:`train` produced.

    Attributes:
        model_path: the model file.
        report: validation report (metrics on held-out images).
        report_path: JSON report beside the model.
        plots: PNG files written (confusion matrix).
        problems: data problems found (unreadable files, duplicates, small classes, ...).
        timings: seconds per phase (``embed``, ``fit``, ``total``) and cache hits / misses.
    """

    model_path: Path
    report: dict[str, Any]
    report_path: Path
    plots: list[Path] = field(default_factory=list)
    problems: list[Any] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)


def _sidecar(model_path: Path, suffix: str) -> Path:
    return model_path.with_name(model_path.stem + suffix)


def train(
    data: str | os.PathLike,
    output: str | os.PathLike,
    *,
    embedder: str = "dlib-resnet",
    head: str | None = None,
    detector: str = "photo",
    crops: str | bool = "auto",
    augment: bool = False,
    val: float = 0.2,
    folds: int = 0,
    target_far: float | None = 0.01,
    seed: int = 0,
    label_column: str | None = None,
    path_column: str | None = None,
    image_root: str | os.PathLike | None = None,
    task: str = "auto",
    workers: int | None = None,
    progress: bool = True,
    on_event: Callable[[str, Any], None] | None = None,
    head_params: dict[str, Any] | None = None,
    alignment: str | dict[str, Any] | None = None,
    learning_curve: bool = True,
    known: Sequence[str] | None = None,
) -> TrainResult:
    """Train a face classifier (or regressor) from folders of photos or a CSV.

    Embeddings are cached by image content and embedder, so retraining (another head, other
    validation) never recomputes them and an interrupted run resumes.

    Args:
        data: a folder with one sub-folder per class, or a CSV of ``file,label``.
        output: the model file to write (``.ffm``); a report (``.report.json``) and a confusion
            matrix (``.confusion.png``) are written beside it.
        embedder: ``"dlib-resnet"`` (identity) or ``"effnet-lite0"`` (general attributes).
        head: ``"logreg"`` (default), ``"svm"``, ``"knn"``, ``"mlp"``; ``"ridge"`` for numbers.
        detector: face detector, ``"photo"`` by default.
        crops: ``"auto"`` (detect; use the whole image when no face is found), ``True``
            (images are face crops: use them whole) or ``False`` (drop images without a face).
        augment: add flipped / rotated / brightened copies as extra cached embeddings.
        val: fraction of images held out for the validation report (stratified).
        folds: if >= 2, k-fold cross-validation instead of a single hold-out.
        target_far: false-accept rate of the "unknown" check (a stranger labelled as someone):
            lowering it rejects more strangers and more true faces. ``None`` disables it.
        seed: random seed (splits, heads): the same inputs give the same model.
        label_column, path_column, image_root: for CSV data.
        task: ``"auto"``, ``"classification"`` or ``"regression"``.
        workers: processes for embedding (default: all cores).
        progress: show progress bars.
        on_event: callback ``(name, payload)`` for progress reporting (``"dataset"``,
            ``"embedded"``, ``"validated"``, ``"saved"``).
        head_params: extra parameters for the head.
        alignment: override the embedder's face alignment (see :class:`~faceforge.pipeline.FacePipeline`).
        known: the classes that are people to recognise; the others are negatives (e.g.
            ``known=["me"]`` with a ``not_me`` folder of anyone else's faces): a face is given a
            known class only when it is close enough to it, otherwise the negative class (one
            negative class) or ``"unknown"``. Default: a class named like ``not_me``, ``others``,
            ``negatives`` or ``unknown`` is taken as the negatives; else every class is known,
            and the unknown check is dropped if it would reject more than half the known faces
            (attribute classes such as gender or emotion).
        learning_curve: also fit on 10%, 25% and 50% of each training split and plot the
            validation score against the number of training images (``.learning.png``): a
            curve still rising at 100% says more photos would help. Costs about one extra fit
            (on the first split only, for k-fold).

    Returns:
        :class:`TrainResult`.

    Raises:
        DatasetError: unusable data (the message says what to do).
        ParameterError: bad options.
    """
    from faceforge import __version__
    from faceforge.data import EmbeddingCache, check_duplicates, embed_dataset, load_dataset
    from faceforge.heads import OpenSet, make_head, save_bundle
    from faceforge.heads.metrics import classification_report, kfold, regression_report, split_holdout
    from faceforge.registry import get_spec

    emit = on_event or (lambda name, payload: None)
    t0 = time.perf_counter()
    output = Path(output)
    if output.suffix == "":
        output = output.with_suffix(MODEL_SUFFIX)
    if not 0.0 <= float(val) < 0.9:
        raise ParameterError(f"val must lie in [0, 0.9), got {val}")
    crops_name(crops)  # validate early
    if target_far is not None and not 0.0 < float(target_far) < 0.5:
        raise ParameterError(f"target_far must lie in (0, 0.5) or be None, got {target_far}")

    ds = load_dataset(data, task=task, label_column=label_column, path_column=path_column,
                      **({"image_root": image_root} if image_root is not None else {}))
    problems = list(ds.problems)
    emit("dataset", ds)
    head = head or ("ridge" if ds.task == "regression" else "logreg")

    cache = EmbeddingCache()
    t_embed = time.perf_counter()
    ed = embed_dataset(ds, embedder=embedder, detector=detector, crops=crops, augment=augment,
                       cache=cache, workers=workers, progress=progress, alignment=alignment)
    t_embed = time.perf_counter() - t_embed
    problems += [p for p in ed.problems if p not in problems]
    if ds.task == "classification":
        _check_usable(ds.classes, np.asarray(ed.y)[~np.asarray(ed.augmented, bool)], ed.problems)
    problems += list(check_duplicates(ds, cache=cache))  # after embedding: reuses its file hashes
    emit("embedded", ed)

    X, y, groups, aug = ed.X, ed.y, np.asarray(ed.paths), np.asarray(ed.augmented, bool)
    params = dict(head_params or {})
    from faceforge.embedders.base import embedder_class

    # every head takes "normalize" (kNN's cosine metric normalises anyway)
    params.setdefault("normalize", bool(getattr(embedder_class(embedder), "normalize_for_heads", True)))

    def fit(idx: np.ndarray):
        h = make_head(head, ds.task, seed=seed, **params)
        if ds.task == "regression":
            return h.fit(X[idx], y[idx], groups=groups[idx])
        return h.fit(X[idx], y[idx], classes=ds.classes, groups=groups[idx])

    # ---- validation: held-out images never have augmented copies in training ------------
    t_fit = time.perf_counter()
    report: dict[str, Any]
    if folds and folds >= 2:
        splits = list(kfold(y, folds, seed=seed, groups=groups))
        how = f"{folds}-fold cross-validation"
    elif val > 0:
        splits = [split_holdout(y, val=val, seed=seed, groups=groups)]
        how = f"stratified hold-out ({val:.0%} of images)"
    else:
        splits = []
        how = "none (val=0)"
    y_true: list[np.ndarray] = []
    y_out: list[np.ndarray] = []
    first_head = None
    splits = [(tr, te[~aug[te]]) for tr, te in splits]
    if splits and not any(len(te) for _, te in splits):  # e.g. 2 photos per class: none can be held out
        splits = []
        how = "none: too few photos to hold any out for validation (add photos, or use folds)"
    for tr, te in splits:
        if not len(te):
            continue
        h = fit(tr)
        if first_head is None:
            first_head = h
        y_true.append(y[te])
        y_out.append(h.predict(X[te]) if ds.task == "regression" else h.predict_proba(X[te]))
    curve = None
    if splits and learning_curve and len(splits[0][1]):
        curve = _learning_curve(fit, X, y, groups, aug, splits[0], ds.task, seed, first_head)
    if splits:
        yt = np.concatenate(y_true)
        if ds.task == "regression":
            report = regression_report(yt, np.concatenate(y_out))
        else:
            report = classification_report(yt, np.concatenate(y_out), ds.classes)
    else:
        report = {}
    report["validation"] = how
    if curve is not None:
        report["learning_curve"] = curve

    # ---- final model on everything ----------------------------------------------------------
    final = fit(np.arange(len(y)))
    openset = None
    if ds.task == "classification" and target_far is not None:
        known_idx, why = _known_classes(ds.classes, known)
        openset = OpenSet().fit(X[~aug], y[~aug], target_far=target_far, seed=seed, groups=groups[~aug],
                                known=known_idx)
        report["unknown"] = {"target_far": target_far, "threshold": float(openset.threshold),
                             "far": float(openset.far), "frr": float(openset.frr),
                             "known": [ds.classes[i] for i in openset.classes_]}
        if known_idx is not None:
            report["unknown"]["negatives"] = [c for i, c in enumerate(ds.classes) if i not in known_idx]
            report["unknown"]["known_because"] = why
        elif openset.frr > MAX_AUTO_FRR:
            # Classes that are not people (gender, emotion, ...): every face resembles some other
            # class, so a threshold that lets few "impostors" through rejects most true faces.
            report["unknown"] = {"disabled": (
                f"at a {target_far:.0%} false-accept rate the unknown check would reject {openset.frr:.0%} "
                f"of known faces: the classes look like attributes, not people, so every face gets a "
                f"class. Pass known=[...] (CLI --known) to force it."), "frr": float(openset.frr)}
            openset = None
    t_fit = time.perf_counter() - t_fit

    spec = get_spec(embedder)
    head_params_json, head_arrays = final.to_arrays()
    arrays = {f"head.{k}": v for k, v in head_arrays.items()}
    manifest: dict[str, Any] = {
        "kind": "faceforge-classifier",
        "task": ds.task,
        "classes": list(ds.classes),
        "embedder": embedder,
        "embedder_sha256": spec.sha256,
        "embedder_version": ed.config.get("embedder_version", "1"),
        "embedding_dim": int(X.shape[1]),
        "detector": detector,
        "crops": crops_name(crops),
        "upscale": ed.config.get("upscale"),
        "alignment": alignment,
        "head": {"kind": head, **head_params_json},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "faceforge_version": __version__,
        "seed": seed,
        "augment": bool(augment),
        "data": {"source": str(Path(data).resolve()), "images": len(ds.samples),
                 "rows": int(len(y)), "face_sources": dict(ed.face_sources),
                 "per_class": _per_class(ds)},
        "metrics": {k: v for k, v in report.items() if k not in ("confusion_matrix", "per_class")},
    }
    if openset is not None:
        os_params, os_arrays = openset.to_arrays()
        manifest["openset"] = os_params
        arrays.update({f"openset.{k}": v for k, v in os_arrays.items()})
    save_bundle(output, manifest, arrays)

    # ---- report beside the model -------------------------------------------------------------
    report_path = _sidecar(output, ".report.json")
    full = {"model": str(output), "task": ds.task, "classes": ds.classes, "report": report,
            "problems": [_problem_dict(p) for p in problems],
            "timings": {"embed_s": round(t_embed, 3), "fit_s": round(t_fit, 3),
                        "total_s": round(time.perf_counter() - t0, 3),
                        "cache_hits": ed.cache_hits, "cache_misses": ed.cache_misses}}
    atomic_write(report_path, json.dumps(full, indent=2, default=_json_default).encode())
    plots: list[Path] = []
    if ds.task == "classification" and "confusion_matrix" in report:
        from faceforge.heads.plots import confusion_matrix_png

        png = _sidecar(output, ".confusion.png")
        confusion_matrix_png(report, png)
        plots.append(png)
    if curve is not None:
        from faceforge.heads.plots import learning_curve_png

        png = _sidecar(output, ".learning.png")
        learning_curve_png(curve["train_images"], curve["validation"], png, train_scores=curve["training"],
                           metric=curve["metric"], title=f"learning curve ({how})")
        plots.append(png)
    result = TrainResult(output, report, report_path, plots, problems, full["timings"], manifest)
    emit("saved", result)
    return result


def evaluate(model: str | os.PathLike, data: str | os.PathLike, *, crops: str | bool | None = None,
             workers: int | None = None, progress: bool = True, **dataset_options: Any) -> dict[str, Any]:
    """Measure a trained model on a labelled test set (same layout as training data).

    Returns:
        The report dict (accuracy, balanced accuracy, per class, confusion matrix, log loss;
        MAE for regression), of the head alone on test classes the model knows. Test classes
        the model does not know are listed in ``unknown_classes``. With an unknown check,
        ``open_set`` measures the final labels: ``accuracy`` over every test image (a stranger
        is right when called unknown), ``known_rejected`` (share of known faces called
        unknown) and ``strangers_rejected`` (share of faces of test classes the model does
        not know that were called unknown).
    """
    from faceforge.data import EmbeddingCache, embed_dataset, load_dataset
    from faceforge.heads.metrics import classification_report, regression_report
    from faceforge.train.classifier import load_classifier

    clf = load_classifier(model)
    m = clf.manifest
    dataset_options.pop("task", None)  # the model decides: its test data has the same task
    ds = load_dataset(data, task=m["task"], min_per_class=1, **dataset_options)
    ed = embed_dataset(ds, embedder=m["embedder"], detector=m.get("detector", "photo"),
                       crops=crops_mode(m.get("crops", "auto")) if crops is None else crops, alignment=m.get("alignment"),
                       cache=EmbeddingCache(), workers=workers, progress=progress)
    X = ed.X[~np.asarray(ed.augmented, bool)]
    y = ed.y[~np.asarray(ed.augmented, bool)]
    if clf.task == "regression":
        return regression_report(y, clf.head.predict(X))
    # map test class indices onto the model's classes
    idx = {c: i for i, c in enumerate(clf.classes)}
    missing = sorted(set(ed.classes) - set(idx))
    if missing:
        log.warning("test classes not in the model (counted as errors): %s", ", ".join(missing))
    y_model = np.array([idx.get(ed.classes[int(v)], -1) for v in y])
    proba = clf.head.predict_proba(X)
    keep = y_model >= 0
    report = classification_report(y_model[keep], proba[keep], clf.classes)
    report["images"] = int(len(y))
    report["unknown_classes"] = missing
    if clf.openset is not None:
        report["open_set"] = _open_set_report(clf, X, np.array([ed.classes[int(v)] for v in y]))
    report["face_sources"] = dict(ed.face_sources)
    return report


#: Without ``known``, the unknown check is dropped when it would reject more known faces than this.
MAX_AUTO_FRR = 0.5

#: Class names taken as negatives ("anyone else") when ``known`` is not given.
NEGATIVE_NAMES = re.compile(r"^(not[ _.-]?.+|non[ _.-].+|others?|other[ _.-]people|negatives?|strangers?|"
                            r"unknowns?|background|nobody|none|noise)$", re.IGNORECASE)


def _check_usable(classes: list[str], y: np.ndarray, problems: list[Any]) -> None:
    """Refuse classes left with fewer than 2 photos once unreadable / faceless ones are dropped."""
    from faceforge.errors import DatasetError

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


def _known_classes(classes: list[str], known: Sequence[str] | None) -> tuple[list[int] | None, str]:
    """Indices of the known classes (None: all), and why."""
    if known is not None:
        if isinstance(known, str):
            known = [known]
        missing = [k for k in known if k not in classes]
        if missing:
            raise ParameterError(f"known classes {missing} are not among the classes {classes}. Fix: use the "
                                 f"folder / label names.")
        if not known:
            raise ParameterError("known must name at least one class.")
        idx = sorted({classes.index(k) for k in known})
        if len(idx) == len(classes) and len(idx) < 2:
            raise ParameterError("one known class needs a class of other people's faces as negatives.")
        return (idx if len(idx) < len(classes) else None), "given"
    neg = [i for i, c in enumerate(classes) if NEGATIVE_NAMES.match(c.strip())]
    if neg and len(neg) < len(classes):
        return [i for i in range(len(classes)) if i not in neg], f"classes named like negatives: {[classes[i] for i in neg]}"
    return None, ""


#: Fractions of each training split used for the learning curve (1.0 is the validation fit itself).
CURVE_FRACTIONS = (0.1, 0.25, 0.5, 1.0)


def _learning_curve(fit: Callable[[np.ndarray], Any], X: np.ndarray, y: np.ndarray, groups: np.ndarray,
                    aug: np.ndarray, split: tuple[np.ndarray, np.ndarray], task: str,
                    seed: int, full_head: Any = None) -> dict[str, Any] | None:
    """Validation and training score against training-set size, on the first validation split.

    Each fraction takes that share of every class's source images (at least one each; a photo
    and its augmented copies stay together). Scores: balanced accuracy, or MAE for regression.
    """
    def balanced_accuracy(t: np.ndarray, p: np.ndarray) -> float:
        return float(np.mean([np.mean(p[t == c] == c) for c in np.unique(t)]))

    def score(h: Any, idx: np.ndarray) -> float:
        idx = idx[~aug[idx]]
        if task == "regression":
            return float(np.mean(np.abs(h.predict(X[idx]) - y[idx])))
        return float(balanced_accuracy(y[idx], np.argmax(h.predict_proba(X[idx]), axis=1)))

    rng = np.random.default_rng(seed)
    tr, te = split
    g_tr = groups[tr]
    uniq, first = np.unique(g_tr, return_index=True)
    strata = y[tr][first] if task == "classification" else np.zeros(len(uniq))
    order = {c: rng.permutation(uniq[strata == c]) for c in np.unique(strata)}
    sizes, val, trn = [], [], []
    for f in CURVE_FRACTIONS:
        chosen = np.concatenate([g[:max(1, int(np.ceil(f * len(g))))] for g in order.values()])
        idx = tr[np.isin(g_tr, chosen)]
        try:
            h = full_head if f == 1.0 and full_head is not None else fit(idx)
        except Exception as e:  # e.g. too few rows for the head at 10%
            log.info("learning curve: no fit on %.0f%% of the training images (%s)", 100 * f, e)
            return None
        sizes.append(len(chosen))
        val.append([round(score(h, te), 4)])
        trn.append([round(score(h, idx), 4)])
    return {"metric": "MAE" if task == "regression" else "balanced accuracy",
            "fractions": list(CURVE_FRACTIONS), "train_images": sizes, "validation": val, "training": trn}


def _open_set_report(clf: Any, X: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Final labels (after the unknown check) against the true class names."""
    labels = np.array([p.label for p in clf.predict_embeddings(X, top_k=1)])
    rejected = clf.rejected_label
    known = np.isin(truth, clf.known_classes)
    stranger = ~np.isin(truth, clf.classes)
    right = np.where(stranger, labels == rejected, labels == truth)
    out: dict[str, Any] = {"accuracy": float(right.mean()) if len(right) else None,
                           "known_faces": int(known.sum()), "strangers": int(stranger.sum()),
                           "rejected_label": rejected}
    out["known_rejected"] = float(np.mean(labels[known] == rejected)) if known.any() else None
    out["strangers_rejected"] = float(np.mean(labels[stranger] == rejected)) if stranger.any() else None
    return out


def crops_name(crops: str | bool) -> str:
    """The manifest's word for a crops mode: ``"auto"``, ``"always"`` or ``"never"``."""
    if crops is True or crops == "always":
        return "always"
    if crops is False or crops == "never":
        return "never"
    if crops == "auto":
        return "auto"
    raise ParameterError(f"crops must be 'auto', 'always' (True) or 'never' (False), got {crops!r}")


def crops_mode(name: str) -> str | bool:
    """Inverse of :func:`crops_name`: the value :func:`faceforge.data.embed_dataset` takes."""
    return {"always": True, "never": False}.get(crops_name(name), "auto")


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
