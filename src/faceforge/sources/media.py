"""The older listing helpers, kept as thin wrappers over :func:`faceforge.sources.open_source`.

New code opens a :class:`~faceforge.sources.source.Source` instead; these keep the
``(path, reason)`` pairs and the error messages callers rely on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from faceforge.errors import SourceError
from faceforge.sources.frame import Frame
from faceforge.sources.image import IMAGE_SUFFIXES
from faceforge.sources.source import open_source
from faceforge.sources.video import iter_video
from faceforge.sources.walk import media_kind, walk


def expand_paths(paths: Iterable[str | os.PathLike], videos: bool = True,
                 skipped: list[tuple[str, str]] | None = None) -> list[Path]:
    """Expand files, folders (recursively, sorted), globs and archives into media files.

    The rules are those of :mod:`faceforge.sources.walk` (the same as :func:`open_source`).

    Args:
        paths: files, folders, globs and archives.
        videos: include video files.
        skipped: if given, receives ``(path, reason)`` for files that are left out.

    Returns:
        The media files, in order.

    Raises:
        SourceError: a path does not exist, or nothing usable was found at all.
    """
    named = list(paths)
    entries, left = walk(named, videos=videos)
    if skipped is not None:
        skipped.extend((s.source, s.reason) for s in left)
    if not entries:
        raise SourceError(
            f"No images{' or videos' if videos else ''} found in {', '.join(map(str, named)) or '(nothing)'}. "
            f"Supported images: {', '.join(sorted(IMAGE_SUFFIXES))}."
        )
    return [Path(e.path) for e in entries]


def iter_frames(paths: Iterable[str | os.PathLike], every: int = 1,
                errors: list[tuple[str, str]] | None = None) -> Iterator[Frame]:
    """Yield decoded frames from images and videos under ``paths``.

    Unreadable files are skipped and reported in ``errors`` as ``(path, message)``; when
    ``errors`` is None they raise. Files are only read, never modified.

    Raises:
        SourceError / ImageError: a path does not exist, nothing usable was found, or (with
            ``errors=None``) a file is unreadable.
    """
    src = open_source(list(paths), every=every)
    if errors is None:
        for s in src.skipped:
            if s.kind == "unsupported":
                continue
            raise SourceError(s.reason)
        for f in src:
            yield f.load()
            if src.skipped[len(src._listed):]:  # a video that did not open
                raise SourceError(src.skipped[-1].reason)
        if src.skipped[len(src._listed):]:
            raise SourceError(src.skipped[-1].reason)
        return
    seen = 0
    for f in src.frames(decode=True):
        new = src.skipped[seen:]
        seen += len(new)
        errors.extend((s.source, s.reason) for s in new)
        yield f
    errors.extend((s.source, s.reason) for s in src.skipped[seen:])


__all__ = ["Frame", "expand_paths", "iter_frames", "iter_video", "media_kind"]
