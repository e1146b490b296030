"""Live frame sources: webcams, streams, video files and image sequences, read on a capture thread.

Built on :func:`faceforge.sources.open_source`, so ``faceforge live -s photos/`` reads a folder
exactly as ``faceforge detect photos/`` does (recursively, sorted, the same files left out). The
capture thread itself is :class:`faceforge.sources.capture.CaptureThread`: a live source
(webcam, ``rtsp://`` / ``http://`` stream) keeps only the newest frame, so processing never
falls behind; a file source is read in order without dropping, unless ``realtime=True``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from faceforge.errors import SourceError
from faceforge.sources import Frame, Source, media_kind, open_source
from faceforge.sources.capture import CaptureThread as _Capture
from faceforge.sources.capture import open_frames
from faceforge.sources.walk import SOURCE_HELP

#: ``Source.kind`` -> the kind :func:`describe_source` has always reported.
_KINDS = {"webcam": "webcam", "stream": "stream", "video": "video"}


def describe_source(source: Source | str | int | os.PathLike) -> tuple[str, bool]:
    """``(kind, live)``: kind is ``"webcam"``, ``"stream"``, ``"video"`` or ``"images"``.

    Args:
        source: anything :func:`~faceforge.sources.open_source` takes.

    Returns:
        The kind (``"images"`` for stills, folders, globs, archives and lists) and whether the
        source is live (webcams and streams).

    Raises:
        SourceError: no such file or folder, nothing usable in it, or a single file that is
            neither an image nor a video.
    """
    src = open_source(source)
    if src.kind == "image" and src.paths and media_kind(src.paths[0]) == "other":
        raise SourceError(f"{src.name}: not a video or image this tool can read. Give {SOURCE_HELP}.")
    return _KINDS.get(src.kind, "images"), src.live


class CaptureThread(_Capture):
    """Reads a source on a background thread (see :class:`faceforge.sources.capture.CaptureThread`).

    Args:
        source: webcam index, stream URL, video file, image folder, glob or archive.
        drop: keep only the newest frame (default: True for webcams and streams).
        realtime: for files, pace reading at the video's timestamps (as a camera would).
        buffer: frames queued when not dropping.

    Attributes:
        kind: as :func:`describe_source` says (``"webcam"``, ``"stream"``, ``"video"``, ``"images"``).

    Frames of an image sequence are numbered by their place in it (``index`` 0, 1, 2, ...), as
    a tracker needs; video, webcam and stream frames keep their frame numbers.

    Raises:
        SourceError: the source cannot be opened or gives no frame.
    """

    def __init__(self, source: Source | str | int | os.PathLike, drop: bool | None = None,
                 realtime: bool = False, buffer: int = 4) -> None:
        kind, _ = describe_source(source)
        super().__init__(source, drop=drop, realtime=realtime, buffer=buffer)
        self.kind = kind

    def __iter__(self) -> Iterator[Frame]:
        for f in super().__iter__():
            yield f.replace(index=f.position) if self.kind == "images" and f.index != f.position else f


__all__ = ["CaptureThread", "describe_source", "open_frames"]
