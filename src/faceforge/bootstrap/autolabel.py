"""Pseudo-labelling: a teacher model labels every face of an unlabelled photo collection.

``autolabel`` runs a trained model over every image (both cores), keeps the faces whose label
confidence reaches ``min_confidence``, and writes:

* ``OUT/<label>/<photo>_face<k>.jpg``: a crop of each kept face (box x1.6), a folder per class
  that ``faceforge train`` takes directly (the student);
* ``OUT/manifest.csv``: every face (kept or not): source, frame, box, label, confidence, kept, crop;
* ``OUT/summary.json``: counts per class, the confidence histogram, the class skew, the main and
  background faces, and what the balance step dropped per class.

A teacher trained by ``faceforge train`` learnt one label per photo from the photo's main face
(:func:`faceforge.types.main_face_order`), so by default (``faces="main"``) only the main face of
each photo (or frame) is kept; the others are background faces, listed in the manifest (not kept,
``reason`` ``background``) and counted in the summary. ``faces="all"`` keeps every face.

It resumes: ``OUT/.progress.jsonl`` records each finished image as it goes, so a rerun after an
interruption only processes the rest. Sources are only read.

Balance: pseudo-labels inherit the teacher's bias (the tutorial this grew from ended with 75% men).
``balance="cap"`` keeps, per class, at most as many faces as the rarest class has above the
threshold (the most confident ones), so the student trains on balanced data; the summary's
``balance_dropped`` says how many faces of each class it dropped.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from faceforge.errors import ParameterError, SourceError

if TYPE_CHECKING:
    from faceforge.train import FaceClassifier

BALANCE = ("none", "cap")
FACES = ("main", "all")
HIST_BINS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0001)


class _LabelTask:
    """Picklable per-image task: every face's label, confidence, box and crop."""

    def __init__(self, model: str, crop_size: int) -> None:
        self.model, self.crop_size = model, crop_size
        self._clf: FaceClassifier | None = None

    def __call__(self, image: np.ndarray, item: Any) -> list[dict[str, Any]]:
        from faceforge.align import align_faces
        from faceforge.train import load_classifier
        from faceforge.types import main_face_order

        if self._clf is None:
            self._clf = load_classifier(self.model)
        out = []
        faces = self._clf.classify(image, top_k=2)
        main = int(main_face_order(faces)[0]) if len(faces) else -1
        for i, (face, pred) in enumerate(zip(faces, faces.predictions[self._clf.name])):
            if pred is None:  # not from classify(), which predicts every face
                continue
            whole = bool(faces.whole_image[i])
            crop = image if whole else align_faces(image, face, "margin", size=self.crop_size, margin=1.6)[0]
            out.append({"box": [round(float(v), 1) for v in face.xyxy[0]], "label": pred.label,
                        "confidence": float(pred.score), "crop": crop, "whole_image": whole,
                        "main": i == main})
        return out


@dataclass
class AutolabelResult:
    output: Path
    faces: list[dict[str, Any]] = field(default_factory=list)  # manifest rows (no crops)
    counts: dict[str, int] = field(default_factory=dict)        # kept faces per class
    predicted: dict[str, int] = field(default_factory=dict)     # all faces per predicted class
    histogram: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    resumed: int = 0                                             # images found done already
    background: int = 0                                          # faces not the main face of their photo
    dropped: dict[str, int] = field(default_factory=dict)        # faces per class the balance step dropped

    @property
    def skew(self) -> float | None:
        """Largest / smallest kept class count (1.0 = balanced; None with an empty class)."""
        v = [c for c in self.counts.values()]
        return (max(v) / min(v)) if v and min(v) > 0 else None


def autolabel(model: str | os.PathLike, paths: Iterable[str | os.PathLike], output: str | os.PathLike, *,
              min_confidence: float = 0.6, balance: str = "none", workers: int | None = None,
              progress: bool = True, crop_size: int = 160, faces: str = "main", engine: Any = None) -> AutolabelResult:
    """Label every face under ``paths`` with ``model`` (see the module docs).

    ``faces="main"`` (default) keeps only the main face of each photo or frame (the face a
    per-photo label belongs to); ``"all"`` keeps background faces too. ``engine`` is where the
    labelling runs (None: ``$FACEFORGE_ENGINE``, else ``"local"``; ``"ray"``, or an engine: see
    :func:`faceforge.runner.get_engine`); the outputs are written here either way.

    Raises:
        ParameterError: bad threshold or balance, or a regression model.
        OutputError: ``output`` is a file, or is, holds or lies inside an input or the model.
        SourceError / BundleError: unreadable inputs or model; no input could be used at all (the
            message lists them and why).
    """
    from faceforge.runner import run
    from faceforge.sinks import check_output, output_stem, save_image
    from faceforge.sinks.files import atomic_write
    from faceforge.sources import open_source
    from faceforge.train import UNKNOWN, load_classifier

    if not 0.0 <= float(min_confidence) < 1.0:
        raise ParameterError(f"min_confidence must lie in [0, 1), got {min_confidence}")
    if balance not in BALANCE:
        raise ParameterError(f"balance must be one of {BALANCE}, got {balance!r}")
    if faces not in FACES:
        raise ParameterError(f"faces must be one of {FACES} (main: the main face of each photo), got {faces!r}")
    paths = list(paths)
    out = check_output(output, [*paths, model], kind="folder", what="autolabel output folder")
    clf = load_classifier(model)
    if clf.task != "classification":
        raise ParameterError(f"{model}: autolabel needs a classification model; this one predicts numbers.")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    prog_path = out / ".progress.jsonl"
    done: dict[str, list[dict[str, Any]]] = {}
    if prog_path.is_file():
        for line in prog_path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut by the interruption
                continue
            if rec.get("model") == str(Path(model).resolve()):
                done[rec["key"]] = rec["faces"]
    skipped: list[tuple[str, str]] = []
    src = open_source([str(p) for p in paths])
    files = src.paths
    protect = files + [str(model)]
    result = AutolabelResult(out, skipped=skipped)
    # resume: stills labelled in an earlier run (the progress file) are not labelled again
    result.resumed = sum(1 for f in files if f"{f}:0" in done and not _is_video(Path(f)))
    task = _LabelTask(str(Path(model).resolve()), crop_size)
    outcomes = run(task, src, engine=engine, workers=workers, progress="autolabel" if progress else None,
                   skip=lambda it: f"{it.source}:{it.index}" in done and not _is_video(Path(it.source)))
    with open(prog_path, "a") as prog:
        if prog.tell() and not prog_path.read_bytes().endswith(b"\n"):
            prog.write("\n")  # end a line an interruption cut short
        for res in outcomes:
            if res.error:
                continue  # reported with the source's skips below
            key = f"{res.item.source}:{res.item.index}"
            stem = output_stem(res.item.source, res.item.index)
            found = []
            for k, f in enumerate(res.value, 1):
                rel = f"{f['label']}/{stem}_face{k}.jpg"
                save_image(out / ".pending" / rel, f["crop"], protect)  # moved into place once kept
                found.append({"box": f["box"], "label": f["label"], "confidence": round(f["confidence"], 5),
                              "crop": rel, "whole_image": f["whole_image"], "main": f["main"]})
            done[key] = found
            prog.write(json.dumps({"model": task.model, "key": key, "faces": found}) + "\n")
            prog.flush()
    skipped.extend((s.source, s.reason) for s in outcomes.skipped)
    if not done and skipped:  # not one input could be used: say which and why, leave nothing behind
        if created:
            shutil.rmtree(out, ignore_errors=True)
        why = "; ".join((r if f in r else f"{f}: {r}").rstrip(".") for f, r in skipped[:5])
        raise SourceError(f"Nothing was labelled: none of the {len(skipped)} input(s) could be used ({why}"
                          f"{f'; and {len(skipped) - 5} more' if len(skipped) > 5 else ''}). Fix or remove "
                          f"these files, or point autolabel at other photos.")

    # ---- decide what to keep (thresholds, balance) and lay out the class folders ---------------
    rows = [{"source": k.rsplit(":", 1)[0], "frame": int(k.rsplit(":", 1)[1]), **f}
            for k, fs in done.items() for f in fs]
    for r in rows:  # progress files of earlier versions have no "main": every face counted as main
        r["main"] = bool(r.get("main", True))
        r["reason"] = ("background" if faces == "main" and not r["main"] else "unknown" if r["label"] == UNKNOWN
                       else "low confidence" if r["confidence"] < min_confidence else "")
    by_class: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if not r["reason"]:
            by_class.setdefault(r["label"], []).append(r)
    if balance == "cap" and by_class:
        cap = min(len(by_class.get(c, [])) for c in clf.classes if c != UNKNOWN)
        for c, v in by_class.items():
            v.sort(key=lambda r: -r["confidence"])
            for r in v[cap:]:
                r["reason"] = "balance"
            result.dropped[c] = max(0, len(v) - cap)
            by_class[c] = v[:cap]
    keep = {id(r) for v in by_class.values() for r in v}
    result.background = sum(1 for r in rows if not r["main"])
    for r in rows:
        r["kept"] = id(r) in keep
        src, dst = out / ".pending" / r["crop"], out / r["crop"]
        if r["kept"]:
            if src.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
        elif dst.is_file():  # kept in an earlier run with other settings
            src.parent.mkdir(parents=True, exist_ok=True)
            os.replace(dst, src)
    result.faces = rows
    result.counts = {c: len(by_class.get(c, [])) for c in clf.classes}
    result.predicted = {c: sum(1 for r in rows if r["label"] == c) for c in clf.classes}
    conf = np.array([r["confidence"] for r in rows])
    if len(conf):
        hist, edges = np.histogram(conf, bins=np.array(HIST_BINS))
    else:
        hist, edges = np.zeros(len(HIST_BINS) - 1, int), np.asarray(HIST_BINS, np.float64)
    result.histogram = {f"{edges[i]:.2f}-{min(edges[i + 1], 1.0):.2f}": int(hist[i]) for i in range(len(hist))}
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["source", "frame", "x1", "y1", "x2", "y2", "label", "confidence", "kept", "crop", "main", "reason"])
    for r in rows:
        w.writerow([r["source"], r["frame"], *r["box"], r["label"], r["confidence"], int(r["kept"]),
                    r["crop"] if r["kept"] else "", int(r["main"]), r["reason"]])
    atomic_write(out / "manifest.csv", buf.getvalue().encode())
    summary = {"model": str(model), "min_confidence": min_confidence, "balance": balance, "faces": len(rows),
               "faces_rule": faces, "main_faces": len(rows) - result.background,
               "background_faces": result.background, "balance_dropped": result.dropped,
               "kept": result.counts, "predicted": result.predicted, "skew": result.skew,
               "histogram": result.histogram, "teacher_training_classes": clf.manifest.get("data", {}).get("per_class"),
               "skipped": [{"file": f, "reason": r} for f, r in skipped]}
    atomic_write(out / "summary.json", json.dumps(summary, indent=2).encode())
    if not rows and not skipped:
        raise SourceError("No faces found in the unlabelled photos.")
    return result


def _is_video(path: Path) -> bool:
    from faceforge.sources.media import media_kind

    return media_kind(path) == "video"
