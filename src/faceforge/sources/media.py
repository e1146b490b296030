"""Turning what the user names (files, folders, videos, webcams, streams) into frames."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from faceforge.errors import SourceError
from faceforge.sources.archive import extracted, is_archive
from faceforge.sources.image import IMAGE_SUFFIXES, VIDEO_SUFFIXES, load_image, looks_like_image


@dataclass(frozen=True)
class Frame:
    """One image taken from a source.

    Attributes:
        image: ``(H, W, 3) uint8`` RGB.
        source: the file, URL or device it came from.
        index: frame number within a video (0 for still images).
        timestamp: seconds from the start of a video (0.0 for stills).
    """

    image: np.ndarray
    source: str
    index: int = 0
    timestamp: float = 0.0


def media_kind(path: str | os.PathLike) -> str:
    """``"image"``, ``"video"`` or ``"other"`` by suffix (files without one are sniffed)."""
    p = Path(path)
    suf = p.suffix.lower()
    if suf in VIDEO_SUFFIXES:
        return "video"
    if suf in IMAGE_SUFFIXES or (not suf and looks_like_image(p)):
        return "image"
    return "other"


def expand_paths(paths: Iterable[str | os.PathLike], videos: bool = True,
                 skipped: list[tuple[str, str]] | None = None) -> list[Path]:
    """Expand files, folders (recursively, sorted) and archives into media files.

    Zip and tar archives are extracted safely, once, into the faceforge cache (see
    :mod:`faceforge.sources.archive`); their files are listed from there.

    Args:
        paths: files and folders.
        videos: include video files.
        skipped: if given, receives ``(path, reason)`` for files that are not media.

    Raises:
        SourceError: a path does not exist, or nothing usable was found at all.
    """
    out: list[Path] = []
    named = list(paths)
    for raw in named:
        p = Path(raw)
        if not p.exists():
            raise SourceError(f"{p}: no such file or folder. Check the path (it is relative to {Path.cwd()}).")
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if name.startswith("."):
                        continue
                    f = Path(root) / name
                    kind = media_kind(f)
                    if kind == "image" or (kind == "video" and videos):
                        out.append(f)
                    elif skipped is not None:
                        skipped.append((str(f), "not an image or video"))
        elif is_archive(p):
            out.extend(expand_paths([extracted(p)], videos=videos, skipped=skipped))
        else:
            kind = media_kind(p)
            if kind == "other" and skipped is not None:
                # Named explicitly: let the reader give the precise error later.
                out.append(p)
            elif kind != "video" or videos:
                out.append(p)
    if not out:
        raise SourceError(
            f"No images{' or videos' if videos else ''} found in {', '.join(map(str, named)) or '(nothing)'}. "
            f"Supported images: {', '.join(sorted(IMAGE_SUFFIXES))}."
        )
    return out


def iter_video(source: str | int, every: int = 1, max_frames: int | None = None) -> Iterator[Frame]:
    """Read frames from a video file, webcam index or stream URL with OpenCV.

    Args:
        source: a path, an int webcam index, or an ``rtsp://`` / ``http://`` URL.
        every: keep every n-th frame.
        max_frames: stop after this many kept frames.

    Raises:
        SourceError: the source cannot be opened.
    """
    import cv2

    if every < 1:
        raise SourceError(f"every must be >= 1, got {every}")
    if isinstance(source, (str, os.PathLike)) and not str(source).isdigit() and "://" not in str(source):
        if not Path(source).is_file():
            raise SourceError(f"{source}: no such video file. Check the path.")
    cap = cv2.VideoCapture(int(source) if str(source).isdigit() else str(source))
    if not cap.isOpened():
        raise SourceError(
            f"{source}: OpenCV could not open this video/stream. Check the path or URL, "
            f"or convert the file to MP4 (H.264)."
        )
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    idx = kept = 0
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            if idx % every == 0:
                ts = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 if fps else 0.0
                yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), str(source), idx, ts)
                kept += 1
                if max_frames is not None and kept >= max_frames:
                    break
            idx += 1
    finally:
        cap.release()


def iter_frames(paths: Iterable[str | os.PathLike], every: int = 1,
                errors: list[tuple[str, str]] | None = None) -> Iterator[Frame]:
    """Yield frames from images and videos under ``paths``.

    Unreadable files are skipped and reported in ``errors`` as ``(path, message)``; when
    ``errors`` is None they raise. Files are only read, never modified.
    """
    from faceforge.errors import FaceforgeError

    for p in expand_paths(paths, skipped=errors):
        try:
            if media_kind(p) == "video":
                yield from iter_video(str(p), every=every)
            else:
                yield Frame(load_image(p), str(p))
        except FaceforgeError as e:
            if errors is None:
                raise
            errors.append((str(p), str(e)))
