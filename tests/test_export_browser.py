"""The browser bundle end to end: a real model exported with the detector, unzipped, served by a local
``http.server`` and run in headless Chromium (selenium) on a fake webcam playing the astronaut; the page's labels
equal faceforge's own classification of the very frames the page classified. Also the bundle route of the service,
the Models tab's button and ``faceforge export --format web``.

Set ``FACEFORGE_WEB_SCREENSHOTS=/some/dir`` to save a screenshot of the running page there.
"""

from __future__ import annotations

import base64
import functools
import http.server
import io
import json
import os
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import variants

pytest.importorskip("tflite", reason="needs the tflite flatbuffer reader (pip install tflite)")

from faceforge.errors import ModelNotFoundError  # noqa: E402
from faceforge.export.bundle import ORT_WEB_FILES, PAGE_FILES, build_bundle, ort_web_files  # noqa: E402

try:
    ort_web_files()
    HAVE_ORT_WEB = True
except ModelNotFoundError as _e:  # pragma: no cover - a checkout without ./run's set-up
    HAVE_ORT_WEB, _WHY = False, str(_e)
needs_ort_web = pytest.mark.skipif(not HAVE_ORT_WEB, reason="onnxruntime-web is not set up (run ./run once)")

BUNDLE_FILES = {"classifier.onnx", "detector.onnx", "model.json", "README.txt", *PAGE_FILES, *ORT_WEB_FILES}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, astronaut, grace):
    """A real model (the default embedder, dlib-resnet, and head): the astronaut, Grace Hopper, the cameraman."""
    from skimage import data

    from faceforge.train import train

    root = tmp_path_factory.mktemp("browser_photos")
    camera = np.ascontiguousarray(np.repeat(data.camera()[:, :, None], 3, axis=2))
    for name, img in {"astronaut": astronaut, "grace": grace, "camera": camera}.items():
        (root / name).mkdir()
        for i, v in enumerate(variants(img, 4)):
            Image.fromarray(v).save(root / name / f"{i}.jpg", quality=92)
    path = tmp_path_factory.mktemp("browser_model") / "crew.ffm"
    train(root, path, embedder="dlib-resnet", head="logreg", val=0.0, learning_curve=False, workers=1, progress=False)
    return path


@pytest.fixture(scope="module")
def bundle(model_file, tmp_path_factory):
    if not HAVE_ORT_WEB:
        pytest.skip(_WHY)
    out = tmp_path_factory.mktemp("bundle") / "crew-web.zip"
    info = build_bundle(model_file, out)
    print(f"\nbundle: {info['bytes'] / 1e6:.2f} MB zipped; files: "
          + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sorted(info["files"].items())))
    return out


@needs_ort_web
def test_bundle_holds_the_page_the_graphs_and_onnxruntime_web(bundle):
    with zipfile.ZipFile(bundle) as z:
        assert set(z.namelist()) == BUNDLE_FILES
        side = json.loads(z.read("model.json"))
        page = z.read("index.html").decode() + z.read("app.js").decode()
    assert side["detector"]["file"] == "detector.onnx" and side["labels"] == ["astronaut", "camera", "grace"]
    # offline: the page names no URL outside the bundle
    assert "http://" not in page.replace("http://localhost:8000/", "") and "https://" not in page
    assert "ort.wasm.bundle.min.mjs" in page and "file://" in page  # and it says why file:// cannot work


# -- the page in Chromium -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(bundle, tmp_path_factory):
    """The unzipped bundle, served by http.server on a free port of 127.0.0.1."""
    root = tmp_path_factory.mktemp("served")
    with zipfile.ZipFile(bundle) as z:
        z.extractall(root)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=srv.serve_forever, name="bundle-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory, astronaut):
    from conftest import chromium
    from test_web import write_y4m

    driver = chromium("1000,900", write_y4m(tmp_path_factory.mktemp("cam") / "astronaut.y4m", astronaut))
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, js: str, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(js)
        if value:
            return value
        if driver.execute_script("return window.faceforge && window.faceforge.error"):
            break
        time.sleep(0.25)
    logs = "\n".join(f"console {e['level']}: {e['message']}" for e in driver.get_log("browser")[-15:])
    state = driver.execute_script("return window.faceforge ? JSON.stringify({error: window.faceforge.error, "
                                  "frames: window.faceforge.frames, ready: window.faceforge.ready}) : 'no state'")
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; page state {state}\n{logs}")


def test_the_page_labels_the_webcam_as_faceforge_does(browser, served, model_file):
    from faceforge.detectors.blazeface import BlazeFaceDetector
    from faceforge.train import load_classifier

    d = browser
    d.get(served + "/?autostart")
    _wait(d, "return window.faceforge && window.faceforge.ready", 60, "the models to load")
    _wait(d, "return window.faceforge.frames >= 5 && window.faceforge.faces.length > 0", 90,
          "5 frames classified with a face")
    d.execute_script("window.faceforge.stop()")
    if os.environ.get("FACEFORGE_WEB_SCREENSHOTS"):
        Path(os.environ["FACEFORGE_WEB_SCREENSHOTS"]).mkdir(parents=True, exist_ok=True)
        d.save_screenshot(str(Path(os.environ["FACEFORGE_WEB_SCREENSHOTS"]) / "bundle-page.png"))
    time.sleep(0.5)  # a frame in flight finishes
    page = d.execute_script("return {faces: window.faceforge.faces, timing: window.faceforge.timing, "
                            "frames: window.faceforge.frames, png: window.faceforge.frameDataURL()}")
    frame = np.asarray(Image.open(io.BytesIO(base64.b64decode(page["png"].split(",", 1)[1]))).convert("RGB"))
    t = page["timing"]
    print(f"\nbrowser: {page['frames']} frames; detector {t['detect_ms']:.1f} ms a frame; classifier "
          f"{t['per_face_ms']:.1f} ms per face (mean of {t['faces_total']} faces, {t['frames_timed']} frames), "
          f"frame {frame.shape[1]}x{frame.shape[0]}")

    clf = load_classifier(model_file)
    # faceforge's own classification of that frame (its recorded face finder, aligner, embedder, head)
    server = clf.classify(frame)
    server_labels = [p.label for p in server.predictions[clf.name]]
    page_labels = [f["label"] for f in page["faces"]]
    assert page_labels == server_labels == ["astronaut"], (page_labels, server_labels)
    # the same faces through faceforge with the detector the page runs: boxes and probabilities agree
    faces = BlazeFaceDetector("short")(frame)
    assert len(faces) == len(page["faces"])
    np.testing.assert_allclose([f["box"] for f in page["faces"]], faces.xyxy, atol=2.0)
    proba = clf.head.predict_proba(clf.embed(frame, faces))
    got = np.array([f["probabilities"] for f in page["faces"]])
    print(f"browser vs faceforge probabilities: max |diff| {np.abs(got - proba).max():.2e}")
    np.testing.assert_allclose(got, proba, atol=0.02)
    errors = [e["message"] for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def test_file_url_says_to_use_a_web_server(browser, bundle, tmp_path):
    with zipfile.ZipFile(bundle) as z:
        z.extractall(tmp_path)
    browser.get((tmp_path / "index.html").as_uri())
    time.sleep(1.0)
    text = browser.execute_script("return document.body.innerText")
    assert "python3 -m http.server" in text


# -- the service route ----------------------------------------------------------------------------------
@pytest.fixture()
def client(tmp_path):
    from fastapi.testclient import TestClient

    from faceforge.service import create_app

    with TestClient(create_app(home=tmp_path / "home", run_jobs=False)) as c:
        yield c


@needs_ort_web
def test_bundle_route_returns_the_zip(client, model_file, tmp_path):
    with open(model_file, "rb") as f:
        r = client.post("/api/models", files={"file": ("crew.ffm", f, "application/octet-stream")},
                        data={"name": "crew"})
    assert r.status_code == 201, r.text
    r = client.get("/api/models/crew/bundle")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert 'filename="crew-web.zip"' in r.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        assert set(z.namelist()) == BUNDLE_FILES
    # built once: the second download is the kept file; a replaced model gets a new bundle, the old goes
    kept = list((tmp_path / "home" / "bundles").glob("crew.*.zip"))
    assert len(kept) == 1 and kept[0].read_bytes() == r.content
    mtime = kept[0].stat().st_mtime_ns
    assert client.get("/api/models/crew/bundle").content == r.content and kept[0].stat().st_mtime_ns == mtime
    from faceforge.heads.bundle import read_manifest, replace_manifest

    other = replace_manifest(model_file, tmp_path / "crew2.ffm", {**read_manifest(model_file), "note": "retrained"})
    with open(other, "rb") as f:
        r2 = client.post("/api/models", files={"file": ("crew.ffm", f, "application/octet-stream")},
                         data={"name": "crew", "replace": "true"})
    assert r2.status_code in (200, 201), r2.text
    assert client.get("/api/models/crew/bundle").status_code == 200
    now = list((tmp_path / "home" / "bundles").glob("crew.*.zip"))
    assert len(now) == 1 and now[0] != kept[0]


@pytest.mark.parametrize("name, status, match", [
    ("nobody", 404, "No model called 'nobody'"),
    ("two%20words", 404, "No model called 'two words'"),
    ("..%2Fetc", 404, "Not Found"),  # a path, not a name: no route takes it
])
def test_bundle_route_refuses_unknown_models(client, name, status, match):
    r = client.get(f"/api/models/{name}/bundle")
    assert r.status_code == status and match in r.json()["detail"], r.text


def test_bundle_route_without_onnxruntime_web_says_how_to_set_it_up(client, model_file, tmp_path, monkeypatch):
    with open(model_file, "rb") as f:
        assert client.post("/api/models", files={"file": ("crew.ffm", f, "application/octet-stream")},
                           data={"name": "crew"}).status_code == 201
    monkeypatch.setenv("FACEFORGE_ORT_WEB", str(tmp_path / "empty"))
    r = client.get("/api/models/crew/bundle")
    assert r.status_code == 503 and "./run" in r.json()["detail"], r.text


# -- the CLI ---------------------------------------------------------------------------------------------
@needs_ort_web
def test_cli_export_format_web_writes_the_zip(model_file, tmp_path):
    from typer.testing import CliRunner

    from faceforge.cli.main import app

    out = tmp_path / "crew-web.zip"
    r = CliRunner().invoke(app, ["export", str(model_file), "-o", str(out), "--format", "web"])
    assert r.exit_code == 0, r.output
    assert "crew-web.zip" in r.output and "MB" in r.output and "http.server" in r.output
    with zipfile.ZipFile(out) as z:
        assert set(z.namelist()) == BUNDLE_FILES


@needs_ort_web
def test_cli_export_format_web_refuses_to_overwrite_the_model(model_file):
    from typer.testing import CliRunner

    from faceforge.cli.main import app

    r = CliRunner().invoke(app, ["export", str(model_file), "-o", str(model_file), "--format", "web"])
    assert r.exit_code != 0 and "Refusing to overwrite the input file" in r.output
    assert zipfile.ZipFile(model_file).namelist()  # still the model


# -- the service's page: the Models tab's button ---------------------------------------------------------
@pytest.fixture()
def service(tmp_path, model_file):
    """The service (a model "crew" stored) on a free port of 127.0.0.1, run by uvicorn in a thread."""
    import urllib.request

    from conftest import serve_app
    from faceforge.service import create_app

    with serve_app(create_app(home=tmp_path / "home", run_jobs=False), "uvicorn-bundle") as url:
        boundary = "faceforgebundletest"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\ncrew\r\n--{boundary}\r\n"
                f"Content-Disposition: form-data; name=\"file\"; filename=\"crew.ffm\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + model_file.read_bytes() + \
            f"\r\n--{boundary}--\r\n".encode()
        req = urllib.request.Request(f"{url}/api/models", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 201
        yield url


@needs_ort_web
def test_models_tab_downloads_the_browser_bundle(browser, service):
    from selenium.webdriver.common.by import By

    d = browser
    d.get(service + "/")
    _wait(d, "return document.body.dataset.ready === '1'", 15, "the service page")
    d.find_element(By.CSS_SELECTOR, "#tab-models").click()
    _wait(d, "return document.querySelector('button.model-bundle[data-model=\"crew\"]')", 15, "the bundle button")
    d.find_element(By.CSS_SELECTOR, 'button.model-bundle[data-model="crew"]').click()
    status = _wait(d, "const t = document.querySelector('#models-status').textContent;"
                      "return t.startsWith('Browser bundle of crew') && t", 120, "the bundle download")
    assert "MB" in status and "http.server" in status
    assert d.execute_script("return document.querySelector('#models-error').hidden")


@needs_ort_web
def test_bundle_with_the_full_range_detector(model_file, tmp_path):
    import hashlib

    build_bundle(model_file, tmp_path / "full.zip", detector="full")
    with zipfile.ZipFile(tmp_path / "full.zip") as z:
        side = json.loads(z.read("model.json"))
        graph = z.read("detector.onnx")
    assert side["detector"]["model"] == "blazeface.full" and side["detector"]["input_size"] == 192
    assert side["files"]["detector.onnx"]["sha256"] == hashlib.sha256(graph).hexdigest()
