"""Live frame sources: webcams, streams, video files and image sequences, read on a capture thread.

A live source (webcam, ``rtsp://`` / ``http://`` stream) must not fall behind: the capture thread
keeps only the newest frame and the processing loop takes whatever is newest when it is ready
(older frames are dropped and counted). A file source (video, image folder or glob) is read in
order without dropping, unless ``realtime=True`` asks to play it at its own speed.
"""

from __future__ import annotations

import glob
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from faceforge.errors import SourceError
from faceforge.sources.media import Frame, iter_video, media_kind

_END = object()


def describe_source(source: str | int | os.PathLike) -> tuple[str, bool]:
    """``(kind, live)``: kind is ``"webcam"``, ``"stream"``, ``"video"`` or ``"images"``."""
    s = str(source)
    if isinstance(source, int) or s.isdigit():
        return "webcam", True
    if "://" in s:
        return "stream", True
    p = Path(s)
    if p.is_dir() or any(ch in s for ch in "*?["):
        return "images", False
    if p.is_file():
        if media_kind(p) == "video":
            return "video", False
        if media_kind(p) == "image":
            return "images", False
        raise SourceError(f"{s}: not a video or image this tool can read. Give a video file, a folder of images, "
                          f"a glob such as 'frames/*.jpg', a webcam index or a stream URL.")
    raise SourceError(f"{s}: no such file or folder. Give a video file, a folder of images, a glob such as "
                      f"'frames/*.jpg', a webcam index (0) or a stream URL (rtsp://...).")


def _image_sequence(source: str) -> Iterator[Frame]:
    from faceforge.sources.image import load_image

    p = Path(source)
    files = sorted(f for f in p.iterdir() if f.is_file() and media_kind(f) == "image") if p.is_dir() \
        else sorted(Path(f) for f in glob.glob(source) if media_kind(f) == "image")
    if not files:
        raise SourceError(f"{source}: no images found. Check the folder or the glob pattern.")
    for i, f in enumerate(files):
        yield Frame(load_image(f), str(f), i, 0.0)


def open_frames(source: str | int | os.PathLike) -> Iterator[Frame]:
    """Frames of ``source`` in order (no thread). Raises :class:`SourceError` if it can't be opened."""
    kind, _ = describe_source(source)
    if kind == "images":
        it = _image_sequence(str(source))
    else:
        it = iter_video(int(source) if kind == "webcam" else str(source))
    first = next(it, None)  # open now, so a bad source fails here and not on the capture thread
    if first is None:
        raise SourceError(f"{source}: no frames could be read. Check that the file or stream is not empty.")

    def chain() -> Iterator[Frame]:
        yield first
        yield from it

    return chain()


class CaptureThread:
    """Reads a source on a background thread.

    Args:
        source: webcam index, stream URL, video file, image folder or glob.
        drop: keep only the newest frame (default: True for webcams and streams).
        realtime: for files, pace reading at the video's timestamps (as a camera would).
        buffer: frames queued when not dropping.

    Iterate to get :class:`~faceforge.sources.media.Frame`\\ s; :attr:`dropped` counts the
    frames a live source skipped because processing was slower.
    """

    def __init__(self, source: str | int | os.PathLike, drop: bool | None = None, realtime: bool = False,
                 buffer: int = 4) -> None:
        self.source = source
        self.kind, live = describe_source(source)
        self.drop = live if drop is None else bool(drop)
        self.realtime = realtime
        self._frames = open_frames(source)
        self._q: queue.Queue[Any] = queue.Queue(maxsize=1 if self.drop else max(1, buffer))
        self._stop = threading.Event()
        self.dropped = 0
        self.read = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="faceforge-capture", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> None:
        if self.drop and item is not _END:
            try:
                self._q.put_nowait(item)
            except queue.Full:
                try:
                    self._q.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass
                self._q.put_nowait(item)
            return
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                if item is _END and self.drop:
                    try:
                        self._q.get_nowait()
                    except queue.Empty:
                        pass

    def _run(self) -> None:
        t0 = time.perf_counter()
        try:
            for frame in self._frames:
                if self._stop.is_set():
                    break
                if self.realtime and frame.timestamp:
                    wait = frame.timestamp - (time.perf_counter() - t0)
                    if wait > 0:
                        time.sleep(wait)
                self.read += 1
                self._put(frame)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self.error = e
        finally:
            close = getattr(self._frames, "close", None)
            if close is not None:
                close()  # release the video capture on this thread, now
            self._put(_END)

    def __iter__(self) -> Iterator[Frame]:
        while True:
            item = self._q.get()
            if item is _END:
                if self.error is not None:
                    raise SourceError(f"{self.source}: reading failed: {self.error}") from self.error
                return
            yield item

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading and wait (up to ``timeout`` s) for the thread to release the source."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def __enter__(self) -> "CaptureThread":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
