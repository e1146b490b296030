"""Serving the newest frame as an MJPEG stream over HTTP (a browser shows it live)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from faceforge.errors import ParameterError
from faceforge.sinks.files import encode_image


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

            def do_GET(self) -> None:
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
        """The newest JPEG, waiting up to ``timeout`` s for one (other than ``newer_than``)."""
        with self._cond:
            self._cond.wait_for(lambda: self._jpeg is not None and self._jpeg is not newer_than or self._closed,
                                timeout=timeout)
            return self._jpeg

    def write(self, rgb: np.ndarray) -> None:
        """Publish one ``(H, W, 3) uint8`` RGB frame to every viewer."""
        jpeg = encode_image(rgb, ".jpg", self.quality)
        with self._cond:
            self._jpeg = jpeg
            self._cond.notify_all()

    def close(self) -> None:
        """Stop serving and free the port."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()
