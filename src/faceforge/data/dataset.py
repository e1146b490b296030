"""Datasets from a folder of class sub-folders or a CSV of file,label rows.

Ingestion is cheap: it walks folders (or reads the CSV), sniffs files without an extension,
and stats every image, but decodes nothing. Unreadable images are found, reported and skipped
later by :func:`faceforge.data.embed_dataset`, whose workers decode every image anyway.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from faceforge.errors import DatasetError, SourceError
from faceforge.sources import IMAGE_SUFFIXES, expand_paths, media_kind

log = logging.getLogger(__name__)

TASKS = ("auto", "classification", "regression")
#: Suffixes read as tables by :func:`load_dataset`.
TABLE_SUFFIXES = {".csv", ".tsv", ".txt"}


@dataclass(frozen=True)
class Sample:
    """One labelled image.

    Attributes:
        path: absolute path of the image (never modified).
        label: class name (classification) or a number (regression).
    """

    path: str
    label: str | float


@dataclass(frozen=True)
class Problem:
    """Something a data check noticed.

    Attributes:
        kind: ``"unreadable"``, ``"missing"``, ``"not_image"``, ``"root_image"``,
            ``"repeated_row"``, ``"no_label"``, ``"few_images"``, ``"duplicate"``,
            ``"near_duplicate"``, ``"no_face"``, ``"several_faces"``, ``"failed"``, ...
        path: the file (or class folder, or CSV) concerned.
        message: a sentence naming the file and what to do.
        severity: ``"info"``, ``"warning"`` or ``"error"``.
    """

    kind: str
    path: str
    message: str
    severity: str = "warning"

    def __str__(self) -> str:
        return f"[{self.severity}] {self.message}"


@dataclass
class Dataset:
    """Labelled images ready to embed.

    Attributes:
        samples: one per usable image, in a stable order (class folders sorted, or CSV order).
        task: ``"classification"`` or ``"regression"``.
        classes: sorted class names (``[]`` for regression). Names that hold numbers sort
            numerically (``s2`` before ``s10``).
        root: the folder or CSV the dataset came from (absolute).
        problems: what ingestion noticed (files skipped, small classes, ...).
    """

    samples: list[Sample]
    task: str
    classes: list[str]
    root: str
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def paths(self) -> list[str]:
        """The image path of every sample."""
        return [s.path for s in self.samples]

    def counts(self) -> dict[str, int]:
        """Images per class (classification), in :attr:`classes` order."""
        c = Counter(str(s.label) for s in self.samples)
        return {k: c.get(k, 0) for k in self.classes}


def natural_key(text: str) -> tuple:
    """Sort key that orders embedded numbers numerically (``s2`` < ``s10``)."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", text) if t)


def _as_number(text: str) -> float | None:
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def load_dataset(source: str | os.PathLike, *, task: str = "auto", path_column: str | int | None = None,
                 label_column: str | int | None = None, image_root: str | os.PathLike | None = None,
                 min_per_class: int = 2, warn_per_class: int = 20) -> Dataset:
    """Read a labelled image set from a folder of class sub-folders or from a CSV.

    Folder layout: every sub-folder holding images is a class (nested folders give class
    names such as ``"adults/anna"``); hidden files and folders are skipped; images directly
    in the root are ignored with a warning. CSV layout: one row per image with a file path
    and a label; the first row is a header unless its first cell names an existing file.

    Args:
        source: the folder, a ``.csv`` / ``.tsv`` file, or a zip / tar archive of class folders
            (extracted safely, once, into the faceforge cache).
        task: ``"auto"`` (regression when every label is a number and there are more than
            10 distinct values, else classification), ``"classification"`` or ``"regression"``.
        path_column: CSV column (header name or 0-based index) holding the image paths.
            Default: the first column.
        label_column: CSV column holding the labels. Default: the column after the path column.
        image_root: folder that relative CSV paths resolve against (relative to the current
            folder, or else to the CSV's folder). Default: the CSV's folder.
        min_per_class: a class with fewer usable images is refused (DatasetError).
        warn_per_class: a class with fewer usable images gets a ``"few_images"`` warning.

    Returns:
        :class:`Dataset` with one :class:`Sample` per usable image and the problems noticed.

    Raises:
        DatasetError: the path does not exist, nothing usable was found, a class has fewer
            than ``min_per_class`` images, or the labels do not fit ``task``. The message
            says what to do.

    Example:
        >>> ds = load_dataset("photos/")            # photos/anna/*.jpg, photos/ben/*.jpg  # doctest: +SKIP
        >>> ds.classes, len(ds.samples)            # doctest: +SKIP
        (['anna', 'ben'], 48)
    """
    if task not in TASKS:
        raise DatasetError(f"task must be one of {', '.join(map(repr, TASKS))}, got {task!r}")
    if min_per_class < 1:
        raise DatasetError(f"min_per_class must be at least 1, got {min_per_class}")
    src = Path(source)
    if not src.exists():
        raise DatasetError(
            f"{src}: no such folder or CSV file (relative paths start at {Path.cwd()}). "
            f"Pass a folder with one sub-folder of images per class, or a CSV of file,label rows."
        )
    problems: list[Problem] = []
    from faceforge.sources.archive import extracted, is_archive

    if is_archive(src):  # a zip / tar of class folders: extracted safely, once, into the cache
        from faceforge.errors import SourceError

        try:
            src = extracted(src)
        except SourceError as e:
            raise DatasetError(str(e)) from e
        subs = [d for d in src.iterdir() if d.is_dir() and not d.name.startswith(".")]
        files = [f for f in src.iterdir() if f.is_file()]
        if len(subs) == 1 and not files:  # archives usually hold one top folder (lfw/, faces/)
            src = subs[0]
    if src.is_dir():
        if image_root is not None or path_column is not None or label_column is not None:
            raise DatasetError(
                f"{src}: path_column, label_column and image_root apply to CSV files only; "
                f"for a folder the class is the sub-folder name. Drop those arguments or pass the CSV."
            )
        rows, from_csv = _scan_folder(src, problems), False
    elif src.suffix.lower() in TABLE_SUFFIXES:
        rows, from_csv = _read_table(src, path_column, label_column, image_root, problems), True
    elif media_kind(src) == "image":
        raise DatasetError(
            f"{src}: is a single image. Pass the folder that holds one sub-folder of images per "
            f"class, or a CSV of file,label rows."
        )
    else:
        raise DatasetError(
            f"{src}: not a folder or a CSV file (expected a folder of class sub-folders, or a file "
            f"ending in {', '.join(sorted(TABLE_SUFFIXES))})."
        )
    root = os.path.abspath(src)
    chosen = _choose_task(task, [lab for _, lab in rows], root)
    if chosen == "regression":
        samples = [Sample(p, float(_as_number(lab))) for p, lab in rows]  # type: ignore[arg-type]
        if len(samples) < 2:
            raise DatasetError(f"{root}: only {len(samples)} usable image(s); regression needs at least 2. Add images.")
        return Dataset(samples, "regression", [], root, problems)

    samples = [Sample(p, lab) for p, lab in rows]
    counts = Counter(lab for _, lab in rows)
    classes = sorted(counts, key=natural_key)
    where = (lambda c: f"rows labelled {c!r} in {root}") if from_csv else (lambda c: os.path.join(root, c))
    too_few = [c for c in classes if counts[c] < min_per_class]
    if too_few:
        lines = "; ".join(f"class {c!r} has {counts[c]} image{'s' if counts[c] != 1 else ''}" for c in too_few[:10])
        more = f" (and {len(too_few) - 10} more classes)" if len(too_few) > 10 else ""
        fix = ("add photos to those folders, or remove the folders" if not from_csv
               else "add rows with more photos of those classes, or remove their rows")
        raise DatasetError(
            f"{root}: {lines}{more}; each class needs at least {min_per_class} usable images "
            f"({where(too_few[0])}). To fix: {fix}. Around {warn_per_class} or more per class gives good results."
        )
    if len(classes) < 2:
        raise DatasetError(
            f"{root}: only one class ({classes[0]!r}, {counts[classes[0]]} images); a classifier needs "
            "at least two. "
            f"{'Add a sub-folder of images for each other class.' if not from_csv else 'Add rows with other labels.'}"
        )
    for c in classes:
        if counts[c] < warn_per_class:
            problems.append(Problem(
                "few_images", root if from_csv else os.path.join(root, c),
                f"class {c!r} has only {counts[c]} images; accuracy usually improves with {warn_per_class} "
                f"or more per class. Add photos of {c!r} if you can.", "warning"))
    return Dataset(samples, "classification", classes, root, problems)


def _choose_task(task: str, labels: list[str], root: str) -> str:
    numbers = [_as_number(lab) for lab in labels]
    if task == "regression":
        bad = [lab for lab, v in zip(labels, numbers) if v is None]
        if bad:
            raise DatasetError(
                f"{root}: task='regression' needs numeric labels, but {len(bad)} are not numbers "
                f"(e.g. {bad[0]!r}). Fix those labels, or use task='classification'."
            )
        return "regression"
    if task == "classification":
        return "classification"
    if labels and all(v is not None for v in numbers) and len(set(numbers)) > 10:
        return "regression"
    return "classification"


# -- folders -------------------------------------------------------------------------------

#: Files beside the images that are expected (notes, label lists) and skipped without a word.
_QUIET_SUFFIXES = {".md", ".txt", ".csv", ".tsv", ".json", ".xml", ".db", ".ini", ".yaml", ".yml"}
#: Skipped files listed one by one; beyond this, one summary line.
_MAX_LISTED = 20


def _scan_folder(root: Path, problems: list[Problem]) -> list[tuple[str, str]]:
    skipped: list[tuple[str, str]] = []
    root = Path(os.path.abspath(root))
    try:
        files = expand_paths([root], videos=False, skipped=skipped)  # absolute, since root is
    except SourceError:
        files = []
    others = [p for p, _why in skipped if Path(p).suffix.lower() not in _QUIET_SUFFIXES
              and not Path(p).name.upper().startswith("README")]  # notes beside images are expected
    for p in others[:_MAX_LISTED]:
        problems.append(Problem("not_image", p, f"{p}: not an image faceforge reads; skipped.", "info"))
    if len(others) > _MAX_LISTED:
        problems.append(Problem("not_image", str(root), f"{root}: {len(others) - _MAX_LISTED} more files that are "
                                                        f"not images were skipped.", "info"))
    rows: list[tuple[str, str]] = []
    in_root: list[str] = []
    prefix = len(str(root)) + 1
    queue = "review" if (root / ".faceforge" / "ledger.db").is_file() else None  # ingest's review queue: no class
    for f in map(str, files):  # string operations: pathlib costs seconds on 30,000 files
        rel = os.path.dirname(f)[prefix:]
        if queue and rel.split(os.sep)[0] == queue:
            continue
        if not rel:
            in_root.append(f)
            continue
        rows.append(_check_file(f, rel.replace(os.sep, "/"), problems))
    rows = [r for r in rows if r[0]]
    if not rows:
        if in_root:
            raise DatasetError(
                f"{root}: holds {len(in_root)} images but no class sub-folders. Put each class's "
                f"images in its own sub-folder ({root}/<class name>/...), or pass a CSV of file,label rows."
            )
        raise DatasetError(
            f"{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))} and files without "
            f"an extension, in sub-folders). Pass the folder that holds one sub-folder of images per class."
        )
    for p in in_root[:_MAX_LISTED]:
        problems.append(Problem(
            "root_image", p, f"{p}: images directly in the dataset folder have no class and are ignored; "
            f"move it into a class sub-folder.", "warning"))
    if len(in_root) > _MAX_LISTED:
        problems.append(Problem("root_image", str(root), f"{root}: {len(in_root) - _MAX_LISTED} more images directly "
                                                         f"in the dataset folder were ignored.", "warning"))
    return rows


def _check_file(path: str, label: str, problems: list[Problem]) -> tuple[str, str]:
    """``(path, label)``, or ``("", label)`` with a problem when the file is empty or gone."""
    try:
        size = os.stat(path).st_size
    except OSError as e:
        problems.append(Problem("missing", path, f"{path}: cannot be opened ({e.strerror}); skipped. "
                                                  f"Check the path and its permissions.", "warning"))
        return "", label
    if size == 0:
        problems.append(Problem("unreadable", path, f"{path}: the file is empty (0 bytes); skipped. "
                                                     f"Re-export or remove it.", "warning"))
        return "", label
    return path, label


# -- tables --------------------------------------------------------------------------------

def _read_rows(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        text = path.read_text(encoding="latin-1")
    except OSError as e:
        raise DatasetError(f"{path}: cannot be read ({e.strerror}). Check the path and its permissions.") from e
    if path.suffix.lower() == ".tsv":
        delim = "\t"
    else:
        first = next((ln for ln in text.splitlines() if ln.strip()), "")
        delim = max(",;\t", key=first.count) if first else ","
        if first.count(delim) == 0:
            delim = ","
    return [[c.strip() for c in r] for r in csv.reader(text.splitlines(), delimiter=delim) if any(c.strip() for c in r)]


def _column(header: list[str], col: str | int | None, default: int, what: str, path: Path) -> int:
    if col is None:
        return default
    if isinstance(col, int):
        if not 0 <= col < len(header):
            raise DatasetError(f"{path}: {what} {col} is out of range; the table has {len(header)} columns.")
        return col
    if col in header:
        return header.index(col)
    low = [h.lower() for h in header]
    if col.lower() in low:
        return low.index(col.lower())
    raise DatasetError(
        f"{path}: no column named {col!r} (columns: {', '.join(header)}). Pass {what}= one of those names."
    )


def _resolve_root(csv_path: Path, image_root: str | os.PathLike | None) -> Path:
    if image_root is None:
        return csv_path.parent
    r = Path(image_root)
    if r.is_absolute() or r.is_dir():
        if not r.is_dir():
            raise DatasetError(f"image_root {r}: no such folder. Pass the folder that holds the images.")
        return r
    beside = csv_path.parent / r
    if beside.is_dir():
        return beside
    raise DatasetError(
        f"image_root {r}: no such folder (looked in {Path.cwd()} and beside the CSV in {csv_path.parent}). "
        f"Pass the folder that holds the images."
    )


def _read_table(path: Path, path_column: str | int | None, label_column: str | int | None,
                image_root: str | os.PathLike | None, problems: list[Problem]) -> list[tuple[str, str]]:
    table = _read_rows(path)
    if not table:
        raise DatasetError(f"{path}: the table is empty. Write one row per image: file,label.")
    base = _resolve_root(path, image_root)
    first = table[0]
    named = isinstance(path_column, str) or isinstance(label_column, str)
    has_header = named or not (first and (base / first[0]).is_file())
    header = first if has_header else [str(i) for i in range(len(first))]
    body = table[1:] if has_header else table
    pi = _column(header, path_column, 0, "path_column", path)
    li = _column(header, label_column, 1 if pi == 0 else 0, "label_column", path)
    if li >= len(header) or li == pi:
        raise DatasetError(
            f"{path}: needs a path column and a label column, but found columns {header}. "
            f"Write rows as file,label or pass path_column= and label_column=."
        )
    rows: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    missing: list[str] = []
    line0 = 2 if has_header else 1
    for n, r in enumerate(body, start=line0):
        if len(r) <= max(pi, li) or not r[pi]:
            problems.append(Problem("no_label", str(path), f"{path} line {n}: no file or label; row skipped.",
                                    "warning"))
            continue
        rel, label = r[pi], r[li]
        p = os.path.abspath(base / rel)
        if not label:
            problems.append(Problem("no_label", p, f"{p} ({path} line {n}): empty label; skipped. Fill in its label.",
                                    "warning"))
            continue
        if p in seen:
            sev, why = ("info", "again with the same label") if seen[p] == label else (
                "warning", f"labelled both {seen[p]!r} and {label!r}; kept {seen[p]!r}")
            problems.append(Problem("repeated_row", p, f"{p} ({path} line {n}): listed {why}; the repeat is "
                                                       f"ignored. Remove the extra row.", sev))
            continue
        if not os.path.isfile(p):
            missing.append(p)
            problems.append(Problem("missing", p, f"{p} ({path} line {n}): no such file; row skipped. Fix the "
                                                  "path or pass image_root= (the folder holding the images).",
                                    "warning"))
            continue
        if media_kind(p) != "image":
            problems.append(Problem("not_image", p, f"{p} ({path} line {n}): not an image faceforge reads "
                                                    f"(supported: {', '.join(sorted(IMAGE_SUFFIXES))}); skipped.",
                                    "warning"))
            continue
        seen[p] = label
        p, label = _check_file(p, label, problems)
        if p:
            rows.append((p, label))
    if not rows:
        hint = ""
        if missing:
            found = _find_elsewhere(base, Path(missing[0]).name)
            hint = (f" For example {missing[0]} does not exist" +
                    (f", but {found} does: pass image_root={str(found.parent)!r}." if found else
                     "; pass image_root= (the folder holding the images)."))
        raise DatasetError(f"{path}: no usable images among {len(body)} rows.{hint}")
    return rows


def _find_elsewhere(base: Path, name: str, depth: int = 2) -> Path | None:
    """Look for ``name`` in sub-folders of ``base`` (to suggest image_root)."""
    level: Iterable[Path] = [base]
    for _ in range(depth):
        nxt: list[Path] = []
        for d in level:
            try:
                subs = sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
            except OSError:
                continue
            for s in subs[:50]:
                if (s / name).is_file():
                    return s / name
            nxt.extend(subs[:50])
        level = nxt
    return None
