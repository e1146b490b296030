"""Ingest: new photos from inbox folders into a dataset of class folders, once each.

``ingest(["inbox/"], "people/")`` lists every image under the inboxes (folders in any layout,
zip / tar archives, archives inside folders), skips what the dataset's ledger has seen (by the
sha256 of the file's bytes: a renamed or copied file is still seen), and for each new photo finds
the main face (the photo detector; a photo with several faces gives its main face,
:func:`faceforge.types.main_face_order`), cuts the crop ``align_faces(image, faces, "margin",
size=160, margin=1.6)`` and files it as ``DATASET/CLASS/<sha16>_face1.jpg``. The originals are
only read, never moved, renamed or changed.

The class of a photo is the name of the folder holding it (``2026-12-01-training-images/anna/x.jpg``
and ``inbox/anna/x.jpg``: ``anna``; an archive counts as the folder it sits in), unless that folder
is the inbox itself or a dated folder (a name starting ``YYYY-MM-DD``): then the photo is
unlabelled. An unlabelled face is routed by ``model`` (a classifier: filed when its label is not
unknown and its score >= ``min_confidence``) or ``gallery`` (filed when the gallery knows the face
within its threshold); otherwise, or without either, it goes to ``DATASET/review/`` with the reason
(``review/review.csv``).

Duplicates: a file whose content the ledger holds is not processed again; a face whose dlib-resnet
embedding lies within :data:`NEAR_DUPLICATE` of a face of the dataset (or one filed earlier in the
run) is a near duplicate and is not filed. A class's new batch that looks unlike its old photos
(:func:`faceforge.collect.health.unlike_old`) is refused: its faces go to review.

Work runs on the batch runner (decode, detect, align, embed, route in the workers); this process
alone writes files and the ledger. Crops are written atomically into ``.faceforge/pending/`` and
moved into place at the end; a file's ledger row is written after its crop is in place, so a run
killed at any point reruns cleanly (nothing half written, nothing counted twice, nothing lost).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceforge._fs import sha256_file
from faceforge.collect.inbox import DATE_FOLDER, class_of, list_inbox
from faceforge.collect.ledger import META_DIR, REVIEW_DIR, Ledger
from faceforge.errors import ParameterError, SourceError
from faceforge.runner.run import WorkItem

log = logging.getLogger(__name__)
PathLike = str | os.PathLike

#: Near-duplicate distance (dlib-resnet, euclidean). Measured on the photo detector's main faces
#: of AT&T faces (20 people x 10, 60 originals) and the TV characters (8 x 5, 24 originals): copies
#: re-encoded (JPEG q50 / q75), resized (x0.5, x0.75, x1.5), resized + re-encoded and cropped by
#: 5 % / 10 % per side lie at median 0.07-0.25 from their original (AT&T max 0.41 at x0.5, i.e. a
#: 46x56 image); other photos of the same person lie at min 0.086 / median 0.31 (AT&T, whose 10
#: photos per person are one session) and min 0.26 / median 0.43 (TV). At 0.2: 76 % (AT&T) and 90 %
#: (TV) of all copies caught, every q75 and x1.5 copy, 95 % of q50, x0.75 and 5 %-crop copies;
#: 7.9 % (AT&T) and 0 % (TV) of different photos of the same person taken for copies.
#: (At 0.15: 54 % / 84 % caught, 2.6 % / 0 % wrongly; at 0.25: 90 % / 95 %, 22 % / 0 %.)
NEAR_DUPLICATE = 0.2
#: Side of the filed crops, and their margin (the box x1.6: the crop autolabel files).
CROP_SIZE, CROP_MARGIN = 160, 1.6
#: The crops ingest files (the hand-made photos of a class folder are the others).
CROP_NAME = re.compile(r"^[0-9a-f]{16}_face\d+\.jpg$")
NO_CLASS = "no class: put it in a class folder, or pass -m MODEL / -g GALLERY"


@dataclass
class IngestReport:
    """What one ingest run did (saved as ``DATASET/.faceforge/runs/<run_id>.json``).

    Attributes:
        run_id: ``YYYYmmddTHHMMSSZ-xxxx`` (UTC).
        dataset, inboxes: where it read and wrote.
        new: files processed this run (every outcome below but ``already_seen`` / ``duplicates``).
        already_seen: files met in an earlier run (same path, same content).
        duplicates: files whose content was met before under another path, or twice in this run.
        near_duplicates: photos whose face is a near copy of one the dataset holds.
        unreadable: ``(path, reason)`` of files that are not images or do not decode.
        no_face: photos without a face.
        routed: faces filed per class.
        review: faces sent to ``review/`` per reason.
        refused: ``{class: why}`` of the classes whose new batch was refused (sent to review).
        health: :func:`faceforge.collect.health.class_health` after the run.
        seconds: wall time.
        files: one ``{source, status, class, reason}`` per processed file.
    """

    run_id: str
    dataset: str
    inboxes: list[str]
    new: int = 0
    already_seen: int = 0
    duplicates: int = 0
    near_duplicates: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    no_face: int = 0
    routed: dict[str, int] = field(default_factory=dict)
    review: dict[str, int] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    health: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def nothing_new(self) -> bool:
        """True when the run found no file it had not seen."""
        return self.new == 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field."""
        d = asdict(self)
        d["unreadable"] = [list(u) for u in self.unreadable]
        return json.loads(json.dumps(d, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


@dataclass
class _Item(WorkItem):
    """A work item with its role: ``"inbox"`` (a new photo) or ``"existing"`` (a dataset photo)."""

    role: str = "inbox"

    def light(self) -> _Item:
        return _Item(self.source, self.index, self.timestamp, None, self.role)


class _IngestTask:
    """Picklable per-photo work: the main face, its crop, its dlib-resnet embedding, its route."""

    def __init__(self, model: str | None, gallery: tuple[str, str] | None) -> None:
        self.model, self.gallery = model, gallery
        self._pipe: Any = None
        self._router: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"model": self.model, "gallery": self.gallery, "_pipe": None, "_router": None}

    def __call__(self, image: np.ndarray, item: Any) -> dict[str, Any]:
        from faceforge.align import align_faces
        from faceforge.pipeline import FacePipeline

        if self._pipe is None:
            self._pipe = FacePipeline("photo", "dlib-resnet")
        faces = self._pipe.embed(image, main_only=True)
        if not len(faces):
            return {"faces": 0}
        out: dict[str, Any] = {"faces": int(faces.data["faces_found"][0]) if "faces_found" in faces.data else 1,
                               "embedding": np.asarray(faces.embedding[0], np.float32),
                               "box": [round(float(v), 1) for v in faces.xyxy[0]]}
        if getattr(item, "role", "inbox") == "existing":
            return out
        out["crop"] = align_faces(image, faces, "margin", size=CROP_SIZE, margin=CROP_MARGIN)[0]
        if self.model or self.gallery:
            if self._router is None:
                if self.model:
                    from faceforge.train import load_classifier

                    self._router = load_classifier(self.model)
                else:
                    from faceforge.gallery import Gallery

                    self._router = Gallery(self.gallery[0], self.gallery[1])  # type: ignore[index]
            pred = self._router.predict_faces(image, faces, top_k=1)[0]
            out["label"], out["score"] = pred.label, float(pred.score)
        return out


def _run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(2)


def ingest(inboxes: Sequence[PathLike], into: PathLike, *, model: PathLike | None = None,
           gallery: tuple[PathLike, str] | None = None, min_confidence: float = 0.8,
           near_duplicate: float | None = None, engine: Any = None, workers: int | None = None,
           progress: bool | str = False, on_event: Callable[[str, Any], None] | None = None) -> IngestReport:
    """Ingest the new photos of ``inboxes`` into the dataset ``into`` (see the module docs).

    Args:
        inboxes: folders (any layout), archives or image files to read; never changed.
        into: the dataset folder (created when missing); must not overlap an inbox.
        model: a classifier (``.ffm``) that routes unlabelled faces.
        gallery: ``(gallery file, gallery name)`` that routes unlabelled faces (a face is filed
            when the gallery knows it within its threshold; ``min_confidence`` does not apply).
        min_confidence: the model's score an unlabelled face needs to be filed.
        near_duplicate: the near-duplicate distance (default :data:`NEAR_DUPLICATE`; 0: off).
        engine, workers: where the work runs (as for every batch command, see
            :func:`faceforge.runner.run`).
        progress: show a progress bar (a string: its description).
        on_event: called as ``on_event(kind, payload)``: ``("listed", {"files": n, "new": m})``,
            ``("file", {source, status, class, reason})`` per processed file, ``("done", report dict)``.

    Returns:
        The :class:`IngestReport` (also saved in ``DATASET/.faceforge/runs/``).

    Raises:
        SourceError: an inbox does not exist; the model or gallery file does not exist.
        OutputError: the dataset is, holds or lies inside an inbox.
        ParameterError: both ``model`` and ``gallery``, or a bad threshold.
    """
    from faceforge._fs import atomic_write, check_output
    from faceforge.collect.health import class_health, unlike_old
    from faceforge.runner import run_items
    from faceforge.sinks import save_image

    t0 = time.time()
    boxes = [Path(p) for p in inboxes]
    if not boxes:
        raise ParameterError("ingest needs at least one inbox (a folder or archive of new photos).")
    for p in boxes:
        if not p.exists():
            raise SourceError(f"The inbox {p} does not exist (relative paths start at {Path.cwd()}); give a folder "
                              f"or archive of new photos.")
    if model is not None and gallery is not None:
        raise ParameterError("Route unlabelled faces by a model or by a gallery, not both: drop -m or -g.")
    for mf, what in ((model, "model"), (gallery[0] if gallery else None, "gallery")):
        if mf is not None and not Path(mf).is_file():
            raise SourceError(f"The {what} file {mf} does not exist; give the file that routes unlabelled faces.")
    if not 0.0 <= float(min_confidence) <= 1.0:
        raise ParameterError(f"min_confidence must lie in [0, 1], got {min_confidence}")
    near = NEAR_DUPLICATE if near_duplicate is None else float(near_duplicate)
    if near < 0:
        raise ParameterError(f"near_duplicate must be a distance >= 0 (0: off), got {near_duplicate}")
    root = check_output(into, boxes, kind="folder", what="dataset")
    root.mkdir(parents=True, exist_ok=True)
    emit = on_event or (lambda kind, payload: None)
    ledger = Ledger(root)
    run_id = _run_id()
    rep = IngestReport(run_id, str(root), [str(p) for p in boxes])
    ledger.start_run(run_id, rep.inboxes)
    pending = root / META_DIR / "pending"
    shutil.rmtree(pending, ignore_errors=True)  # crops of a run killed before filing them
    _write_review_csv(ledger, root)

    # ---- what is new: hashes (memoised by path, size and mtime) against the ledger --------------
    known, seen = ledger.known_paths(), ledger.seen_shas()
    listed: list[dict[str, Any]] = []
    for inbox in boxes:
        found, others = list_inbox(inbox)
        listed += found
        for key, why in others:
            listed.append({"path": key, "key": str(Path(key).resolve()), "label": None, "name": key, "bad": why})
    todo: list[dict[str, Any]] = []
    this_run: set[str] = set()
    paths: list[tuple[str, int, float, str]] = []
    for f in listed:
        st = os.stat(f["path"])
        k = known.get(f["key"])
        sha = k[2] if k and k[0] == st.st_size and k[1] == st.st_mtime else sha256_file(f["path"])
        f.update(sha=sha, size=st.st_size)
        if sha in seen:
            if k and k[2] == sha:
                rep.already_seen += 1
            else:
                rep.duplicates += 1
                paths.append((f["key"], st.st_size, st.st_mtime, sha))
        elif sha in this_run:
            rep.duplicates += 1
            paths.append((f["key"], st.st_size, st.st_mtime, sha))
        else:
            this_run.add(sha)
            f["mtime"] = st.st_mtime
            todo.append(f)
    ledger.add_paths(paths)

    # ---- photos put in the class folders by hand join the known faces -------------------------
    face_paths, sources = ledger.face_paths(), ledger.sources()
    existing = []
    for cdir in sorted(x for x in root.iterdir() if x.is_dir() and not x.name.startswith(".") and x.name != REVIEW_DIR):
        for here, dirs, files in os.walk(cdir):
            dirs[:] = sorted(x for x in dirs if not x.startswith("."))
            for name in sorted(files):
                p = Path(here) / name
                rel = p.relative_to(root).as_posix()
                if name.startswith(".") or CROP_NAME.match(name) or rel in face_paths or str(p.resolve()) in sources:
                    continue
                from faceforge.sources.walk import media_kind

                if media_kind(p) == "image":
                    existing.append({"path": str(p), "key": str(p.resolve()), "rel": rel, "class": cdir.name})
    emit("listed", {"files": len(listed), "new": len(todo), "existing": len(existing)})

    old = ledger.faces()
    old_by_class: dict[str, list[np.ndarray]] = {}
    for r in old:
        old_by_class.setdefault(r["class"], []).append(r["embedding"])
    ref = _Refs([r["embedding"] for r in old], [r["path"] for r in old])

    def note(f: dict[str, Any], status: str, cls: str = "", reason: str = "") -> None:
        entry = {"source": f["key"], "status": status, "class": cls, "reason": reason}
        rep.files.append(entry)
        emit("file", entry)

    def finish(f: dict[str, Any], status: str, reason: str = "", faces: Sequence[dict[str, Any]] = (),
               review: Sequence[dict[str, Any]] = (), cls: str = "") -> None:
        ledger.record(f["sha"], f["key"], f["size"], status, reason, run_id, faces, review)
        ledger.add_paths([(f["key"], f["size"], f["mtime"], f["sha"])])
        note(f, status, cls, reason)

    items = [_Item(e["path"], role="existing") for e in existing]
    work = {("existing", e["path"]): e for e in existing}
    for f in todo:
        if "bad" in f:
            rep.new += 1
            rep.unreadable.append((f["key"], f["bad"]))
            finish(f, "unreadable", f["bad"])
            continue
        items.append(_Item(f["path"], role="inbox"))
        work[("inbox", f["path"])] = f
    task = _IngestTask(str(Path(model).resolve()) if model else None,
                       (str(Path(gallery[0]).resolve()), gallery[1]) if gallery else None)
    protect = [x["path"] for x in todo]
    bar = (progress if isinstance(progress, str) else ("ingest" if progress else None)) if items else None
    filed: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}  # class -> [(file, face)]
    to_review: list[tuple[dict[str, Any], dict[str, Any], str]] = []
    for res in run_items(task, items, engine=engine, workers=workers, progress=bar, total=len(items)):
        f = work[(res.item.role, res.item.source)]
        if res.item.role == "existing":  # a photo of the dataset: its face is known from now on
            sha, size = sha256_file(f["path"]), os.path.getsize(f["path"])
            if res.ok and res.value["faces"]:
                e = res.value["embedding"]
                ledger.record(sha, f["key"], size, "added", "in the dataset before ingest", run_id,
                              [{"face": 1, "class": f["class"], "path": f["rel"], "embedding": e}])
                old_by_class.setdefault(f["class"], []).append(e)
                ref.add(e, f["rel"])
            else:  # remembered, so that it is not looked at again
                ledger.record(sha, f["key"], size, "unreadable" if not res.ok else "no_face",
                              res.error or "no face found (a photo in the dataset)", run_id)
            continue
        rep.new += 1
        if not res.ok:
            rep.unreadable.append((f["key"], res.error or "unreadable"))
            finish(f, "unreadable", res.error or "")
            continue
        v = res.value
        if not v["faces"]:
            rep.no_face += 1
            finish(f, "no_face", "no face found")
            continue
        e = v["embedding"]
        hit = ref.nearest(e) if near > 0 else None
        if hit is not None and hit[1] < near:
            rep.near_duplicates += 1
            finish(f, "near_duplicate", f"a near copy of {hit[0]} (distance {hit[1]:.3f} < {near:g})")
            continue
        rel = f"{f['sha'][:16]}_face1.jpg"
        save_image(pending / rel, v["crop"], protect)
        face = {"crop": rel, "embedding": e, "label": v.get("label"), "score": v.get("score")}
        cls, why = f["label"], ""
        if cls is None:
            cls, why = _route(face, model is not None, gallery is not None, min_confidence)
        if cls is None:
            to_review.append((f, face, why))
        else:
            filed.setdefault(cls, []).append((f, face))
        ref.add(e, f"{cls or REVIEW_DIR}/{rel}")

    # ---- per class: refuse a batch unlike the class's old photos, else file it -----------------
    old_arrays = {c: np.asarray(v, np.float32) for c, v in old_by_class.items()}
    accepted: dict[str, np.ndarray] = {}
    for cls, batch in sorted(filed.items()):
        check = unlike_old(old_arrays, cls, np.stack([face["embedding"] for _, face in batch]))
        if check and check["flagged"]:
            rep.refused[cls] = check["reason"]
            for f, face in batch:
                to_review.append((f, {**face, "label": cls}, f"refused for {cls!r}: {check['reason']}"))
            continue
        accepted[cls] = np.stack([face["embedding"] for _, face in batch])
        (root / cls).mkdir(parents=True, exist_ok=True)
        for f, face in batch:
            dst = f"{cls}/{face['crop']}"
            os.replace(pending / face["crop"], root / dst)
            rep.routed[cls] = rep.routed.get(cls, 0) + 1
            finish(f, "added", "" if f["label"] else f"routed with score {face['score']:.3f}",
                   [{"face": 1, "class": cls, "path": dst, "embedding": face["embedding"]}], cls=cls)
    if to_review:
        (root / REVIEW_DIR).mkdir(parents=True, exist_ok=True)
    for f, face, why in to_review:
        dst = f"{REVIEW_DIR}/{face['crop']}"
        os.replace(pending / face["crop"], root / dst)
        kind = why.split(":")[0].split(" (")[0]
        rep.review[kind] = rep.review.get(kind, 0) + 1
        status = "refused" if why.startswith("refused") else "review"
        finish(f, status, why, review=[{"crop": dst, "source": f["key"], "frame": 0,
                                        "suggested": face.get("label") or "", "confidence": face.get("score"),
                                        "reason": why}], cls=face.get("label") or "")
    _write_review_csv(ledger, root)

    # ---- health, the report -----------------------------------------------------------------
    earlier = [r["report"] for r in ledger.runs() if r.get("report") and r["id"] != run_id]
    rep.health = class_health(root, accepted, old_faces_by_class=old_arrays, runs=earlier)
    for h in rep.health:
        if h["class"] in rep.refused:
            h["flags"].append("refused")
            h["warnings"].append(f"the new batch of {h['class']!r} was refused (sent to review): "
                                 f"{rep.refused[h['class']]}.")
    rep.seconds = round(time.time() - t0, 3)
    saved = rep.to_dict()
    atomic_write(root / META_DIR / "runs" / f"{run_id}.json", json.dumps(saved, indent=1).encode())
    ledger.finish_run(run_id, saved)
    shutil.rmtree(pending, ignore_errors=True)
    emit("done", saved)
    return rep


class _Refs:
    """The embeddings near duplicates are looked for among (grown as faces are filed)."""

    def __init__(self, embeddings: Sequence[np.ndarray], names: Sequence[str]) -> None:
        self.names = list(names)
        self.X = np.zeros((max(64, 2 * len(self.names)), 128), np.float32)
        if self.names:
            self.X[:len(self.names)] = np.asarray(embeddings, np.float32)

    def add(self, e: np.ndarray, name: str) -> None:
        if len(self.names) == len(self.X):
            self.X = np.concatenate([self.X, np.zeros_like(self.X)])
        self.X[len(self.names)] = e
        self.names.append(name)

    def nearest(self, e: np.ndarray) -> tuple[str, float] | None:
        """``(name, distance)`` of the nearest face, or None when there is none."""
        n = len(self.names)
        if not n:
            return None
        d = np.linalg.norm(self.X[:n] - e, axis=1)
        j = int(np.argmin(d))
        return self.names[j], float(d[j])


def _route(face: dict[str, Any], by_model: bool, by_gallery: bool, min_confidence: float) -> tuple[str | None, str]:
    """``(class, "")`` for a confident unlabelled face, else ``(None, reason for review)``."""
    from faceforge.types import UNKNOWN

    label, score = face.get("label"), face.get("score")
    if not (by_model or by_gallery) or label is None:
        return None, NO_CLASS
    if label == UNKNOWN:
        return None, ("unknown face (not in the gallery)" if by_gallery else
                      f"unknown face (the model's unknown check; best score {score:.3f})")
    if by_model and (score is None or score < min_confidence):
        return None, f"low confidence ({label} {score:.3f} < {min_confidence:g})"
    return label, ""


def _write_review_csv(ledger: Ledger, root: Path) -> None:
    """``review/review.csv`` from the ledger (atomically; rebuilt each run, so it repairs itself)."""
    from faceforge._fs import atomic_write

    rows = ledger.review_rows()
    if not rows:
        return
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["crop", "source", "frame", "suggested", "confidence", "reason", "run"])
    for r in rows:
        conf = "" if r["confidence"] is None else f"{r['confidence']:.4f}"
        w.writerow([r["crop"], r["source"], r["frame"], r["suggested"], conf, r["reason"], r["run"]])
    (root / REVIEW_DIR).mkdir(parents=True, exist_ok=True)
    atomic_write(root / REVIEW_DIR / "review.csv", buf.getvalue().encode())


__all__ = ["CROP_MARGIN", "CROP_SIZE", "DATE_FOLDER", "NEAR_DUPLICATE", "NO_CLASS", "IngestReport", "class_of",
           "ingest"]
