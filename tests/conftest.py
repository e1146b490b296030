"""Shared fixtures: real images shipped in installed packages, and the optional ../shared data."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pytest

#: ../shared/data beside the repository (present on developers' machines and in CI).
SHARED = Path(os.environ.get("FACEFORGE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

#: The astronaut's face in skimage.data.astronaut(), xyxy (see shared/data/README.md).
ASTRONAUT_BOX = np.array([177, 72, 272, 176], np.float32)


def shared_path(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test with a clear reason when it is absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs {p} (the ../shared/data development set), which is not on this machine")
    return p


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def grace() -> np.ndarray:
    """Grace Hopper's portrait shipped with matplotlib (a second real person, one face)."""
    from matplotlib import cbook

    from faceforge.sources import load_image

    return load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def jpeg(image: np.ndarray, quality: int = 92) -> bytes:
    """``image`` (RGB) encoded as JPEG bytes."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def variants(image: np.ndarray, n: int) -> list[np.ndarray]:
    """``n`` different photos of the same face: shifted, mirrored, brightened, slightly rotated."""
    import cv2

    h, w = image.shape[:2]
    out = []
    for i in range(n):
        img = np.roll(image, 7 * i, axis=1)
        if i % 2:
            img = img[:, ::-1]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), (-1) ** i * 2.0 * (i % 3), 1.0)
        img = cv2.warpAffine(np.ascontiguousarray(img), m, (w, h), borderMode=cv2.BORDER_REPLICATE)
        out.append(np.clip(img.astype(np.float32) * (0.9 + 0.05 * i), 0, 255).astype(np.uint8))
    return out


@pytest.fixture(scope="session")
def coffee() -> np.ndarray:
    from skimage import data

    return data.coffee()


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory) -> None:
    # Derived model files (ONNX conversions) go to the repository's ignored .cache/ unless one
    # is configured, so tests never depend on (or fill) a developer's ~/.cache.
    if "FACEFORGE_CACHE" not in os.environ:
        os.environ["FACEFORGE_CACHE"] = str(Path(__file__).resolve().parents[1] / ".cache")


def write_panning_video(path: Path, image: np.ndarray, frames: int, step: int) -> Path:
    """An MJPEG .avi of ``image`` rolled right by ``step`` px per frame (the face moves right)."""
    import cv2

    h, w = image.shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    for i in range(frames):
        vw.write(np.ascontiguousarray(np.roll(image, i * step, axis=1)[:, :, ::-1]))
    vw.release()
    return path


@pytest.fixture
def mjpeg_stream(astronaut):
    """The URL of a live MJPEG stream over HTTP (faceforge's own sink) of the moving astronaut."""
    import threading
    import time

    from faceforge.sinks import MjpegServer

    srv = MjpegServer(port=0)
    stop = threading.Event()

    def feed() -> None:
        i = 0
        while not stop.is_set():
            srv.write(np.roll(astronaut, 4 * i, axis=1))
            i += 1
            time.sleep(0.02)

    threading.Thread(target=feed, daemon=True).start()
    try:
        yield srv.url + "stream.mjpg"
    finally:
        stop.set()
        srv.close()


def serve_image(body: bytes, hits: list | None = None):
    """A real HTTP server on 127.0.0.1 that answers every GET with ``body`` (a JPEG), and ``/redirect``
    with a 302 to it; each request's path and Host header are appended to ``hits``. Returns
    ``(port, stop)``."""
    import http.server
    import threading

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if hits is not None:
                hits.append((self.path, self.headers.get("Host", "")))
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "/astronaut.jpg")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1], srv.shutdown


CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def chromium(window: str = "1360,1000", camera: Path | None = None):
    """A headless Chromium driven by selenium (skips without selenium, Chromium or chromedriver).

    Args:
        window: the window size, ``"W,H"``.
        camera: a ``.y4m`` clip the fake webcam plays (the page's camera permission is granted), or None.

    Returns:
        The ``selenium`` Chrome driver (the caller quits it), with the browser log captured.
    """
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install 'faceforge[test]')")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(f"needs Chromium at {CHROMIUM} and chromedriver at {CHROMEDRIVER} "
                    "(Debian: apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    args = ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={window}", "--disable-gpu",
            "--mute-audio", "--no-first-run", "--disable-extensions", "--disable-background-networking"]
    if camera is not None:
        args += ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-video-capture={camera}"]
    for arg in args:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    return driver


@contextlib.contextmanager
def serve_app(app, name: str = "uvicorn-test"):
    """Run an ASGI ``app`` with uvicorn on a free port of 127.0.0.1 in a thread; yields its base URL.

    Waits until ``/api/health`` answers (fails the test after 30 s) and stops the server at exit.
    """
    import socket
    import threading
    import time
    import urllib.request

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/health", timeout=2):
                break
        except OSError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            srv.should_exit = True
            pytest.fail("the service did not answer /api/health within 30 s")
        time.sleep(0.1)
    try:
        yield url
    finally:
        srv.should_exit = True
        thread.join(15)
        sock.close()
