"""Where frames go on screen or disk: an annotated video file, a window."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from faceforge.errors import ParameterError, SourceError
from faceforge.sinks.files import guard


class VideoSink:
    """Writes RGB frames to a video file (MP4 or AVI by suffix); opened on the first frame.

    The file is written under a temporary name and renamed when closed, so an interrupted run
    never leaves a half-written file under the final name.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 30.0, protect: Iterable[str] = ()) -> None:
        self.path = Path(path)
        guard(self.path, protect)
        if self.path.suffix.lower() not in (".mp4", ".avi", ".mkv", ".mov"):
            raise ParameterError(f"{self.path}: the output video must end in .mp4, .avi, .mkv or .mov")
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self._tmp = self.path.with_name(f".{self.path.stem}.part{self.path.suffix}")
        self._vw: Any = None
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        """Append one ``(H, W, 3) uint8`` RGB frame (the first one sets the video's size).

        Raises:
            SourceError: OpenCV cannot write this format here.
        """
        import cv2

        if self._vw is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter_fourcc(  # type: ignore[attr-defined]
                *("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"))
            h, w = rgb.shape[:2]
            self._vw = cv2.VideoWriter(str(self._tmp), fourcc, self.fps, (w, h))
            if not self._vw.isOpened():
                raise SourceError(f"{self.path}: OpenCV cannot write this video format here; try .avi")
        self._vw.write(np.ascontiguousarray(rgb[:, :, ::-1]))
        self.frames += 1

    def close(self) -> None:
        """Finish the file and move it to its final name."""
        if self._vw is not None:
            self._vw.release()
            self._vw = None
            os.replace(self._tmp, self.path)


def has_gui() -> bool:
    """Whether this OpenCV build can open windows (``opencv-python-headless`` cannot)."""
    import cv2

    info = cv2.getBuildInformation()
    gui = [ln for ln in info.splitlines() if "GUI:" in ln]
    return bool(gui) and "NONE" not in gui[0].upper()


class WindowSink:
    """Shows frames in an OpenCV window; ``q`` or Esc asks the loop to stop."""

    def __init__(self, title: str = "faceforge live") -> None:
        if not has_gui():
            raise ParameterError("This OpenCV build has no GUI (opencv-python-headless), so --show cannot open a "
                                 "window. Use --mjpeg PORT and open http://localhost:PORT/ in a browser, or "
                                 "--output FILE.mp4.")
        self.title = title
        self.stop_requested = False

    def write(self, rgb: np.ndarray) -> None:
        """Show one ``(H, W, 3) uint8`` RGB frame; sets :attr:`stop_requested` on ``q`` or Esc."""
        import cv2

        cv2.imshow(self.title, rgb[:, :, ::-1])
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.stop_requested = True

    def close(self) -> None:
        """Close the window."""
        import cv2

        cv2.destroyWindow(self.title)
