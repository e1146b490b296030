"""Distillation: train a student on a teacher's pseudo-labels (the output of ``autolabel``).

The student is an ordinary faceforge model (a head over an embedder, with the detector of your
choice, ``"live"`` by default) trained on the class folders ``autolabel`` wrote, so ``classify``,
``analyze`` and ``live`` take it. The report gives:

* **agreement**: the student's accuracy against the teacher's labels on held-out pseudo-labelled
  faces (how well it learnt the teacher);
* **test accuracy** of student and teacher on a labelled test set, when one is given;
* **latency** per image of both (detection, embedding and head), on the same crops.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceforge.errors import ParameterError


@dataclass
class DistilResult:
    model_path: Path
    agreement: float | None
    agreement_balanced: float | None
    test: dict[str, Any] = field(default_factory=dict)       # "student" / "teacher" -> report
    latency_ms: dict[str, float] = field(default_factory=dict)
    train_report: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        slim = {k: {m: v.get(m) for m in ("accuracy", "balanced_accuracy", "images")} for k, v in self.test.items()}
        return {"model": str(self.model_path), "agreement": self.agreement,
                "agreement_balanced": self.agreement_balanced, "test": slim, "latency_ms": self.latency_ms}


def _latency(model: Any, files: list[Path]) -> float:
    model.classify(files[0])  # warm-up: models loaded
    t = time.perf_counter()
    for f in files:
        model.classify(f)
    return 1000 * (time.perf_counter() - t) / len(files)


def distil(pseudo: str | os.PathLike, output: str | os.PathLike, *, teacher: str | os.PathLike | None = None,
           embedder: str = "dlib-resnet", detector: str = "live", head: str | None = None, val: float = 0.2,
           test: str | os.PathLike | None = None, test_options: dict[str, Any] | None = None,
           workers: int | None = None, progress: bool = True, latency_samples: int = 40) -> DistilResult:
    """Train a student on ``pseudo`` (an ``autolabel`` output folder) and compare it with the teacher.

    Args:
        pseudo: the autolabel output (class folders of crops; its ``summary.json`` names the teacher).
        output: the student model file.
        teacher: the teacher model (default: the one recorded in ``summary.json``).
        embedder, detector, head: the student's (fast: ``detector="live"``).
        val: share of pseudo-labelled faces held out to measure agreement.
        test: labelled test data (folder or CSV) to measure both models on the truth;
            ``test_options`` go to :func:`faceforge.train.evaluate` (e.g. ``label_column``).
        latency_samples: crops timed per model.

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
                progress=progress, learning_curve=False, target_far=None)
    result = DistilResult(Path(res.model_path), res.report.get("accuracy"), res.report.get("balanced_accuracy"),
                          train_report=res.report)
    student = load_classifier(res.model_path)
    teacher_clf = load_classifier(teacher)
    if test is not None:
        for name, m in (("student", res.model_path), ("teacher", teacher)):
            result.test[name] = evaluate(m, test, workers=workers, progress=progress, **(test_options or {}))
    crops = sorted(p for p in pseudo.glob("*/*.jpg"))[:latency_samples]
    if crops:
        result.latency_ms = {"student": round(_latency(student, crops), 2),
                             "teacher": round(_latency(teacher_clf, crops), 2)}
    return result
