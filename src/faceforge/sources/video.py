"""Reading video files, webcams and streams frame by frame with OpenCV."""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path

from faceforge.errors import SourceError
from faceforge.sources.frame import Frame


def is_url(source: object) -> bool:
    """True for a stream address such as ``rtsp://...`` or ``http://...``."""
    return isinstance(source, str) and "://" in source


def is_webcam(source: object) -> bool:
    """True for a webcam index: an ``int`` or a string of digits such as ``"0"``."""
    return (isinstance(source, int) and not isinstance(source, bool)) or (isinstance(source, str)
                                                                          and source.isdigit())


def iter_video(source: str | int | os.PathLike, every: int = 1, max_frames: int | None = None,
               name: str | None = None) -> Generator[Frame, None, None]:
    """Read frames from a video file, webcam index or stream URL with OpenCV.

    Args:
        source: a path, an int webcam index, or an ``rtsp://`` / ``http://`` URL.
        every: keep every n-th frame.
        max_frames: stop after this many kept frames.
        name: the frames' :attr:`Frame.name` (default: ``str(source)``).

    Yields:
        :class:`Frame` with decoded ``(H, W, 3) uint8`` RGB pixels, its index in the video and
        its timestamp in seconds.

    Raises:
        SourceError: ``every`` below 1, or the source cannot be opened.
    """
    import cv2

    if every < 1:
        raise SourceError(f"every must be >= 1, got {every}")
    target: int | str = int(str(source)) if is_webcam(source) else os.fspath(source)  # type: ignore[arg-type]
    if isinstance(target, str) and not is_url(target) and not Path(target).is_file():
        raise SourceError(f"{source}: no such video file. Check the path.")
    cap = cv2.VideoCapture(target)
    if not cap.isOpened():
        raise SourceError(
            f"{source}: OpenCV could not open this video/stream. Check the path or URL, "
            f"or convert the file to MP4 (H.264)."
        )
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    idx = kept = 0
    label = str(source) if name is None else name
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            if idx % every == 0:
                ts = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 if fps else 0.0
                yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), str(source), idx, ts, name=label)
                kept += 1
                if max_frames is not None and kept >= max_frames:
                    break
            idx += 1
    finally:
        cap.release()


def frame_count(path: str | os.PathLike, every: int = 1) -> int:
    """Approximate number of frames :func:`iter_video` keeps from a video file (from its header).

    Args:
        path: a video file.
        every: keep every n-th frame.

    Returns:
        At least 1 (a header without a count, or an unreadable file, counts as one item).
    """
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 1)
    finally:
        cap.release()
    return max(1, n // max(1, every))
