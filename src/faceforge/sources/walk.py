"""Listing the media files that paths, folders, globs and archives name: one set of rules for all.

Folders are walked recursively in sorted order; hidden files and folders (``.name``) are left
out; files are kept by suffix (files without a suffix are sniffed), and everything else is
recorded as skipped with its reason. A file named explicitly is always kept (its reader gives
the precise error if it is not an image). Archives are extracted once into the cache.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceforge.errors import ParameterError, SourceError
from faceforge.sources.archive import extracted, is_archive
from faceforge.sources.frame import Skipped
from faceforge.sources.image import IMAGE_SUFFIXES, VIDEO_SUFFIXES, looks_like_image

#: What a source can be, for error messages.
SOURCE_HELP = ("an image, a folder, a glob such as 'photos/*.jpg', a zip or tar archive, a video file, "
               "a webcam index (0) or a stream URL (rtsp://...)")


@dataclass(frozen=True)
class Entry:
    """One media file (or in-memory image) found by :func:`walk`.

    Attributes:
        path: the file ("" for an in-memory image).
        name: the name for outputs: the path inside its folder or archive, else as given.
        kind: ``"image"`` or ``"video"``.
        data: an in-memory image (array or encoded bytes), else None.
    """

    path: str
    name: str
    kind: str
    data: Any = None


def media_kind(path: str | os.PathLike) -> str:
    """``"image"``, ``"video"`` or ``"other"`` by suffix (files without one are sniffed)."""
    p = Path(path)
    suf = p.suffix.lower()
    if suf in VIDEO_SUFFIXES:
        return "video"
    if suf in IMAGE_SUFFIXES or (not suf and looks_like_image(p)):
        return "image"
    return "other"


def is_glob(text: str) -> bool:
    """True when ``text`` holds glob characters (``*``, ``?`` or ``[``)."""
    return any(ch in text for ch in "*?[")


def missing_error(path: str | os.PathLike) -> SourceError:
    """The error for a source that does not exist."""
    return SourceError(f"{path}: no such file or folder. Check the path (it is relative to {Path.cwd()}); "
                       f"a source is {SOURCE_HELP}.")


def walk(inputs: Iterable[str | os.PathLike], *, videos: bool = True,
         missing: str = "raise") -> tuple[list[Entry], list[Skipped]]:
    """The media files under ``inputs``, in order, and what was left out.

    Args:
        inputs: files, folders, globs and archives.
        videos: keep video files (False: record them as skipped).
        missing: ``"raise"`` for a path that does not exist, or ``"skip"`` to record it.

    Returns:
        ``(entries, skipped)``.

    Raises:
        SourceError: a path does not exist (with ``missing="raise"``), or an archive is unsafe
            or unreadable.
        ParameterError: ``missing`` is neither ``"raise"`` nor ``"skip"``.
    """
    if missing not in ("raise", "skip"):
        raise ParameterError(f"missing must be 'raise' or 'skip', got {missing!r}")
    entries: list[Entry] = []
    skipped: list[Skipped] = []
    for raw in inputs:
        text, p = str(raw), Path(raw)
        if p.is_dir():
            _folder(p, "", videos, entries, skipped)
        elif p.is_file():
            if is_archive(p):
                _folder(extracted(p), "", videos, entries, skipped)
            else:
                kind = media_kind(p)
                if kind == "video" and not videos:
                    skipped.append(Skipped(str(p), "a video; only images are read here", "unsupported"))
                else:  # named explicitly: the reader gives the precise error if it is no image
                    entries.append(Entry(str(p), str(p), "video" if kind == "video" else "image"))
        elif is_glob(text) and not p.exists():
            for m in sorted(glob.glob(text, recursive=True)):
                mp = Path(m)
                if mp.is_dir():
                    _folder(mp, m, videos, entries, skipped)
                elif is_archive(mp):
                    _folder(extracted(mp), m, videos, entries, skipped)
                else:
                    _file(mp, m, videos, entries, skipped)
        elif missing == "raise":
            raise missing_error(raw)
        else:
            skipped.append(Skipped(text, f"{text}: no such file or folder.", "missing"))
    return entries, skipped


def _file(f: Path, name: str, videos: bool, entries: list[Entry], skipped: list[Skipped]) -> None:
    kind = media_kind(f)
    if kind == "image" or (kind == "video" and videos):
        entries.append(Entry(str(f), name, kind))
    elif kind == "video":
        skipped.append(Skipped(str(f), "a video; only images are read here", "unsupported"))
    else:
        skipped.append(Skipped(str(f), "not an image or video", "unsupported"))


def _folder(root: Path, prefix: str, videos: bool, entries: list[Entry], skipped: list[Skipped]) -> None:
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            f = Path(here) / name
            rel = f.relative_to(root).as_posix()
            _file(f, f"{prefix}/{rel}" if prefix else rel, videos, entries, skipped)
