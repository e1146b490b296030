"""Training and evaluating face classifiers on cached embeddings ("bottlenecks").

:func:`train` runs the named steps of :mod:`faceforge.train.steps` (load -> check -> embed ->
split -> calibrate -> fit -> report -> save) with one :class:`~faceforge.train.config.TrainConfig`.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np

from faceforge.train import auto, steps
from faceforge.train.config import TrainConfig, crops_mode, crops_name
from faceforge.train.curve import CURVE_FRACTIONS
from faceforge.train.steps import (
    MAX_AUTO_FRR,
    MODEL_SUFFIX,
    NEGATIVE_NAMES,
    TrainResult,
)

log = logging.getLogger(__name__)

__all__ = ["CURVE_FRACTIONS", "MAX_AUTO_FRR", "MODEL_SUFFIX", "NEGATIVE_NAMES", "TrainConfig", "TrainResult",
           "crops_mode", "crops_name", "evaluate", "train"]


def train(data: str | os.PathLike, output: str | os.PathLike, config: TrainConfig | None = None,
          **kwargs: Any) -> TrainResult:
    """Train a face classifier (or regressor) from folders of photos or a CSV.

    Embeddings are cached by image content and embedder, so retraining (another head, other
    validation) never recomputes them and an interrupted run resumes.

    Args:
        data: a folder with one sub-folder per class, or a CSV of ``file,label``.
        output: the model file to write (``.ffm``); a report (``.report.json``), a confusion
            matrix (``.confusion.png``) and a learning curve (``.learning.png``) are written
            beside it.
        config: the settings (default: :class:`~faceforge.train.config.TrainConfig`'s defaults).
        **kwargs: settings overriding ``config``'s, by field name of
            :class:`~faceforge.train.config.TrainConfig` (``embedder``, ``head``, ``val``,
            ``folds``, ``target_far``, ``seed``, ``known``, ...).

    Returns:
        :class:`TrainResult`.

    Raises:
        DatasetError: unusable data (the message says what to do).
        ParameterError: bad options (checked before any image is embedded).

    Example:
        >>> res = train("photos/", "people.ffm", head="svm", val=0.25)  # doctest: +SKIP
        >>> res.report["balanced_accuracy"]  # doctest: +SKIP
    """
    cfg = TrainConfig.from_kwargs(config, **kwargs)
    t0 = time.perf_counter()
    loaded = steps.load(data, cfg)
    chosen: dict[str, Any] | None = None
    if auto.wanted(cfg):
        steps.check(loaded, auto.placeholder(cfg))  # bad options fail before any image is embedded
        cfg, chosen = auto.choose(loaded, cfg)
    plan = steps.check(loaded, cfg)
    emb = steps.embed(loaded, cfg)
    t_fit = time.perf_counter()
    splits = steps.split(emb, cfg)
    calib = steps.calibrate(emb, plan, cfg)  # before fit: the check is refitted in every fold too
    fitted = steps.fit(emb, splits, plan, cfg, calib)
    t_fit = time.perf_counter() - t_fit
    rep = steps.report(fitted, splits, calib, cfg, plan, auto=chosen)
    timings = {"embed_s": round(emb.seconds, 3), "fit_s": round(t_fit, 3),
               "total_s": round(time.perf_counter() - t0, 3)}
    if chosen is not None:
        timings["auto_s"] = chosen["seconds"]
    return steps.save(output, loaded, emb, plan, fitted, calib, rep, cfg, timings)


def evaluate(model: str | os.PathLike, data: str | os.PathLike, *, crops: str | bool | None = None,
             workers: int | None = None, progress: bool = True, engine: Any = None,
             **dataset_options: Any) -> dict[str, Any]:
    """Measure a trained model on a labelled test set (same layout as training data).

    The test photos are embedded on the batch runner (``workers`` processes, or ``engine``: see
    :class:`~faceforge.train.config.TrainConfig`), through the embedding cache.

    Returns:
        The report dict (accuracy, balanced accuracy, per class, confusion matrix, log loss;
        MAE for regression), of the head alone on test classes the model knows. ``headline`` is
        what users get: the final labels of every test photo, after the unknown check (an
        "unknown" for a known person is an error), with its denominator. Test classes the model
        does not know are listed in ``unknown_classes``. With an unknown check,
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
                       crops=crops_mode(m.get("crops", "auto")) if crops is None else crops,
                       alignment=m.get("alignment"), quality=m.get("quality", "fast"),
                       cache=EmbeddingCache(), workers=workers, progress=progress, engine=engine)
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
    truth = np.array([ed.classes[int(v)] for v in y])
    if clf.openset is not None:
        report["open_set"] = _open_set_report(clf, X, truth)
    report["headline"] = _headline(clf, X, truth)
    report["face_sources"] = dict(ed.face_sources)
    return report


def _headline(clf: Any, X: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """The accuracy users get: the final label of every test photo (after the unknown check), an
    "unknown" for a known person counted as an error, a photo of a class the model lacks right only
    when rejected. ``accuracy`` (over all test photos) and ``balanced_accuracy`` (mean over the test
    classes of the share labelled right), each with its denominator."""
    labels = np.array([p.label for p in clf.predict_embeddings(X, top_k=1)]) if len(X) else np.array([])
    rejected = clf.rejected_label
    stranger = ~np.isin(truth, clf.classes)
    right = np.where(stranger, (labels == rejected) if clf.openset is not None else False, labels == truth)
    classes = sorted(set(truth.tolist()))
    per_class = {c: float(right[truth == c].mean()) for c in classes}
    n = int(len(right))
    acc = float(right.mean()) if n else None
    bal = float(np.mean(list(per_class.values()))) if per_class else None
    text = (f"{acc:.1%} of {n} test photos get the right label ({int(right.sum())} right; balanced over "
            f"{len(classes)} classes {bal:.1%}); a known face called {rejected!r} counts as an error"
            if n and acc is not None and bal is not None else "no test photo")
    return {"accuracy": acc, "balanced_accuracy": bal, "images": n, "correct": int(right.sum()),
            "classes": len(classes), "per_class": per_class, "unknown_check": clf.openset is not None,
            "text": text}


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
