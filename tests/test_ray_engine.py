"""The Ray engine (issue 15): same outcomes as the local engine, on a local Ray and on a cluster.

One local Ray is shared by the whole module (Ray is slow to start on two cores); the cluster
test at the end starts its own head node with ``ray start --head --block`` and always ends it.
"""

from __future__ import annotations

import filecmp
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'faceforge[cluster]')")

import faceforge
from conftest import jpeg
from faceforge.attributes import MODELS_DIR
from faceforge.cli.main import app
from faceforge.runner import LocalEngine, get_engine
from faceforge.runner import ray_engine as re_
from faceforge.tasks import detect_files

runner = CliRunner()
SRC = str(Path(faceforge.__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (2 CPUs) for the module; shut down at its end."""
    re_.connect(None, workers=2)
    yield
    ray.shutdown()
    re_._connected = None


@pytest.fixture(scope="module")
def photos(tmp_path_factory, astronaut, grace):
    """Real faces (the astronaut and Grace Hopper, flipped and shifted) and one broken file."""
    d = tmp_path_factory.mktemp("photos")
    imgs = {"a0": astronaut, "a1": astronaut[:, ::-1], "a2": np.roll(astronaut, 40, axis=1),
            "g0": grace, "g1": grace[:, ::-1], "g2": np.roll(grace, 30, axis=0)}
    for name, img in imgs.items():
        (d / f"{name}.jpg").write_bytes(jpeg(np.ascontiguousarray(img)))
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    return d


def _boxes(paths, engine):
    skipped: list[tuple[str, str]] = []
    res = [(f.meta["source"], np.round(f.xyxy, 3).tolist()) for f in
           detect_files(paths, engine=engine, workers=2, skipped=skipped)]
    return res, skipped


def test_ray_detect_matches_local(local_ray, photos):
    local, local_skipped = _boxes([photos], LocalEngine(2))
    ray_res, ray_skipped = _boxes([photos], get_engine("ray", workers=2))
    assert len(local) == 6 and all(b for _, b in local)            # every photo has its face
    assert ray_res == local
    assert ray_skipped == local_skipped and len(ray_skipped) == 1  # the broken file, same message
    assert "broken.jpg" in ray_skipped[0][0] and ray_skipped[0][1]


def test_ray_stopped_early_then_reused(local_ray, photos):
    """A job read only in part frees its actors; the next job still gets every outcome, in order."""
    eng = get_engine("ray", workers=2)
    it = detect_files([photos], engine=eng, skipped=[])
    assert len(next(it)) == 1
    it.close()                                                      # stopped after one image
    local, _ = _boxes([photos], LocalEngine(2))
    assert _boxes([photos], eng)[0] == local


def test_ray_task_not_importable_on_workers(local_ray, photos):
    """A task the workers cannot import (here: defined in this test file) is one clear error."""
    from faceforge.errors import ParameterError
    from faceforge.runner import run

    with pytest.raises(ParameterError, match="importable"):
        list(run(_shape, [photos], engine=get_engine("ray", workers=2)))
    assert len(_boxes([photos], get_engine("ray", workers=2))[0]) == 6   # the engine works on afterwards


def _shape(image, frame):
    return image.shape


def _autolabel(photos: Path, out: Path, *args: str) -> None:
    r = runner.invoke(app, ["autolabel", str(photos), "-m", str(MODELS_DIR / "gender.ffm"), "-o", str(out),
                            "--min-confidence", "0.5", *args])
    assert r.exit_code == 0, r.output


def _same_tree(a: Path, b: Path) -> None:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != "summary.json")
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.name != "summary.json")
    assert files_a == files_b and any(p.suffix == ".jpg" for p in files_a)
    for rel in files_a:
        assert filecmp.cmp(a / rel, b / rel, shallow=False), rel


@pytest.fixture(scope="module")
def local_labels(photos, tmp_path_factory):
    out = tmp_path_factory.mktemp("al") / "local"
    _autolabel(photos, out, "--engine", "local", "--workers", "2")
    return out


def test_autolabel_ray_equals_local(local_ray, photos, local_labels, tmp_path):
    _autolabel(photos, tmp_path / "ray", "--engine", "ray")
    _same_tree(local_labels, tmp_path / "ray")
    assert (tmp_path / "ray" / "manifest.csv").read_text() == (local_labels / "manifest.csv").read_text()


def test_cli_engine_options_checked():
    r = runner.invoke(app, ["detect", ".", "--engine", "rya"])
    assert r.exit_code != 0 and "ray" in r.output                   # unknown engine: the nearest is named
    r = runner.invoke(app, ["detect", ".", "--engine", "local", "--ray-address", "127.0.0.1:1"])
    assert r.exit_code != 0 and "--ray-address" in r.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_head(env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    """A ``ray start --head --block`` on free ports; up to 3 tries, since a port picked free can be
    taken before Ray binds it (another suite or a cluster on this machine). Fails with Ray's own log."""
    ray_cli = Path(sys.executable).with_name("ray")
    log = ""
    for _ in range(3):
        port, agent, agent_grpc, env_agent, metrics = (_free_port() for _ in range(5))
        temp = tempfile.mkdtemp(prefix="ffray", dir="/tmp")  # short: Ray's socket paths are length-limited
        out = Path(temp) / "start.log"
        with out.open("wb") as fh:
            head = subprocess.Popen(
                [str(ray_cli), "start", "--head", "--block", f"--port={port}", "--num-cpus=1",
                 "--include-dashboard=false", f"--temp-dir={temp}", "--node-ip-address=127.0.0.1",
                 f"--dashboard-agent-listen-port={agent}",
                 f"--dashboard-agent-grpc-port={agent_grpc}", f"--runtime-env-agent-port={env_agent}",
                 f"--metrics-export-port={metrics}"],
                env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while head.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return head, port
            except OSError:
                time.sleep(0.5)
        _stop_head(head)
        log = out.read_text(errors="replace")[-3000:]
    raise AssertionError(f"ray start --head did not come up in 3 tries; its last output:\n{log}")


def _stop_head(head: subprocess.Popen) -> None:
    if head.poll() is not None:
        return
    head.send_signal(signal.SIGTERM)  # --block: ends the head node's processes with it
    try:
        head.wait(45)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait(10)


def test_autolabel_on_a_ray_cluster(local_ray, photos, local_labels, tmp_path):
    """``ray start --head`` here, then ``--ray-address``: the same files as the local engine."""
    ray.shutdown()  # this process joins the cluster instead of the module's local Ray
    re_._connected = None
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "RAY_USAGE_STATS_ENABLED": "0"}
    head, port = _start_head(env)
    try:
        _autolabel(photos, tmp_path / "cluster", "--ray-address", f"127.0.0.1:{port}")
        assert re_._connected == f"127.0.0.1:{port}"
        assert ray.cluster_resources().get("CPU") == 1.0              # the cluster's one CPU, not this machine's
        _same_tree(local_labels, tmp_path / "cluster")
    finally:
        ray.shutdown()
        re_._connected = None
        _stop_head(head)


def test_train_embeds_on_ray_like_local(local_ray, photos, tmp_path, monkeypatch):
    """`train --engine ray`: the embedding step runs on Ray (a fresh cache, so every photo is shipped)
    and the model equals the one embedded here."""
    import json

    data = tmp_path / "data"
    for cls, names in (("astronaut", ("a0", "a1", "a2")), ("grace", ("g0", "g1", "g2"))):
        (data / cls).mkdir(parents=True)
        for n in names:
            (data / cls / f"{n}.jpg").symlink_to(photos / f"{n}.jpg")
    reports = {}
    for engine in ("local", "ray"):
        monkeypatch.setenv("FACEFORGE_CACHE", str(tmp_path / f"cache-{engine}"))
        r = runner.invoke(app, ["train", str(data), "-o", str(tmp_path / f"{engine}.ffm"), "-e", "dlib-resnet",
                                "--val", "0", "--no-curve", "--engine", engine, "--workers", "2"])
        assert r.exit_code == 0, r.output
        rep = json.loads((tmp_path / f"{engine}.report.json").read_text())
        assert rep["timings"]["cache_misses"] == 6, rep["timings"]  # every photo embedded by that engine
        reports[engine] = rep
    from faceforge.heads import load_bundle

    (m_local, a_local), (m_ray, a_ray) = (load_bundle(tmp_path / f"{e}.ffm") for e in ("local", "ray"))
    assert m_local["classes"] == m_ray["classes"] and a_local.keys() == a_ray.keys()
    for k in a_local:
        assert np.allclose(a_local[k], a_ray[k], atol=1e-5), k


def _gallery_rows(path: Path) -> list[tuple]:
    import sqlite3

    with sqlite3.connect(path) as db:
        return db.execute("SELECT p.name, f.sha256, f.source, f.box, f.embedding FROM faces f "
                          "JOIN people p ON p.id=f.person ORDER BY f.source").fetchall()


def test_gallery_enrol_on_ray_like_here(local_ray, photos, tmp_path):
    """`gallery enrol --engine ray` stores the same faces (embedding bytes, hashes, boxes) as enrolling
    here, reports the broken file the same way, and a second enrol of the same photos adds nothing."""
    files = sorted(str(p) for p in photos.glob("a*.jpg")) + [str(photos / "broken.jpg")]
    outputs = {}
    for how, extra in (("here", []), ("ray", ["--engine", "ray"]), ("local", ["--workers", "2"])):
        r = runner.invoke(app, ["gallery", "enrol", "astronaut", *files, "-f", str(tmp_path / f"{how}.db"), *extra])
        assert r.exit_code == 0, r.output
        outputs[how] = r.output
        assert "3 photo(s) added" in r.output and "1 skipped" in r.output and "broken.jpg" in r.output
    here = _gallery_rows(tmp_path / "here.db")
    assert len(here) == 3
    assert _gallery_rows(tmp_path / "ray.db") == here == _gallery_rows(tmp_path / "local.db")
    r = runner.invoke(app, ["gallery", "enrol", "astronaut", *files, "-f", str(tmp_path / "here.db"),
                            "--engine", "ray"])
    assert r.exit_code == 0 and "0 photo(s) added, 3 already there" in r.output, r.output


def test_evaluate_and_distil_take_the_engine(local_ray, photos, local_labels, tmp_path, monkeypatch):
    """`evaluate --engine ray` embeds its test photos on Ray (a fresh cache) with the report of local;
    `distil --engine ray` trains its student there."""
    import json

    model = str(MODELS_DIR / "gender.ffm")
    reports = {}
    for engine in ("local", "ray"):
        monkeypatch.setenv("FACEFORGE_CACHE", str(tmp_path / f"cache-{engine}"))
        rep = tmp_path / f"{engine}.json"
        r = runner.invoke(app, ["evaluate", model, str(local_labels), "--engine", engine, "--workers", "2",
                                "--report", str(rep)])
        assert r.exit_code == 0, r.output
        reports[engine] = json.loads(rep.read_text())
    assert reports["ray"]["accuracy"] == reports["local"]["accuracy"]
    assert reports["ray"]["confusion_matrix"] == reports["local"]["confusion_matrix"]
    r = runner.invoke(app, ["distil", str(local_labels), "-o", str(tmp_path / "student.ffm"), "-e", "agegender",
                            "--head", "logreg", "--engine", "ray"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "student.ffm").is_file() and "student written" in r.output


def test_service_training_job_on_ray(photos, tmp_path, monkeypatch):
    """A service started with engine=ray runs its training jobs' embedding on Ray (the job's child
    starts a local Ray) and the job's model is the one trained here."""
    from fastapi.testclient import TestClient

    from faceforge.service import create_app

    monkeypatch.setenv("FACEFORGE_CACHE", str(tmp_path / "cache"))
    files = [("files", (f"{n}.jpg", (photos / f"{n}.jpg").read_bytes(), "image/jpeg"))
             for n in ("a0", "a1", "a2", "g0", "g1", "g2")]
    labels = ["astronaut"] * 3 + ["grace"] * 3
    with TestClient(create_app(home=tmp_path / "home", engine="ray")) as c:
        r = c.post("/api/training", files=files, data={"name": "crew", "labels": labels, "embedder": "dlib-resnet",
                                                       "head": "logreg"})
        assert r.status_code == 202, r.text
        end = time.time() + 240
        while (job := c.get(f"/api/jobs/{r.json()['id']}").json())["status"] not in ("done", "failed"):
            assert time.time() < end, job
            time.sleep(0.5)
        assert job["status"] == "done", job
        assert job["result"]["timings"]["cache_misses"] == 6
        assert job["result"]["engine"] == "ray"                    # the child embedded on a local Ray
        res = c.post("/api/classify", files={"file": ("g.jpg", (photos / "g1.jpg").read_bytes(), "image/jpeg")},
                     data={"model": "crew"})
        assert res.status_code == 200 and res.json()["faces"][0]["label"] == "grace", res.text
