"""The HTTP API against a hostile but fair client (issue 14): malformed URLs, addresses that map
onto private ones, DNS rebinding, text frames on the WebSocket, the key in the query string,
errors on a keep-alive connection, and the job runner's faults (a chatty child, a hung one,
cancel, restarts), with no server path in any answer and no input left behind."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import socket
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from conftest import jpeg, serve_image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from faceforge.service import create_app, safety  # noqa: E402


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile-home")


@pytest.fixture(scope="module")
def client(home):
    with TestClient(create_app(home=home, run_jobs=False, url_timeout_s=2)) as c:
        yield c


def no_server_path(text: str, home: Path) -> bool:
    import tempfile

    places = {str(home), os.path.realpath(home), tempfile.gettempdir(), str(Path.home()), sys.prefix}
    return not any(p in text for p in places)


# -- malformed URLs: 400 with a clear message, never a 500 -------------------------------------

@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/", "http://127.0.0.1:-1/", "http://127.0.0.1:abc/",
                                 "http://[::1/", "http://[zzzz]/", "https://example.org:65536/a.jpg",
                                 "http://[::1]:x/", "http://[1.2.3.4]/"])
def test_malformed_urls_are_refused(client, url):
    r = client.post("/api/detect", data={"url": url})
    assert r.status_code == 400, r.text
    assert "malformed" in r.json()["detail"] and "http" in r.json()["detail"]


def test_urls_with_credentials_are_refused(client):
    r = client.post("/api/detect", data={"url": "http://user:secret@example.org/a.jpg"})
    assert r.status_code == 400 and "passwords" in r.json()["detail"]


# -- addresses that lead to private ones ---------------------------------------------------------

MAPPED = {
    "6to4 of 127.0.0.1": "2002:7f00:1::1",
    "6to4 of 10.0.0.1": "2002:a00:1::1",
    "6to4 of 192.168.1.1": "2002:c0a8:101::1",
    "6to4 of 169.254.169.254": "2002:a9fe:a9fe::1",
    "IPv4-mapped 127.0.0.1": "::ffff:127.0.0.1",
    "IPv4-mapped 10.1.2.3": "::ffff:a01:203",
    "IPv4-compatible 127.0.0.1": "::127.0.0.1",
    "NAT64 of 127.0.0.1": "64:ff9b::7f00:1",
    "NAT64 of 10.0.0.1": "64:ff9b::a00:1",
    "NAT64 of 169.254.169.254": "64:ff9b::a9fe:a9fe",
    "local NAT64 of 192.168.0.1": "64:ff9b:1::c0a8:1",
    "Teredo, client 127.0.0.1": "2001:0:4136:e378:8000:63bf:80ff:fffe",
    "loopback": "::1",
    "unique local": "fd00::1",
    "link-local": "fe80::1",
    "multicast": "ff02::1",
    "unspecified": "::",
}


@pytest.mark.parametrize("ip", MAPPED.values(), ids=MAPPED.keys())
def test_addresses_mapping_onto_private_ones_are_refused(client, ip):
    assert not safety.address_allowed(ip, allow_private=False)
    r = client.post("/api/detect", data={"url": f"http://[{ip}]/a.jpg"})
    assert r.status_code == 400 and "refused" in r.json()["detail"], r.text


@pytest.mark.parametrize("ip", ["8.8.8.8", "2606:4700:4700::1111", "2002:808:808::1", "64:ff9b::808:808"])
def test_public_addresses_stay_allowed(ip):
    assert safety.address_allowed(ip, allow_private=False)


@pytest.mark.parametrize("ip", ["ff02::1", "224.0.0.1", "::", "0.0.0.0", "::ffff:0.0.0.0", "not an address"])
def test_some_addresses_are_refused_even_when_private_ones_are_allowed(ip):
    assert not safety.address_allowed(ip, allow_private=True)


# -- DNS rebinding: the fetch connects to the address it checked ---------------------------------

@pytest.fixture()
def image_server(astronaut):
    hits: list[tuple[str, str]] = []
    port, stop = serve_image(jpeg(astronaut), hits)
    yield port, hits
    stop()


@pytest.fixture()
def rebinding(monkeypatch):
    """A resolver for ``rebind.test`` that gives ``answers[i]`` at its i-th call (the last one
    after that); other names and address literals resolve as usual. Returns (answers, calls)."""
    real = socket.getaddrinfo
    answers: list[str] = []
    calls: list[str] = []

    def fake(host, port, *args, **kwargs):
        if host != "rebind.test":
            return real(host, port, *args, **kwargs)
        ip = answers[min(len(calls), len(answers) - 1)]
        calls.append(ip)
        return real(ip, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    monkeypatch.setattr(safety, "resolve", lambda *a, **k: socket.getaddrinfo(*a, **k))
    return answers, calls


def test_fetch_connects_to_the_vetted_address(tmp_path, image_server, rebinding):
    """First answer 127.0.0.1 (the image server, allowed here), later answers a black hole:
    the fetch must use the first one, for the redirect hop as well, with the name as Host."""
    port, hits = image_server
    answers, calls = rebinding
    answers[:] = ["127.0.0.1", "10.255.255.1"]
    with TestClient(create_app(home=tmp_path, allow_private_urls=True, run_jobs=False, url_timeout_s=2)) as c:
        r = c.post("/api/detect", data={"url": f"http://rebind.test:{port}/astronaut.jpg"})
        assert r.status_code == 200, r.text
        assert len(r.json()["faces"]) == 1
        assert hits == [("/astronaut.jpg", f"rebind.test:{port}")]
        assert calls == ["127.0.0.1"]  # resolved once
        calls.clear()
        hits.clear()
        answers[:] = ["127.0.0.1", "127.0.0.1", "10.255.255.1"]
        r = c.post("/api/detect", data={"url": f"http://rebind.test:{port}/redirect"})
        assert r.status_code == 200, r.text  # each hop is resolved once, checked and connected to
        assert calls == ["127.0.0.1", "127.0.0.1"]
        assert [h[0] for h in hits] == ["/redirect", "/astronaut.jpg"]


def test_rebinding_to_a_private_address_never_reaches_it(tmp_path, image_server, rebinding):
    """First answer public, later answers the internal server: it must get no request at all."""
    port, hits = image_server
    answers, calls = rebinding
    answers[:] = ["203.0.114.1", "127.0.0.1"]  # a public address that answers nothing here
    with TestClient(create_app(home=tmp_path, run_jobs=False, url_timeout_s=1)) as c:
        r = c.post("/api/detect", data={"url": f"http://rebind.test:{port}/astronaut.jpg"})
    assert r.status_code in (400, 422), r.text
    assert hits == []
    assert calls == ["203.0.114.1"]


# -- the WebSocket -------------------------------------------------------------------------------

def test_text_frame_on_the_live_socket_gets_an_error_and_a_close(client, astronaut):
    with client.websocket_connect("/api/live?attributes=gender") as ws:
        ws.send_text('{"frame": "hello"}')
        msg = ws.receive_json()
        assert "binary" in msg["error"]
        with pytest.raises(WebSocketDisconnect) as e:
            ws.receive_json()
        assert e.value.code == 1003
    with client.websocket_connect("/api/live?attributes=gender") as ws:  # the server is fine
        ws.send_bytes(jpeg(astronaut))
        assert ws.receive_json()["faces"][0]["gender"]["label"] == "female"


# -- the API key: headers only, except on the WebSocket -------------------------------------------

@pytest.mark.parametrize("method,path", [("get", "/api/models"), ("get", "/api/jobs"), ("get", "/api/galleries"),
                                         ("post", "/api/detect")])
def test_key_in_the_query_string_is_refused(tmp_path, method, path):
    with TestClient(create_app(home=tmp_path, api_key="s3cret", run_jobs=False)) as c:
        r = getattr(c, method)(f"{path}?key=s3cret")
        assert r.status_code == 401, r.text
        assert "X-API-Key" in r.json()["detail"]
        assert getattr(c, method)(path, headers={"X-API-Key": "s3cret"}).status_code != 401


def test_key_in_the_query_string_works_on_the_websocket(tmp_path, astronaut):
    with TestClient(create_app(home=tmp_path, api_key="s3cret", run_jobs=False)) as c:
        with c.websocket_connect("/api/live?attributes=gender&key=s3cret") as ws:
            ws.send_bytes(jpeg(astronaut))
            assert ws.receive_json()["faces"][0]["gender"]["label"] == "female"
        with c.websocket_connect("/api/live?attributes=gender", headers={"X-API-Key": "s3cret"}) as ws:
            ws.send_bytes(jpeg(astronaut))
            assert "faces" in ws.receive_json()


def test_key_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEFORGE_API_KEY", "from-env")
    with TestClient(create_app(home=tmp_path, run_jobs=False)) as c:
        assert c.get("/api/models").status_code == 401
        assert c.get("/api/models", headers={"Authorization": "Bearer from-env"}).status_code == 200


# -- errors on a keep-alive connection -----------------------------------------------------------

def test_the_next_request_on_the_connection_works_after_any_error(tmp_path, caplog):
    """On a real server: a refused URL, an unexpected exception (answered by the last-resort
    handler: generic 500, traceback in the log only) and then a normal request, all on one
    keep-alive connection."""
    import uvicorn

    app = create_app(home=tmp_path, run_jobs=False)

    def boom() -> None:
        raise RuntimeError(f"secret detail in {tmp_path}")

    app.add_api_route("/api/boom", boom)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="on"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    end = time.time() + 20
    while not server.started and time.time() < end:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        body = "url=http%3A%2F%2F127.0.0.1%3A99999%2F"
        conn.request("POST", "/api/detect", body, {"Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        assert r.status == 400 and "malformed" in json.loads(r.read())["detail"]
        with caplog.at_level("ERROR", logger="faceforge.service"):
            conn.request("GET", "/api/boom")
            r = conn.getresponse()
            text = r.read().decode()
        assert r.status == 500 and "Internal error" in json.loads(text)["detail"]
        assert "secret" not in text and "RuntimeError" not in text
        assert "secret detail" in caplog.text  # the traceback stays on the server
        conn.request("GET", "/api/health")
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["status"] == "ok"
    finally:
        conn.close()
        server.should_exit = True
        t.join(10)


# -- no server path in any answer ----------------------------------------------------------------

def test_no_server_path_in_error_answers(client, home, astronaut):
    answers = [
        client.post("/api/models", data={"name": "m"},
                    files={"file": ("m.ffm", b"PK\x03\x04 not really a zip", "application/zip")}),
        client.post("/api/detect", files={"file": ("a.jpg", jpeg(astronaut)[:300], "image/jpeg")}),
        client.post("/api/detect", data={"top_k": "many"}),
        client.get("/api/jobs/" + "0" * 32),
    ]
    for r in answers:
        assert 400 <= r.status_code < 500, r.text
        assert no_server_path(r.text, home), r.text


def test_scrub_paths_keeps_names_relative(home):
    from faceforge.service.errors import scrub_paths

    msg = f"cannot read {home}/jobs/abc/photos/00001.png: truncated; see {os.path.realpath(home)}/x.log."
    assert scrub_paths(msg, home) == "cannot read jobs/abc/photos/00001.png: truncated; see x.log."


# -- jobs ----------------------------------------------------------------------------------------

BODIES = '''
import os, subprocess, sys, time
from faceforge.service.job_child import progress

def loud(d, params, home):
    for i in range(400):  # 400 KB on stderr: far more than a pipe holds
        sys.stderr.write(f"warning {i}: " + "x" * 1000 + "\\n")
    sys.stderr.flush()
    progress(0.5, "half way")
    return "done", {"where": str(d / "photos" / "a.png"), "lines": 400}

def hang(d, params, home):
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    with open(params["pidfile"], "w") as f:
        f.write(f"{os.getpid()} {p.pid}")
    time.sleep(300)
    return "done", {}

def fail(d, params, home):
    return "error", f"cannot read {d / 'photos' / 'a.png'}: broken"
'''


@pytest.fixture()
def bodies(tmp_path, monkeypatch):
    """Job bodies of a test module that the job's child process can import."""
    mod = tmp_path / "mods"
    mod.mkdir()
    (mod / "hostile_jobs.py").write_text(textwrap.dedent(BODIES))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(mod), os.environ.get("PYTHONPATH", "")]))
    return {k: f"hostile_jobs:{k}" for k in ("loud", "hang", "fail")}


def make_app(home: Path, bodies: dict[str, str], **settings):
    app = create_app(home=home, **settings)
    app.state.runner.entries.update(bodies)
    return app


def add_job(app, kind: str, **params) -> tuple[str, Path]:
    h = app.state.home
    jid, d = h.new_job(kind, params)
    (d / "photos").mkdir()
    (d / "photos" / "a.png").write_bytes(b"input")
    h.queue_job(jid)
    app.state.runner.wake()
    return jid, d


def wait_for(c, jid: str, states=("done", "failed", "cancelled"), timeout: float = 60.0) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        job = c.get(f"/api/jobs/{jid}").json()
        if job["status"] in states:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {jid} still {job['status']} after {timeout} s: {job}")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def wait_pids(path: Path, timeout: float = 30.0) -> list[int]:
    end = time.time() + timeout
    while time.time() < end:
        if path.exists() and path.read_text().strip():
            return [int(x) for x in path.read_text().split()]
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written")


def gone(pids: list[int], timeout: float = 10.0) -> bool:
    end = time.time() + timeout
    while time.time() < end and any(alive(p) for p in pids):
        time.sleep(0.05)
    return not any(alive(p) for p in pids)


def test_new_job_records_kind_and_params(tmp_path):
    with TestClient(create_app(home=tmp_path, run_jobs=False)) as c:
        jid, d = c.app.state.home.new_job("video", {"every": 5})
        job = c.get(f"/api/jobs/{jid}").json()
        assert (job["kind"], job["status"], job["params"]) == ("video", "preparing", {"every": 5})
    with TestClient(create_app(home=tmp_path)) as c:  # an upload cut off by a restart is swept
        assert c.get(f"/api/jobs/{jid}").status_code == 404
        assert not d.exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_child_writing_lots_to_stderr_finishes(tmp_path, bodies):
    with TestClient(make_app(tmp_path, bodies)) as c:
        jid, d = add_job(c.app, "loud")
        job = wait_for(c, jid, timeout=60)
        assert job["status"] == "done", job
        assert job["result"]["lines"] == 400
        assert job["result"]["where"] == "photos/a.png"  # no server path in results
        log = (d / "stderr.log").read_text()
        assert "warning 399" in log and len(log) <= 64 * 1024  # the tail is kept
        assert not (d / "photos").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_job_timeout_kills_the_child_and_its_processes(tmp_path, bodies):
    with TestClient(make_app(tmp_path, bodies, job_timeout_s=3)) as c:
        jid, d = add_job(c.app, "hang", pidfile=str(tmp_path / "pids"))
        pids = wait_pids(tmp_path / "pids")
        job = wait_for(c, jid, timeout=30)
        assert job["status"] == "failed" and "job_timeout_s" in job["error"], job
        assert gone(pids)
        assert not (d / "photos").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_cancel_a_running_job(tmp_path, bodies):
    with TestClient(make_app(tmp_path, bodies)) as c:
        jid, d = add_job(c.app, "hang", pidfile=str(tmp_path / "pids"))
        pids = wait_pids(tmp_path / "pids")
        later, later_dir = add_job(c.app, "loud")  # queued behind the hung one
        r = c.post(f"/api/jobs/{jid}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
        assert gone(pids)
        assert not (d / "photos").exists()
        assert wait_for(c, later)["status"] == "done"  # the next job is not blocked
        assert c.post(f"/api/jobs/{jid}/cancel").status_code == 409
        assert c.post(f"/api/jobs/{'0' * 32}/cancel").status_code == 404


def test_cancel_a_queued_job(tmp_path, bodies):
    with TestClient(make_app(tmp_path, bodies, run_jobs=False)) as c:
        jid, d = add_job(c.app, "loud")
        r = c.post(f"/api/jobs/{jid}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        assert not (d / "photos").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_job_interrupted_too_often_is_not_run_again(tmp_path, bodies):
    """Three server stops while the job runs (each kills its child); at the fourth start it is
    marked failed with its error instead of being run once more."""
    pidfile = tmp_path / "pids"
    jid = None
    for _attempt in range(3):
        app = make_app(tmp_path / "home", bodies, job_attempts=3)
        with TestClient(app) as c:
            if jid is None:
                jid, d = add_job(app, "hang", pidfile=str(pidfile))
            pids = wait_pids(pidfile)
            assert c.get(f"/api/jobs/{jid}").json()["status"] == "running"
        pidfile.unlink()
        assert gone(pids)  # a stopping server leaves no job process behind
    with TestClient(make_app(tmp_path / "home", bodies, job_attempts=3)) as c:
        job = c.get(f"/api/jobs/{jid}").json()
        assert job["status"] == "failed" and "interrupted 3 times" in job["error"], job
        time.sleep(1.0)
        assert not pidfile.exists()  # not started again
        assert not (d / "photos").exists()


def test_failed_job_deletes_its_inputs_and_hides_paths(tmp_path, bodies):
    with TestClient(make_app(tmp_path, bodies)) as c:
        jid, d = add_job(c.app, "fail")
        job = wait_for(c, jid)
        assert job["status"] == "failed"
        assert job["error"] == "cannot read photos/a.png: broken"
        assert not (d / "photos").exists()


def test_failed_training_and_video_jobs_delete_their_uploads(tmp_path, astronaut):
    broken = jpeg(astronaut)[:300]
    files = [("files", (f"{i}.jpg", data, "image/jpeg"))
             for i, data in enumerate([jpeg(astronaut), jpeg(astronaut[:, ::-1].copy()), broken, broken[:200]])]
    with TestClient(create_app(home=tmp_path)) as c:
        train = c.post("/api/training", files=files, data={"name": "broken", "labels": ["a", "a", "b", "b"]}).json()
        video = c.post("/api/videos", files={"file": ("v.avi", b"RIFF\0\0\0\0AVI " + b"\0" * 500, "video/avi")},
                       data={"attributes": "gender"}).json()
        for job in (train, video):
            job = wait_for(c, job["id"], timeout=120)
            assert job["status"] == "failed", job
            assert no_server_path(json.dumps(job), tmp_path), job
            left = sorted(p.name for p in (tmp_path / "jobs" / job["id"]).iterdir())
            assert set(left) <= {"stderr.log"}, left
