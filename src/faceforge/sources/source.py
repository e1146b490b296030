"""One way in for every input: :func:`open_source` turns what the user names into a :class:`Source`.

A source yields :class:`~faceforge.sources.frame.Frame`\\ s in order. Files, folders (recursive,
sorted), globs and archives are listed once when opened, with the rules of
:mod:`faceforge.sources.walk`; still images are decoded lazily (by whoever reads
``frame.image``: a batch worker, or the live capture thread); video frames are decoded as they
are read. Inputs that cannot be used are recorded in :attr:`Source.skipped` with their reason
instead of stopping the iteration. Webcams and streams are *live*: a consumer that is slower than
the camera should drop frames rather than fall behind (see
:class:`faceforge.live.source.CaptureThread`).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from faceforge.errors import FaceforgeError, ParameterError, SourceError
from faceforge.sources.frame import Frame, Skipped
from faceforge.sources.image import IMAGE_SUFFIXES
from faceforge.sources.video import frame_count, is_url, is_webcam, iter_video
from faceforge.sources.walk import SOURCE_HELP, Entry, is_glob, walk

#: ``Source.kind`` values.
KINDS = ("image", "folder", "glob", "archive", "video", "files", "webcam", "stream")


class Source:
    """Frames from one input (or a list of files), in order.

    Attributes:
        name: what the user named (a path, URL, device or ``"<array>"``).
        kind: one of :data:`KINDS`.
        live: True for webcams and streams: frames come at the camera's pace, so a slow consumer
            should drop frames rather than fall behind.

    Iterate for frames (still images not yet decoded); :meth:`frames` with ``decode=True``
    decodes them and records the unreadable ones in :attr:`skipped`.
    """

    def __init__(self, name: str, kind: str, *, live: bool = False) -> None:
        self.name = name
        self.kind = kind
        self.live = live
        self._listed: list[Skipped] = []  # found when the source was opened
        self._found: list[Skipped] = []   # found while reading (reset by each pass)

    @property
    def skipped(self) -> list[Skipped]:
        """Inputs left out, each with its reason: when listing, and during the last pass."""
        return self._listed + self._found

    def _skip(self, source: str, reason: str, kind: str) -> None:
        self._found.append(Skipped(source, reason, kind))

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def frames(self, decode: bool = False) -> Generator[Frame, None, None]:
        """Iterate over the frames; with ``decode=True`` each still image is decoded first.

        Args:
            decode: decode still images here; one that does not decode is recorded in
                :attr:`skipped` (kind ``"unreadable"``) and left out.

        Yields:
            :class:`Frame` in source order.
        """
        it = iter(self)
        try:
            for f in it:
                if decode and not f.decoded:
                    try:
                        f.load()
                    except FaceforgeError as e:
                        self._skip(f.source, str(e), "unreadable")
                        continue
                yield f
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    def length_hint(self) -> int | None:
        """Approximate number of frames (video counts from their headers), or None for live sources."""
        return None

    def __length_hint__(self) -> int:
        return self.length_hint() or 0

    @property
    def paths(self) -> list[str]:
        """The files this source reads (empty for webcams, streams and in-memory images)."""
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, kind={self.kind!r}, live={self.live})"


class FileSource(Source):
    """Still images and video files, listed when opened (see :func:`open_source`).

    Args:
        entries: the media, in order.
        name: what the user named.
        kind: ``"image"``, ``"folder"``, ``"glob"``, ``"archive"``, ``"video"`` or ``"files"``.
        every: keep every n-th frame of videos.
        skipped: inputs left out while listing.
    """

    def __init__(self, entries: list[Entry], name: str, kind: str, *, every: int = 1,
                 skipped: Iterable[Skipped] = ()) -> None:
        super().__init__(name, kind)
        if every < 1:
            raise ParameterError(f"every must be >= 1 (keep every n-th video frame), got {every}")
        self.entries = list(entries)
        self.every = int(every)
        self._listed = list(skipped)
        self._length: int | None = None

    def __iter__(self) -> Iterator[Frame]:
        self._found = []
        pos = 0
        for e in self.entries:
            if e.kind == "video":
                video = iter_video(e.path, every=self.every, name=e.name)
                try:
                    for f in video:
                        f.position = pos
                        pos += 1
                        yield f
                except FaceforgeError as err:
                    self._skip(e.path, str(err), "unreadable")
                finally:
                    video.close()  # release the capture now, also when the reader stops early
            else:
                yield Frame(e.data, e.path or e.name, name=e.name, position=pos)
                pos += 1

    def length_hint(self) -> int:
        if self._length is None:
            self._length = sum(frame_count(e.path, self.every) if e.kind == "video" else 1 for e in self.entries)
        return self._length

    @property
    def paths(self) -> list[str]:
        return [e.path for e in self.entries if e.path]


class CaptureSource(Source):
    """A webcam (device index) or a stream URL read with OpenCV; live.

    Args:
        device: the webcam index or the URL.
        every: keep every n-th frame.
    """

    def __init__(self, device: int | str, *, every: int = 1) -> None:
        super().__init__(str(device), "webcam" if isinstance(device, int) else "stream", live=True)
        if every < 1:
            raise ParameterError(f"every must be >= 1 (keep every n-th frame), got {every}")
        self.device = device
        self.every = int(every)

    def __iter__(self) -> Iterator[Frame]:
        self._found = []
        for pos, f in enumerate(iter_video(self.device, every=self.every)):
            f.position = pos
            yield f


def _memory_entry(obj: Any) -> Entry | None:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return Entry("", "<bytes>", "image", bytes(obj))
    if isinstance(obj, np.ndarray) or (hasattr(obj, "mode") and hasattr(obj, "size")):
        from faceforge.sources.image import to_rgb_uint8

        return Entry("", "<array>", "image", to_rgb_uint8(obj, "<array>"))
    return None


def open_source(obj: Any, *, every: int = 1, videos: bool = True, missing: str = "raise") -> Source:
    """Open anything faceforge reads as a :class:`Source` of frames.

    Args:
        obj: a path to an image, folder (walked recursively, sorted), zip/tar archive or video;
            a glob such as ``"photos/**/*.jpg"``; a list of such paths; encoded image bytes; an
            image array or PIL image; a webcam index (``0``); or a stream URL (``rtsp://...``,
            ``http://...``). A :class:`Source` is returned as it is.
        every: keep every n-th frame of videos, webcams and streams.
        videos: read video files found in folders, globs and lists (False: skip them).
        missing: ``"raise"`` when a named path does not exist, or ``"skip"`` to record it in
            :attr:`Source.skipped` (kind ``"missing"``).

    Returns:
        The source; files are listed now, nothing is decoded yet and no device is opened.

    Raises:
        SourceError: a path does not exist, nothing usable was found, or an archive is unsafe.
        ParameterError: a bad ``every`` / ``missing``, or a webcam or URL inside a list.

    Example:
        >>> from skimage import data
        >>> src = open_source(data.astronaut())
        >>> [f.image.shape for f in src]
        [(512, 512, 3)]
    """
    if isinstance(obj, Source):
        return obj
    if isinstance(obj, bool):
        raise ParameterError(f"expected a source ({SOURCE_HELP}), got {obj!r}")
    if isinstance(obj, int) or (isinstance(obj, str) and is_webcam(obj) and not Path(obj).exists()):
        return CaptureSource(int(obj), every=every)
    if isinstance(obj, str) and is_url(obj):
        return CaptureSource(obj, every=every)
    mem = _memory_entry(obj)
    if mem is not None:
        return FileSource([mem], mem.name, "image")
    if isinstance(obj, (str, os.PathLike)):
        items, name = [obj], str(obj)
        p = Path(obj)
        from faceforge.sources.archive import is_archive

        kind = ("folder" if p.is_dir() else "archive" if is_archive(p) else
                "glob" if not p.exists() and is_glob(name) else "video-or-image")
    elif isinstance(obj, Iterable):
        items, kind = list(obj), "files"
        name = ", ".join(map(str, items[:3])) + (f" and {len(items) - 3} more" if len(items) > 3 else "")
    else:
        raise ParameterError(f"expected a source ({SOURCE_HELP}), got a {type(obj).__name__}")
    entries: list[Entry] = []
    skipped: list[Skipped] = []
    for i, it in enumerate(items):
        if isinstance(it, (int, Source)) or (isinstance(it, str) and is_url(it)):
            raise ParameterError(f"a list of sources can hold images, folders, globs, archives and videos; "
                                 f"open the webcam or stream {it!r} on its own.")
        m = _memory_entry(it)
        if m is not None:
            entries.append(Entry("", f"<image {i}>", "image", m.data))
            continue
        e, s = walk([it], videos=videos, missing=missing)
        entries += e
        skipped += s
    if kind == "video-or-image":
        kind = "video" if len(entries) == 1 and entries[0].kind == "video" else "image"
    if not entries and not any(s.kind == "missing" for s in skipped):
        raise SourceError(f"No images or videos found in {name or '(nothing)'}: no images "
                          f"({', '.join(sorted(IMAGE_SUFFIXES))}) and no videos. Check the path, the folder "
                          f"or the glob pattern.")
    return FileSource(entries, name, kind, every=every, skipped=skipped)


__all__ = ["KINDS", "CaptureSource", "FileSource", "Source", "open_source"]
