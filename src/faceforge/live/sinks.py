"""Where live frames go: an annotated video file, a window, an MJPEG stream over HTTP."""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from faceforge.errors import ParameterError, SourceError


class VideoSink:
    """Writes RGB frames to a video file (MP4 or AVI by suffix); opened on the first frame.

    The file is written under a temporary name and renamed when closed, so an interrupted run
    never leaves a half-written file under the final name.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 30.0, protect: list[str] = ()) -> None:
        from faceforge.sinks.files import guard

        self.path = Path(path)
        guard(self.path, protect)
        if self.path.suffix.lower() not in (".mp4", ".avi", ".mkv", ".mov"):
            raise ParameterError(f"{self.path}: the output video must end in .mp4, .avi, .mkv or .mov")
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self._tmp = self.path.with_name(f".{self.path.stem}.part{self.path.suffix}")
        self._vw: Any = None
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        import cv2

        if self._vw is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"))
            h, w = rgb.shape[:2]
            self._vw = cv2.VideoWriter(str(self._tmp), fourcc, self.fps, (w, h))
            if not self._vw.isOpened():
                raise SourceError(f"{self.path}: OpenCV cannot write this video format here; try .avi")
        self._vw.write(np.ascontiguousarray(rgb[:, :, ::-1]))
        self.frames += 1

    def close(self) -> None:
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
        import cv2

        cv2.imshow(self.title, rgb[:, :, ::-1])
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.stop_requested = True

    def close(self) -> None:
        import cv2

        cv2.destroyWindow(self.title)


class MjpegServer:
    """Serves the newest frame as an MJPEG stream at ``http://HOST:PORT/`` (``/frame.jpg``: one frame).

    Args:
        port: TCP port (0: any free port; see :attr:`port`).
        host: interface (``127.0.0.1`` by default: this machine only).
        quality: JPEG quality.
    """

    def __init__(self, port: int = 8080, host: str = "127.0.0.1", quality: int = 80) -> None:
        self.quality = int(quality)
        self._jpeg: bytes | None = None
        self._cond = threading.Condition()
        self._closed = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                if self.path.startswith("/frame.jpg"):
                    jpeg = server.wait_frame(timeout=5.0)
                    if jpeg is None:
                        self.send_error(503, "no frame yet")
                        return
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(jpeg)))
                    self.end_headers()
                    self.wfile.write(jpeg)
                    return
                if self.path not in ("/", "/stream.mjpg"):
                    self.send_error(404, "try / or /frame.jpg")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                last = None
                try:
                    while not server._closed:
                        jpeg = server.wait_frame(timeout=1.0, newer_than=last)
                        if jpeg is None or jpeg is last:
                            continue
                        last = jpeg
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                         + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    return

        try:
            self._httpd = ThreadingHTTPServer((host, int(port)), Handler)
        except OSError as e:
            raise ParameterError(f"Cannot serve MJPEG on {host}:{port}: {e}. Choose another --mjpeg port.") from e
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://{host}:{self.port}/"
        threading.Thread(target=self._httpd.serve_forever, name="faceforge-mjpeg", daemon=True).start()

    def wait_frame(self, timeout: float, newer_than: bytes | None = None) -> bytes | None:
        with self._cond:
            self._cond.wait_for(lambda: self._jpeg is not None and self._jpeg is not newer_than or self._closed,
                                timeout=timeout)
            return self._jpeg

    def write(self, rgb: np.ndarray) -> None:
        from faceforge.sinks.files import encode_image

        jpeg = encode_image(rgb, ".jpg", self.quality)
        with self._cond:
            self._jpeg = jpeg
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()
