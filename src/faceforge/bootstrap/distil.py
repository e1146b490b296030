"""Distillation: train a student on a teacher's pseudo-labels (the output of ``autolabel``).

The student is an ordinary faceforge model (a head over an embedder, with the detector of your
choice, ``"live"`` by default) trained on the class folders ``autolabel`` wrote, so ``classify``,
``analyze`` and ``live`` take it. The report gives:

* **agreement**: how often the student gives the teacher's label to the very faces the teacher
  labelled, in the original photos (the face matched by its box), for photos held out from a
  probe student trained on the other photos' crops (with its denominator: faces compared, and
  faces the student's detector missed). It used to be the student's validation accuracy on
  re-detected crops of held-out pseudo-labels, which mixed in faces re-found differently in the
  crops and background faces, and so understated students that do better than their teacher;
* **test accuracy** of student and teacher on a labelled test set, when one is given;
* **latency** per image of both (detection, embedding and head), on the same crops.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceforge.errors import ParameterError

#: least IoU between the teacher's box and the student's for "the same face"
MATCH_IOU = 0.3


@dataclass
class DistilResult:
    model_path: Path
    agreement: float | None
    agreement_balanced: float | None
    test: dict[str, Any] = field(default_factory=dict)       # "student" / "teacher" -> report
    latency_ms: dict[str, float] = field(default_factory=dict)
    train_report: dict[str, Any] = field(default_factory=dict)
    #: how agreement was measured: ``faces`` (teacher's faces compared), ``missed`` (not found by the
    #: student's detector), ``photos`` (held-out photos), ``description``
    agreement_detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        slim = {k: {m: v.get(m) for m in ("headline", "accuracy", "balanced_accuracy", "images")}
                for k, v in self.test.items()}
        return {"model": str(self.model_path), "agreement": self.agreement,
                "agreement_balanced": self.agreement_balanced, "agreement_detail": self.agreement_detail,
                "test": slim, "latency_ms": self.latency_ms,
                "student": {"embedder": self.train_report.get("auto", {}).get("chosen", {}).get("embedder"),
                            "search": self.train_report.get("auto")}}


def _latency(model: Any, files: list[Path]) -> float:
    model.classify(files[0])  # warm-up: models loaded
    t = time.perf_counter()
    for f in files:
        model.classify(f)
    return 1000 * (time.perf_counter() - t) / len(files)


def distil(pseudo: str | os.PathLike, output: str | os.PathLike, *, teacher: str | os.PathLike | None = None,
           embedder: str = "auto", detector: str = "live", head: str | None = None, val: float = 0.2,
           test: str | os.PathLike | None = None, test_options: dict[str, Any] | None = None,
           workers: int | None = None, progress: bool = True, latency_samples: int = 40,
           engine: Any = None) -> DistilResult:
    """Train a student on ``pseudo`` (an ``autolabel`` output folder) and compare it with the teacher.

    Args:
        pseudo: the autolabel output (class folders of crops; its ``summary.json`` names the teacher).
        output: the student model file.
        teacher: the teacher model (default: the one recorded in ``summary.json``).
        embedder, detector, head: the student's (fast: ``detector="live"``). ``embedder="auto"``
            (default) chooses the student's embedder and head by the feature search of
            :func:`faceforge.train.train` on the pseudo-labels (``train_report["auto"]``).
        val: share of pseudo-labelled faces held out to measure agreement.
        test: labelled test data (folder or CSV) to measure both models on the truth;
            ``test_options`` go to :func:`faceforge.train.evaluate` (e.g. ``label_column``).
        latency_samples: crops timed per model.
        workers, engine: where the crops and test photos are embedded (the batch runner; see
            :class:`~faceforge.train.config.TrainConfig`).

    Raises:
        ParameterError: no teacher known, or ``val`` out of range.
    """
    from faceforge.train import evaluate, load_classifier, train

    pseudo = Path(pseudo)
    if teacher is None:
        summary = pseudo / "summary.json"
        if not summary.is_file():
            raise ParameterError(f"{pseudo}: no summary.json (not an autolabel output?); pass the teacher model.")
        teacher = json.loads(summary.read_text())["model"]
    if not 0.0 < val < 0.9:
        raise ParameterError(f"val must lie in (0, 0.9) to measure agreement, got {val}")
    res = train(pseudo, output, embedder=embedder, detector=detector, head=head, val=val, workers=workers,
                progress=progress, learning_curve=False, target_far=None, engine=engine)
    result = DistilResult(Path(res.model_path), None, None, train_report=res.report)
    # the probe student has the settings the search chose (no second search)
    chosen = dict(embedder=res.manifest["embedder"], head=res.manifest["head"]["kind"])
    result.agreement, result.agreement_balanced, result.agreement_detail = _agreement(
        pseudo, Path(res.model_path), val, dict(detector=detector, workers=workers, engine=engine, **chosen))
    student = load_classifier(res.model_path)
    teacher_clf = load_classifier(teacher)
    if test is not None:
        for name, m in (("student", res.model_path), ("teacher", teacher)):
            result.test[name] = evaluate(m, test, workers=workers, progress=progress, engine=engine,
                                         **(test_options or {}))
    crops = sorted(p for p in pseudo.glob("*/*.jpg"))[:latency_samples]
    if crops:
        result.latency_ms = {"student": round(_latency(student, crops), 2),
                             "teacher": round(_latency(teacher_clf, crops), 2)}
    return result


def _agreement(pseudo: Path, model: Path, val: float,
               opts: dict[str, Any]) -> tuple[float | None, float | None, dict[str, Any]]:
    """Agreement with the teacher on the teacher's own faces, in photos the probe student never saw.

    A share ``val`` of the photos with kept faces is held out; a probe student (same settings,
    cached embeddings) is trained on the other photos' crops, then classifies each held-out photo
    and the face whose box overlaps the teacher's (IoU >= :data:`MATCH_IOU`) is compared.
    """
    from faceforge.train import load_classifier, train
    from faceforge.types import iou_matrix

    manifest = pseudo / "manifest.csv"
    none: dict[str, Any] = {"faces": 0, "missed": 0, "photos": 0, "description": "not measured: no manifest.csv"}
    if not manifest.is_file():
        return None, None, none
    rows = [r for r in csv.DictReader(open(manifest, newline="")) if r.get("kept") == "1" and r.get("crop")]
    stills = sorted({r["source"] for r in rows if r["frame"] == "0" and Path(r["source"]).is_file()})
    rng = np.random.default_rng(0)
    held = set(rng.permutation(stills)[:max(1, int(round(val * len(stills))))].tolist()) if len(stills) >= 4 else set()
    test = [r for r in rows if r["source"] in held]
    fit_rows = [r for r in rows if r["source"] not in held]
    if not test or len({r["label"] for r in fit_rows}) < 2:
        return None, None, {**none, "description": "not measured: too few photos to hold some out"}
    tmp = Path(tempfile.mkdtemp(prefix="faceforge-distil-"))
    try:
        for r in fit_rows:
            dst = tmp / "crops" / r["crop"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(pseudo / r["crop"], dst)
        train(tmp / "crops", tmp / "probe.ffm", val=0.0, progress=False, learning_curve=False, target_far=None,
              **opts)
        probe = load_classifier(tmp / "probe.ffm")
        truth, said, missed = [], [], 0
        for src in sorted(held):
            faces = probe.classify(src)
            preds = faces.predictions.get(probe.name) or []
            for r in (r for r in test if r["source"] == src):
                box = np.array([[float(r[k]) for k in ("x1", "y1", "x2", "y2")]], np.float32)
                iou = iou_matrix(box, faces.xyxy)[0] if len(faces) else np.zeros(0)
                pred = preds[int(iou.argmax())] if len(iou) and iou.max() >= MATCH_IOU else None
                if pred is None:
                    missed += 1
                    continue
                truth.append(r["label"])
                said.append(pred.label)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    detail = {"faces": len(truth), "missed": missed, "photos": len(held),
              "description": f"the student's label against the teacher's on {len(truth)} of the teacher's faces "
                             f"in {len(held)} held-out photos ({missed} not found by the student's detector)"}
    if not truth:
        return None, None, detail
    t, p = np.array(truth), np.array(said)
    per = [float(np.mean(p[t == c] == c)) for c in np.unique(t)]
    return float(np.mean(t == p)), float(np.mean(per)), detail
