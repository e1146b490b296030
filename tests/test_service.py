"""The HTTP API on real images: faces, models, training and video jobs, galleries, the live
WebSocket, and the safety rules (API key, limits, sniffed types, SSRF, restarts)."""

from __future__ import annotations

import io
import json
import sqlite3
import time

import numpy as np
import pytest

from conftest import ASTRONAUT_BOX, jpeg, serve_image, variants, write_panning_video

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from faceforge.service import create_app  # noqa: E402


def upload(img: np.ndarray | bytes, name: str = "photo.jpg") -> dict:
    return {"file": (name, img if isinstance(img, bytes) else jpeg(img), "image/jpeg")}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with TestClient(create_app(home=tmp_path_factory.mktemp("home"))) as c:
        yield c


def training_photos(people: dict[str, np.ndarray], n: int) -> tuple[list, list[str]]:
    """Multipart ``files`` and ``labels`` for ``n`` photos of each person."""
    files, labels = [], []
    for label, img in people.items():
        for i, v in enumerate(variants(img, n)):
            files.append(("files", (f"{label}{i}.jpg", jpeg(v), "image/jpeg")))
            labels.append(label)
    return files, labels


@pytest.fixture(scope="module")
def trained(client, astronaut, grace):
    """A model trained through the API: 4 photos each of two real people."""
    files, labels = training_photos({"eileen": astronaut, "grace": grace}, 4)
    r = client.post("/api/training", files=files, data={"name": "crew", "labels": labels})
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "done", job
    return job


def wait_job(client, job_id: str, timeout: float = 180.0) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")


# -- faces -------------------------------------------------------------------------------------

def test_health_and_openapi(client):
    assert client.get("/api/health").json()["status"] == "ok"
    spec = client.get("/openapi.json").json()
    assert {"/api/detect", "/api/analyze", "/api/classify", "/api/training",
            "/api/galleries/{gallery}/identify"} <= set(spec["paths"])


def test_detect_and_analyze_the_astronaut(client, astronaut):
    r = client.post("/api/detect", files=upload(astronaut))
    assert r.status_code == 200
    (face,) = r.json()["faces"]
    assert np.abs(np.array(face["box"]) - ASTRONAUT_BOX).max() < 25
    (face,) = client.post("/api/analyze", files=upload(astronaut)).json()["faces"]
    assert face["gender"]["label"] == "female" and 20 <= face["age"]["value"] <= 60
    assert face["emotion"]["label"] == "happy"
    r = client.post("/api/analyze", files=upload(astronaut), data={"attributes": "emotion"})
    assert set(r.json()["faces"][0]) >= {"emotion"} and "gender" not in r.json()["faces"][0]


def test_bad_images_get_clear_errors(client, astronaut):
    r = client.post("/api/detect", files={"file": ("notes.txt", b"hello world", "image/jpeg")})
    assert r.status_code == 415 and "notes.txt" in r.json()["detail"] and "jpeg" in r.json()["detail"]
    r = client.post("/api/detect", files=upload(b"\xff\xd8\xff\xe0" + b"\x00" * 100, "cut.jpg"))
    assert r.status_code == 422 and "cut.jpg" in r.json()["detail"]
    r = client.post("/api/detect", files=upload(b"", "empty.jpg"))
    assert r.status_code == 400 and "empty" in r.json()["detail"]
    assert client.post("/api/detect").status_code == 422
    r = client.post("/api/detect", files=upload(astronaut), data={"url": "https://example.org/a.jpg"})
    assert r.status_code == 422 and "exactly one" in r.json()["detail"]
    r = client.post("/api/analyze", files=upload(astronaut), data={"attributes": "height"})
    assert r.status_code == 422 and "height" in r.json()["detail"]
    r = client.post("/api/classify", files=upload(astronaut), data={"model": "nope"})
    assert r.status_code == 404 and "nope" in r.json()["detail"]


def test_decompression_bomb_is_refused_before_decoding(client):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (10_000, 5_000)).save(buf, "PNG")  # 50 MP in a few kB
    assert len(buf.getvalue()) < 100_000
    r = client.post("/api/detect", files={"file": ("bomb.png", buf.getvalue(), "image/png")})
    assert r.status_code == 422 and "MP" in r.json()["detail"]


def test_size_limits(tmp_path, astronaut):
    with TestClient(create_app(home=tmp_path, max_image_mb=0.01, max_request_mb=0.05, run_jobs=False)) as c:
        r = c.post("/api/detect", files=upload(astronaut))
        assert r.status_code == 413 and "limit" in r.json()["detail"]

        body = (b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
                b"Content-Type: image/jpeg\r\n\r\n" + b"\xff\xd8\xff" + b"x" * 200_000 + b"\r\n--x--\r\n")

        def chunks():  # no Content-Length: the body is counted as it arrives
            for i in range(0, len(body), 10_000):
                yield body[i:i + 10_000]

        r = c.post("/api/detect", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
        assert r.status_code == 413


# -- URLs (SSRF) -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def image_server(astronaut):
    port, stop = serve_image(jpeg(astronaut))
    yield f"http://127.0.0.1:{port}"
    stop()


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/a.jpg", "http://localhost/a.jpg", "http://10.1.2.3/a.jpg",
                                 "http://169.254.169.254/latest/meta-data", "http://[::1]/a.jpg",
                                 "http://0.0.0.0/a.jpg", "http://[::ffff:127.0.0.1]/a.jpg"])
def test_urls_to_private_addresses_are_refused(client, url):
    r = client.post("/api/detect", data={"url": url})
    assert r.status_code == 400 and "refused" in r.json()["detail"], r.text


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/a.jpg", "gopher://x/", "http:///nohost"])
def test_urls_other_than_http_are_refused(client, url):
    r = client.post("/api/detect", data={"url": url})
    assert r.status_code == 400 and "only http" in r.json()["detail"]


def test_private_urls_when_allowed(tmp_path, image_server):
    with TestClient(create_app(home=tmp_path, allow_private_urls=True, run_jobs=False)) as c:
        for path in ["/astronaut.jpg", "/redirect"]:
            r = c.post("/api/detect", data={"url": image_server + path})
            assert r.status_code == 200, r.text
            assert len(r.json()["faces"]) == 1
    with TestClient(create_app(home=tmp_path, run_jobs=False)) as c:
        assert c.post("/api/detect", data={"url": image_server + "/astronaut.jpg"}).status_code == 400


# -- API key -----------------------------------------------------------------------------------

def test_api_key(tmp_path, astronaut):
    with TestClient(create_app(home=tmp_path, api_key="s3cret", run_jobs=False)) as c:
        assert c.get("/api/health").status_code == 200  # for monitoring
        r = c.get("/api/models")
        assert r.status_code == 401 and "X-API-Key" in r.json()["detail"]
        assert c.get("/api/models", headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.get("/api/models", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.get("/api/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.post("/api/detect", files=upload(astronaut)).status_code == 401
        assert c.get("/").status_code == 200  # the page asks for the key itself
        with c.websocket_connect("/api/live?attributes=gender") as ws:
            assert "API key" in ws.receive_json()["error"]
        with c.websocket_connect("/api/live?attributes=gender&key=s3cret") as ws:
            ws.send_bytes(jpeg(astronaut))
            assert ws.receive_json()["faces"][0]["gender"]["label"] == "female"


def test_serve_refuses_a_public_address_without_key(tmp_path, monkeypatch):
    from faceforge.errors import ParameterError
    from faceforge.service import serve

    monkeypatch.delenv("FACEFORGE_API_KEY", raising=False)
    with pytest.raises(ParameterError, match="API key"):
        serve("0.0.0.0", 0, home=tmp_path)


# -- models and training -----------------------------------------------------------------------

def test_training_job_makes_a_model_that_classifies(client, trained, astronaut, grace):
    res = trained["result"]
    assert res["model"]["name"] == "crew" and res["model"]["classes"] == ["eileen", "grace"]
    home = client.app.state.home
    assert not (home.job_dir(trained["id"]) / "photos").exists()  # uploads are not kept after the job
    assert "accuracy" in res["report"]
    assert [m["name"] for m in client.get("/api/models").json()["models"]] == ["crew"]
    for img, who in [(np.roll(astronaut, 25, axis=1), "eileen"), (grace[:, ::-1].copy(), "grace")]:
        (face,) = client.post("/api/classify", files=upload(img), data={"model": "crew"}).json()["faces"]
        assert face["label"] == who
    r = client.post("/api/analyze", files=upload(grace), data={"models": "crew", "attributes": ""})
    (face,) = r.json()["faces"]
    assert face["crew"]["label"] == "grace"


def test_training_requests_are_checked_before_queueing(client, astronaut):
    one = [("files", ("a.jpg", jpeg(astronaut), "image/jpeg"))]
    r = client.post("/api/training", files=one, data={"name": "m", "labels": ["a"]})
    assert r.status_code == 422 and "at least 2 classes" in r.json()["detail"]
    r = client.post("/api/training", files=one * 2, data={"name": "m", "labels": ["a"]})
    assert r.status_code == 422 and "2 photos but 1 labels" in r.json()["detail"]
    r = client.post("/api/training", files=one * 2, data={"name": "../../etc", "labels": ["a", "b"]})
    assert r.status_code == 422 and "Invalid model name" in r.json()["detail"]
    txt = [("files", ("x.txt", b"plain text", "image/jpeg"))] * 4
    r = client.post("/api/training", files=txt, data={"name": "m", "labels": ["a", "a", "b", "b"]})
    assert r.status_code == 415 and "x.txt" in r.json()["detail"]


def test_model_download_upload_delete(client, trained, tmp_path, astronaut):
    from faceforge.train import load_classifier

    r = client.get("/api/models/crew/file")
    assert r.status_code == 200
    model = r.content
    (tmp_path / "crew.ffm").write_bytes(model)
    assert load_classifier(tmp_path / "crew.ffm").classes == ["eileen", "grace"]
    r = client.post("/api/models", files={"file": ("c.ffm", model)}, data={"name": "crew copy"})
    assert r.status_code == 201 and r.json()["classes"] == ["eileen", "grace"]
    assert client.post("/api/models", files={"file": ("c.ffm", model)}, data={"name": "crew copy"}).status_code == 409
    r = client.post("/api/models", files={"file": ("x.ffm", b"PK\x03\x04 broken zip")}, data={"name": "broken"})
    assert r.status_code == 422 and "not a usable faceforge model" in r.json()["detail"]
    r = client.post("/api/models", files={"file": ("x.ffm", jpeg(astronaut))}, data={"name": "broken"})
    assert r.status_code == 415
    assert client.delete("/api/models/crew copy").status_code == 200
    assert client.get("/api/models/crew copy").status_code == 404
    assert client.delete("/api/models/crew copy").status_code == 404
    assert [m["name"] for m in client.get("/api/models").json()["models"]] == ["crew"]


def test_jobs_survive_a_restart(tmp_path, astronaut, grace):
    files, labels = training_photos({"eileen": astronaut, "grace": grace}, 3)
    with TestClient(create_app(home=tmp_path, run_jobs=False)) as c:  # a server that stops before running it
        r = c.post("/api/training", files=files, data={"name": "later", "labels": labels})
        queued = r.json()["id"]
        r = c.post("/api/training", files=files, data={"name": "interrupted", "labels": labels})
        running = r.json()["id"]
    db = sqlite3.connect(tmp_path / "service.db")
    db.execute("UPDATE jobs SET status='running' WHERE id=?", (running,))  # killed mid-job
    db.commit()
    db.close()
    with TestClient(create_app(home=tmp_path)) as c:
        assert wait_job(c, queued)["status"] == "done"
        job = wait_job(c, running)
        assert job["status"] == "done", job
        assert {m["name"] for m in c.get("/api/models").json()["models"]} == {"later", "interrupted"}


def test_failed_training_job_says_why(client, astronaut):
    """Photos that pass the type check but cannot be decoded leave a class empty: the job fails
    and its error says which class and what to do."""
    broken = jpeg(astronaut)[:300]  # a JPEG header, then nothing
    files = [("files", (f"{i}.jpg", data, "image/jpeg"))
             for i, data in enumerate([jpeg(astronaut), jpeg(astronaut[:, ::-1].copy()), broken, broken[:200]])]
    r = client.post("/api/training", files=files, data={"name": "broken", "labels": ["face", "face", "cup", "cup"]})
    assert r.status_code == 202
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "failed"
    assert "cup" in job["error"], job["error"]
    assert "broken" not in [m["name"] for m in client.get("/api/models").json()["models"]]


# -- videos ------------------------------------------------------------------------------------

def test_video_job(client, tmp_path, astronaut):
    video = write_panning_video(tmp_path / "clip.avi", astronaut, frames=8, step=4)
    r = client.post("/api/videos", files={"file": ("clip.avi", video.read_bytes(), "video/x-msvideo")},
                    data={"attributes": "gender"})
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["id"])
    assert job["status"] == "done", job
    assert job["result"]["frames"] == 8
    (track,) = job["result"]["tracks"]
    assert track["labels"]["gender"] == "female"
    lines = client.get(job["result"]["frames_url"]).text.splitlines()
    assert len(lines) == 8 and json.loads(lines[-1])["faces"][0]["gender"]["label"] == "female"
    r = client.post("/api/videos", files={"file": ("clip.avi", jpeg(astronaut), "video/x-msvideo")})
    assert r.status_code == 415
    assert client.get("/api/jobs/" + "0" * 32).status_code == 404
    assert client.get("/api/jobs/../../etc").status_code == 404


# -- galleries ---------------------------------------------------------------------------------

def test_gallery_endpoints(client, astronaut, grace, coffee):
    files = [("files", (f"e{i}.jpg", jpeg(v), "image/jpeg")) for i, v in enumerate(variants(astronaut, 2))]
    files.append(("files", ("cup.jpg", jpeg(coffee), "image/jpeg")))
    r = client.post("/api/galleries/crew/people/eileen/photos", files=files)
    assert r.status_code == 201
    rep = r.json()
    assert rep["added"] == ["e0.jpg", "e1.jpg"] and rep["problems"][0]["photo"] == "cup.jpg"
    client.post("/api/galleries/crew/people/grace/photos", files=[("files", ("g.jpg", jpeg(grace), "image/jpeg"))])
    assert client.get("/api/galleries").json()["galleries"] == [{"name": "crew", "people": 2}]
    people = {p["name"]: p["faces"] for p in client.get("/api/galleries/crew/people").json()["people"]}
    assert people == {"eileen": 2, "grace": 1}
    (face,) = client.post("/api/galleries/crew/identify", files=upload(np.roll(astronaut, 30, axis=1))).json()["faces"]
    assert face["label"] == "eileen"
    r = client.post("/api/galleries/crew/verify", files=upload(grace), data={"person": "grace"})
    assert r.json()["same"] is True
    r = client.post("/api/galleries/crew/verify", files=upload(grace), data={"person": "eileen"})
    assert r.json()["same"] is False
    r = client.post("/api/analyze", files=upload(grace), data={"gallery": "crew", "attributes": "age"})
    (face,) = r.json()["faces"]
    assert face["identity"]["label"] == "grace" and "age" in face
    r = client.delete("/api/galleries/crew/people/eileen")
    assert r.json() == {"deleted": "eileen", "faces": 2}
    (face,) = client.post("/api/galleries/crew/identify", files=upload(astronaut)).json()["faces"]
    assert face["label"] == "unknown"
    assert client.delete("/api/galleries/crew/people/eileen").status_code == 404
    assert client.post("/api/galleries/nope/identify", files=upload(astronaut)).status_code == 404
    r = client.post("/api/galleries/crew/people/..%2F..%2Fx/photos", files=files[:1])
    assert r.status_code in (404, 422)
    assert client.delete("/api/galleries/crew").status_code == 200
    assert client.get("/api/galleries").json()["galleries"] == []


# -- live --------------------------------------------------------------------------------------

def test_live_websocket(client, astronaut):
    with client.websocket_connect("/api/live?attributes=gender,emotion") as ws:
        for i in range(3):
            ws.send_bytes(jpeg(np.roll(astronaut, 5 * i, axis=1)))
            msg = ws.receive_json()
            assert msg["frame"] == i
        (face,) = msg["faces"]
        assert face["gender"]["label"] == "female" and face["emotion"]["label"] == "happy"
        ws.send_bytes(b"not an image")
        assert "error" in ws.receive_json()
        ws.send_bytes(jpeg(astronaut))
        assert ws.receive_json()["faces"][0]["track"] == face["track"]  # same track after the bad frame
    with client.websocket_connect("/api/live?attributes=height") as ws:
        assert "height" in ws.receive_json()["error"]


# -- concurrency -------------------------------------------------------------------------------

def test_concurrent_requests(client, trained, astronaut, grace):
    """Requests from several threads at once all succeed and each gets its own image's answer."""
    from concurrent.futures import ThreadPoolExecutor

    imgs = {"eileen": jpeg(astronaut[::2, ::2].copy()), "grace": jpeg(grace[::2, ::2].copy())}

    def call(i: int) -> tuple[str, str]:
        who = "eileen" if i % 2 else "grace"
        r = client.post("/api/classify", files={"file": ("x.jpg", imgs[who], "image/jpeg")}, data={"model": "crew"})
        return who, r.json()["faces"][0]["label"] if r.status_code == 200 else f"HTTP {r.status_code}"

    with ThreadPoolExecutor(8) as ex:
        res = list(ex.map(call, range(24)))
    assert all(who == got for who, got in res), res


def test_training_works_from_a_plain_script(tmp_path):
    """A script that embeds the app needs no main-module guard (training runs in a child process)."""
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "plain.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r})
        from fastapi.testclient import TestClient
        from conftest import jpeg, variants
        from skimage import data
        from matplotlib import cbook
        from faceforge.sources import load_image
        from faceforge.service import create_app
        grace = load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
        files, labels = [], []
        for label, img in [("eileen", data.astronaut()), ("grace", grace)]:
            for i, v in enumerate(variants(img, 2)):
                files.append(("files", (f"{{i}}.jpg", jpeg(v), "image/jpeg")))
                labels.append(label)
        with TestClient(create_app(home={str(tmp_path / 'home')!r})) as c:
            job = c.post("/api/training", files=files, data={{"name": "m", "labels": labels}}).json()
            while job["status"] not in ("done", "failed"):
                time.sleep(0.2)
                job = c.get("/api/jobs/" + job["id"]).json()
        print(job["status"], job["error"])
    """))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert r.stdout.strip().startswith("done"), r.stdout + r.stderr
