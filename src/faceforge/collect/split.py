"""The photos of a class-folder dataset, their fixed validation split, and the dataset's state.

A dataset is ``DATASET/CLASS/*.jpg`` (nested folders give classes such as ``"adults/anna"``);
hidden files and folders, a top-level ``review/`` folder (faces waiting for a person to look at
them) and images directly in ``DATASET`` are skipped.

**The split** (:func:`fixed_split`) depends on nothing but the photos' bytes, so it is the same
for every version and versions are comparable:

1. a photo is a validation photo when the SHA-256 of its bytes, read as a number in [0, 1)
   (its first 16 hex digits / 2**64), is below ``fraction`` (default 0.2), unless it trained an
   earlier version (possible only when ``fraction`` was raised since);
2. a class with at least :data:`MIN_CLASS_FOR_VALIDATION` photos and no validation photo by
   rule 1 gets one: its photo of smallest hash among the photos that never trained a version.

Adding photos never moves a photo that trained an earlier version into validation (rule 1 is
fixed per photo; neither rule picks a photo that trained a version), so no version is ever measured
on a photo it, or the version it is compared with, trained on. Removing photos can move a class's
rule-2 photo; that photo is then still one no version trained on.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from faceforge._fs import sha256_file
from faceforge.errors import DatasetError, ParameterError

#: The share of photos held out for validation by default (rule 1 of the split).
VAL_FRACTION = 0.2
#: A class with at least this many photos always has a validation photo (rule 2).
MIN_CLASS_FOR_VALIDATION = 5
#: Top-level folders of a dataset that are not classes.
NOT_CLASSES = ("review",)


@dataclass(frozen=True)
class Photo:
    """One photo of a dataset.

    Attributes:
        path: absolute path.
        rel: path relative to the dataset folder (``CLASS/name.jpg``, ``/`` separated).
        label: its class (the folder it is in, relative to the dataset).
        sha256: SHA-256 of its bytes.
    """

    path: str
    rel: str
    label: str
    sha256: str

    @property
    def unit(self) -> float:
        """The photo's hash as a number in [0, 1): what rule 1 of the split compares."""
        return hash_unit(self.sha256)


def hash_unit(sha256: str) -> float:
    """The first 16 hex digits of a SHA-256 as a number in [0, 1)."""
    return int(sha256[:16], 16) / float(1 << 64)


def _is_image(path: str, name: str) -> bool:
    from faceforge.sources import IMAGE_SUFFIXES, media_kind

    suffix = os.path.splitext(name)[1].lower()
    if suffix:
        return suffix in IMAGE_SUFFIXES
    try:
        return media_kind(path) == "image"  # a file without an extension: sniffed, as training does
    except Exception:  # noqa: BLE001 -- an unreadable file is not an image of the dataset
        return False



def class_photos(dataset: str | os.PathLike) -> list[Photo]:
    """Every photo of a class-folder dataset, sorted by relative path, with its SHA-256.

    Args:
        dataset: the dataset folder.

    Returns:
        The photos (possibly empty: the caller decides whether that is an error).

    Raises:
        DatasetError: ``dataset`` is not a folder.
    """
    root = Path(dataset)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder. Pass a folder with one sub-folder of photos per "
                           f"class (DATASET/CLASS/photo.jpg), e.g. the folder `faceforge ingest --into` fills.")
    root = Path(os.path.abspath(root))
    out: list[Photo] = []
    for here, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(here, root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (rel_dir == "." and d in NOT_CLASSES))
        if rel_dir == ".":
            continue  # images directly in the dataset have no class
        label = rel_dir.replace(os.sep, "/")
        for name in sorted(files):
            path = os.path.join(here, name)
            if name.startswith(".") or not os.path.isfile(path) or not _is_image(path, name):
                continue
            try:
                sha = sha256_file(path)
            except OSError:
                continue  # gone or unreadable since the walk: not a photo of the dataset
            out.append(Photo(path, f"{label}/{name}", label, sha))
    return sorted(out, key=lambda p: p.rel)


def fixed_split(photos: Sequence[Photo], fraction: float = VAL_FRACTION, *, trained: Iterable[str] = (),
                min_class: int = MIN_CLASS_FOR_VALIDATION) -> tuple[list[Photo], list[Photo]]:
    """``(training photos, validation photos)`` by the rules of this module.

    Args:
        photos: the dataset's photos (:func:`class_photos`).
        fraction: rule 1's share, in [0, 0.9).
        trained: SHA-256s of the photos that trained an earlier version (never moved into validation).
        min_class: rule 2's class size.

    Raises:
        ParameterError: ``fraction`` outside [0, 0.9).
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= float(fraction) < 0.9:
        raise ParameterError(f"the validation fraction must lie in [0, 0.9), got {fraction!r}; 0.2 (a fifth of the "
                             f"photos) is the default.")
    done = set(trained)
    val = {p.sha256 for p in photos if p.unit < fraction and p.sha256 not in done}
    by_class: dict[str, list[Photo]] = {}
    for p in photos:
        by_class.setdefault(p.label, []).append(p)
    for members in by_class.values():
        if len(members) >= min_class and not any(p.sha256 in val for p in members):
            fresh = [p for p in members if p.sha256 not in done]
            if fresh:
                val.add(min(fresh, key=lambda p: (p.sha256, p.rel)).sha256)
    return [p for p in photos if p.sha256 not in val], [p for p in photos if p.sha256 in val]


def csv_bytes(photos: Sequence[Photo]) -> bytes:
    """A ``file,label,sha256`` CSV of ``photos`` (absolute paths), as training and evaluation read it."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "label", "sha256"])
    for p in photos:
        w.writerow([p.path, p.label, p.sha256])
    return buf.getvalue().encode()


def read_shas(csv_path: str | os.PathLike) -> set[str]:
    """The ``sha256`` column of a CSV :func:`csv_bytes` wrote (empty when the file is missing)."""
    try:
        with open(csv_path, newline="") as f:
            return {row["sha256"] for row in csv.DictReader(f) if row.get("sha256")}
    except (OSError, KeyError, csv.Error):
        return set()


def newest_run(dataset: str | os.PathLike) -> str | None:
    """The id of the newest ingest run of ``dataset`` (``.faceforge/runs/<id>.json``), or None."""
    runs = Path(dataset) / ".faceforge" / "runs"
    try:
        ids = sorted(p.stem for p in runs.glob("*.json") if not p.name.startswith("."))
    except OSError:
        return None
    return ids[-1] if ids else None


def dataset_state(dataset: str | os.PathLike, photos: Sequence[Photo]) -> dict:
    """What a version saw: photos per class, the total, a hash of the sorted ``(path, sha256)`` list
    and the newest ingest run."""
    listing = json.dumps(sorted((p.rel, p.sha256) for p in photos), separators=(",", ":")).encode()
    return {"dataset": str(Path(dataset).resolve()), "classes": dict(sorted(Counter(p.label for p in photos).items())),
            "photos": len(photos), "files_sha256": hashlib.sha256(listing).hexdigest(),
            "ingest_run": newest_run(dataset)}


__all__ = ["MIN_CLASS_FOR_VALIDATION", "NOT_CLASSES", "VAL_FRACTION", "Photo", "class_photos", "csv_bytes",
           "dataset_state", "fixed_split", "hash_unit", "newest_run", "read_shas"]
