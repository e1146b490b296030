"""Reading a source on a background thread, dropping frames when the source is live.

A live source (webcam, ``rtsp://`` / ``http://`` stream) must not fall behind: the capture thread
keeps only the newest frame and the consumer takes whatever is newest when it is ready (older
frames are dropped and counted). A file source (video, image folder or glob) is read in order
without dropping, unless ``realtime=True`` asks to play it at its own speed. Still images are
decoded on the capture thread; one that does not decode is recorded in the source's
``skipped`` and left out.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

from faceforge.errors import SourceError
from faceforge.sources.frame import Frame
from faceforge.sources.source import Source, open_source

_END = object()


def open_frames(source: Source | str | int | os.PathLike) -> Iterator[Frame]:
    """Decoded frames of ``source`` in order (no thread), opened now.

    Args:
        source: anything :func:`~faceforge.sources.open_source` takes.

    Returns:
        An iterator over decoded frames.

    Raises:
        SourceError: the source cannot be opened or gives no frame (the message says why).
    """
    src = open_source(source)
    it = src.frames(decode=True)
    first = next(it, None)  # open now, so a bad source fails here and not on a capture thread
    if first is None:
        why = "; ".join(s.reason for s in src.skipped if s.kind != "unsupported")[:500]
        raise SourceError(f"{src.name}: no frames could be read{f' ({why})' if why else ''}. "
                          f"Check that the file or stream is not empty.")

    def chain() -> Iterator[Frame]:
        try:
            yield first
            yield from it
        finally:
            it.close()

    return chain()


class CaptureThread:
    """Reads a source on a background thread.

    Args:
        source: anything :func:`~faceforge.sources.open_source` takes (webcam index, stream URL,
            video file, image folder, glob...).
        drop: keep only the newest frame (default: True for live sources, webcams and streams).
        realtime: for files, pace reading at the video's timestamps (as a camera would).
        buffer: frames queued when not dropping.

    Iterate to get decoded :class:`~faceforge.sources.Frame`\\ s; :attr:`dropped` counts the
    frames a live source skipped because the consumer was slower.

    Raises:
        SourceError: the source cannot be opened or gives no frame.
    """

    def __init__(self, source: Source | str | int | os.PathLike, drop: bool | None = None,
                 realtime: bool = False, buffer: int = 4) -> None:
        self.source = source
        self.src = open_source(source)
        self.kind = self.src.kind
        self.live = self.src.live
        self.drop = self.live if drop is None else bool(drop)
        self.realtime = realtime
        self._frames = open_frames(self.src)
        self._q: queue.Queue[Any] = queue.Queue(maxsize=1 if self.drop else max(1, buffer))
        self._stop = threading.Event()
        self.dropped = 0
        self.read = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="faceforge-capture", daemon=True)
        self._thread.start()

    @property
    def skipped(self) -> list:
        """Inputs the source left out so far (see :attr:`faceforge.sources.Source.skipped`)."""
        return self.src.skipped

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

    def __enter__(self) -> CaptureThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
