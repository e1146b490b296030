"""Scheduled pipelines of the service (issue 16, point 3): the real app (TestClient), real APScheduler,
real SQLite, real job child processes, on real faces (the astronaut and Grace Hopper).

CRUD and validation, the collect_roots rule on hostile paths, crontab weekdays, a schedule that survives
a restart and runs (a ``train`` step making a model), a run that stops at its failing step, a firing
skipped while a run is still going, and catch-up after downtime.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from conftest import jpeg, shared_path, variants

pytest.importorskip("fastapi")
pytest.importorskip("apscheduler")
from fastapi.testclient import TestClient  # noqa: E402

from faceforge.service import create_app  # noqa: E402

DAILY = "0 2 * * *"


def train_step(data: str = "people", output: str = "people.ffm", **options) -> dict:
    return {"step": "train", "data": data, "output": output, "embedder": "dlib-resnet", "head": "logreg", **options}


def body(name: str = "nightly", cron: str = DAILY, steps: list | None = None, **fields) -> dict:
    return {"name": name, "cron": cron, "steps": steps or [train_step()], **fields}


def wait_job(client, job_id: str, timeout: float = 120.0) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not end in {timeout} s: {job}")


def fire_soon(app, sid: str) -> None:
    """Move the schedule's next firing (APScheduler's own job) to now."""
    app.state.scheduler.timer.modify_job(sid, next_run_time=datetime.now(timezone.utc) + timedelta(seconds=0.2))


def runs(client, sid: str) -> dict:
    r = client.get(f"/api/schedules/{sid}/runs")
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def people(tmp_path_factory, astronaut, grace) -> Path:
    """A home whose collect root holds ``people/{eileen,grace}/`` (3 real photos each)."""
    home = tmp_path_factory.mktemp("sched-home")
    for who, img in (("eileen", astronaut), ("grace", grace)):
        d = home / "collect" / "people" / who
        d.mkdir(parents=True)
        for i, v in enumerate(variants(img, 3)):
            (d / f"{i}.jpg").write_bytes(jpeg(v))
    return home


@pytest.fixture()
def quiet(tmp_path):
    """A service that runs no jobs (its runs stay queued) but runs its timer."""
    with TestClient(create_app(home=tmp_path, run_jobs=False)) as c:
        yield c


# -- CRUD and validation ---------------------------------------------------------------------------

def test_create_list_change_enable_delete(quiet):
    c = quiet
    r = c.post("/api/schedules", json=body(timezone="Europe/Paris"))
    assert r.status_code == 201, r.text
    s = r.json()
    sid = s["id"]
    assert (s["name"], s["cron"], s["timezone"], s["enabled"], s["catch_up"]) == ("nightly", DAILY, "Europe/Paris",
                                                                                  True, True)
    assert s["steps"] == [train_step()] and s["last_run"] is None and s["last_status"] is None
    nxt = datetime.fromtimestamp(s["next_run"], ZoneInfo("Europe/Paris"))
    assert (nxt.hour, nxt.minute) == (2, 0) and 0 < s["next_run"] - time.time() <= 86400
    assert c.app.state.scheduler.timer.get_job(sid) is not None
    assert [x["id"] for x in c.get("/api/schedules").json()["schedules"]] == [sid]
    assert c.get(f"/api/schedules/{sid}").json()["name"] == "nightly"

    r = c.patch(f"/api/schedules/{sid}", json={"cron": "30 6 * * 1-5", "name": "weekdays"})
    assert r.status_code == 200, r.text
    s = r.json()
    assert (s["name"], s["cron"], s["timezone"]) == ("weekdays", "30 6 * * 1-5", "Europe/Paris")
    nxt = datetime.fromtimestamp(s["next_run"], ZoneInfo("Europe/Paris"))
    assert (nxt.hour, nxt.minute) == (6, 30) and nxt.weekday() < 5
    r = c.put(f"/api/schedules/{sid}", json=body("replaced", "15 * * * *", [train_step("people", "other.ffm")]))
    assert r.status_code == 200 and r.json()["steps"][0]["output"] == "other.ffm"
    assert r.json()["timezone"] != "Europe/Paris"  # PUT: left out = the server's zone

    s = c.post(f"/api/schedules/{sid}/disable").json()
    assert not s["enabled"] and s["next_run"] is None and c.app.state.scheduler.timer.get_job(sid) is None
    s = c.post(f"/api/schedules/{sid}/enable").json()
    assert s["enabled"] and s["next_run"] > time.time() and c.app.state.scheduler.timer.get_job(sid) is not None

    assert c.delete(f"/api/schedules/{sid}").json() == {"deleted": sid}
    assert c.get(f"/api/schedules/{sid}").status_code == 404
    assert c.app.state.scheduler.timer.get_job(sid) is None
    for method, path in (("get", "nope"), ("delete", "0" * 32), ("post", f"{'a' * 32}/run"), ("get", "..%2Fjobs")):
        assert getattr(c, method)(f"/api/schedules/{path}").status_code == 404, path


@pytest.mark.parametrize("change, needle", [
    ({"cron": "0 2 * *"}, "5 fields"),
    ({"cron": "0 2 * * * *"}, "5 fields"),
    ({"cron": "61 * * * *"}, "Invalid cron"),
    ({"cron": "0 25 * * *"}, "Invalid cron"),
    ({"cron": "0 2 * * 8"}, "weekday"),
    ({"cron": "every day"}, "Invalid cron"),
    ({"timezone": "Mars/Olympus"}, "Unknown time zone"),
    ({"timezone": "../../etc/passwd"}, "Unknown time zone"),
    ({"name": "../etc"}, "schedule name"),
    ({"steps": []}, "steps"),
    ({"steps": [{"step": "backup", "data": "people"}]}, "ingest"),
    ({"steps": [{"step": "train", "data": "people"}]}, "output"),
    ({"steps": [{"step": "ingest", "into": "people"}]}, "inboxes"),
    ({"steps": [{"step": "retrain", "dataset": "people"}]}, "model"),
    ({"steps": [train_step(workers=64)]}, "workers"),
    ({"steps": [train_step(head="forest")]}, "forest"),
    ({"steps": [train_step(embedder="no-such-embedder")]}, "no-such-embedder"),
    ({"steps": [train_step(val=2.0)]}, "val"),
])
def test_invalid_schedules_are_refused_with_a_clear_message(quiet, change, needle):
    r = quiet.post("/api/schedules", json={**body(), **change})
    assert r.status_code == 422, r.text
    assert needle in json.dumps(r.json()["detail"]), r.json()
    assert quiet.get("/api/schedules").json()["schedules"] == []


def _outside(tmp_path: Path) -> Path:
    d = tmp_path.parent / f"{tmp_path.name}-outside"
    d.mkdir(exist_ok=True)
    return d


HOSTILE = {
    "dotdot": lambda root, out: "../outside",
    "dotdot inside a name": lambda root, out: "people/../../../etc",
    "absolute elsewhere": lambda root, out: str(out),
    "system folder": lambda root, out: "/etc",
    "home folder": lambda root, out: "~/photos",
    "symlink out": lambda root, out: (root / "link").symlink_to(out, target_is_directory=True) or "link",
    "symlink out, absolute": lambda root, out: (root / "alink").symlink_to(out) or str(root / "alink"),
    "null byte": lambda root, out: "people\x00/x",
    "the root's parent": lambda root, out: str(root.parent),
}
PLACES = {
    "train data": lambda p: [train_step(data=p)],
    "train output": lambda p: [train_step(output=p)],
    "train image_root": lambda p: [train_step(image_root=p)],
    "ingest inbox 2": lambda p: [{"step": "ingest", "inboxes": ["inbox", p], "into": "people"}],
    "ingest into": lambda p: [{"step": "ingest", "inboxes": ["inbox"], "into": p}],
    "ingest gallery": lambda p: [{"step": "ingest", "inboxes": ["inbox"], "into": "people", "gallery": [p, "crew"]}],
    "retrain model (second step)": lambda p: [train_step(), {"step": "retrain", "dataset": "people", "model": p}],
}


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("hostile", sorted(HOSTILE))
def test_paths_outside_the_collect_roots_are_refused(tmp_path, hostile, place):
    root = tmp_path / "collect"
    root.mkdir()
    path = HOSTILE[hostile](root, _outside(tmp_path))
    app = create_app(home=tmp_path, run_jobs=False, run_schedules=False)
    with TestClient(app) as c:
        r = c.post("/api/schedules", json=body(steps=PLACES[place](path)))
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert "collect_roots" in detail and "FACEFORGE_COLLECT_ROOTS" in detail, detail
        assert c.get("/api/schedules").json()["schedules"] == []


def test_paths_inside_the_collect_roots_are_accepted(tmp_path):
    other = tmp_path / "data"
    (other / "inbox").mkdir(parents=True)
    (other / "people").mkdir()
    (other / "inner").symlink_to(other / "people", target_is_directory=True)  # a link that stays inside
    app = create_app(home=tmp_path / "home", run_jobs=False, run_schedules=False,
                     collect_roots=[tmp_path / "home" / "collect", other])
    steps = [{"step": "ingest", "inboxes": ["relative/inbox", str(other / "inbox")], "into": str(other / "inner")},
             {"step": "retrain", "dataset": str(other / "people"), "model": str(other / "people" / ".." / "m.ffm"),
              "promote": "if_better", "margin": 0.01, "head": "logreg"},
             train_step(str(other / "people"), "models/people.ffm")]
    with TestClient(app) as c:
        r = c.post("/api/schedules", json=body(steps=steps))
        assert r.status_code == 201, r.text
        assert r.json()["steps"][0]["inboxes"][0] == "relative/inbox"  # stored as given, resolved at each run
        assert c.patch(f"/api/schedules/{r.json()['id']}", json={"steps": [train_step("/etc")]}).status_code == 422


def test_collect_roots_from_the_environment(tmp_path, monkeypatch):
    from faceforge.service.settings import Settings

    a, b = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("FACEFORGE_COLLECT_ROOTS", f"{a}{os.pathsep}{b}")
    assert Settings(home=tmp_path).collect_dirs == [a.resolve(), b.resolve()]
    monkeypatch.setenv("FACEFORGE_COLLECT_ROOTS", json.dumps([str(b)]))
    assert Settings(home=tmp_path).collect_dirs == [b.resolve()]
    monkeypatch.delenv("FACEFORGE_COLLECT_ROOTS")
    assert Settings(home=tmp_path).collect_dirs == [(tmp_path / "collect").resolve()]


@pytest.mark.parametrize("cron, weekdays", [
    ("0 2 * * 0", {6}), ("0 2 * * 7", {6}), ("0 2 * * 1-5", {0, 1, 2, 3, 4}), ("0 2 * * sun,sat", {5, 6}),
    ("0 2 * * */2", {6, 1, 3, 5}), ("0 2 * * 5-7", {4, 5, 6}), ("@weekly", {6}), ("0 2 * * *", set(range(7))),
])
def test_weekdays_follow_crontab(cron, weekdays):
    """0 and 7 are Sunday as in crontab (APScheduler 3 alone would take 0 for Monday)."""
    from faceforge.service.schedules import cron_trigger

    t = cron_trigger(cron, "UTC")
    now, seen = datetime(2026, 12, 1, tzinfo=timezone.utc), set()
    for _ in range(14):
        now = t.get_next_fire_time(None, now + timedelta(seconds=1))
        seen.add(now.weekday())  # Monday = 0
    assert seen == weekdays


# -- runs ------------------------------------------------------------------------------------------

def test_a_schedule_survives_a_restart_and_runs(people):
    """Made on one server; the next server on the same home lists it, arms it, fires it (APScheduler) and
    runs its train step in a child process: the model classifies the real faces."""
    from faceforge.train import load_classifier

    with TestClient(create_app(home=people, run_jobs=False)) as c:
        sid = c.post("/api/schedules", json=body(steps=[train_step()])).json()["id"]
    with TestClient(create_app(home=people)) as c:
        (s,) = c.get("/api/schedules").json()["schedules"]
        assert s["id"] == sid and s["enabled"] and s["next_run"] > time.time()
        assert c.app.state.scheduler.timer.get_job(sid).next_run_time.timestamp() == pytest.approx(s["next_run"])
        fire_soon(c.app, sid)
        end = time.time() + 20
        while not runs(c, sid)["runs"] and time.time() < end:
            time.sleep(0.1)
        (job,) = runs(c, sid)["runs"]
        assert job["kind"] == "pipeline" and job["params"]["schedule"] == sid and job["params"]["trigger"] == "cron"
        assert job["params"]["collect_roots"] == ["collect"]  # relative to the home: no server path in the answer
        job = wait_job(c, job["id"])
        assert job["status"] == "done", job
        (step,) = job["result"]["steps"]
        assert step["step"] == "train" and step["status"] == "done" and step["seconds"] > 0
        assert step["report"]["balanced_accuracy"] >= 0.5 and step["report"]["model"].endswith("people.ffm")
        s = c.get(f"/api/schedules/{sid}").json()
        assert s["last_status"] == "done" and s["last_job"] == job["id"] and s["next_run"] > time.time()
        assert runs(c, sid)["events"][0]["event"] == "run"
    clf = load_classifier(people / "collect" / "people.ffm")
    assert sorted(clf.classes) == ["eileen", "grace"]


def test_a_run_stops_at_its_failing_step(people):
    """Run now: step 1 trains, step 2 (an empty folder) fails, step 3 never runs; the job says so."""
    (people / "collect" / "empty").mkdir(exist_ok=True)
    steps = [train_step(output="first.ffm"), train_step(data="empty", output="second.ffm"),
             train_step(output="third.ffm")]
    with TestClient(create_app(home=people)) as c:
        sid = c.post("/api/schedules", json=body("three steps", steps=steps)).json()["id"]
        r = c.post(f"/api/schedules/{sid}/run")
        assert r.status_code == 202 and r.json()["params"]["trigger"] == "run_now", r.text
        job = wait_job(c, r.json()["id"])
    assert job["status"] == "failed", job
    assert job["error"].startswith("step 2 of 3 (train) failed:") and "balanced accuracy" in job["error"], job["error"]
    assert (people / "collect" / "first.ffm").exists() and not (people / "collect" / "third.ffm").exists()


def test_the_child_checks_the_paths_again(people, tmp_path):
    """A dataset folder swapped for a link out of the root after the schedule was stored: run now
    refuses it (422), and a timer firing runs a job whose child refuses it before the step."""
    root = people / "collect"
    (root / "moving").mkdir()
    outside = _outside(tmp_path)
    with TestClient(create_app(home=people)) as c:
        sid = c.post("/api/schedules", json=body("moving", steps=[train_step("moving", "moving.ffm")])).json()["id"]
        (root / "moving").rmdir()
        (root / "moving").symlink_to(outside, target_is_directory=True)
        r = c.post(f"/api/schedules/{sid}/run")
        assert r.status_code == 422 and "collect_roots" in r.json()["detail"], r.text
        fire_soon(c.app, sid)
        end = time.time() + 20
        while not runs(c, sid)["runs"] and time.time() < end:
            time.sleep(0.1)
        job = wait_job(c, runs(c, sid)["runs"][0]["id"])
    assert job["status"] == "failed" and "step 1 of 1 (train) failed" in job["error"], job
    assert "collect_roots" in job["error"] and not (root / "moving.ffm").exists()


def test_a_firing_while_a_run_is_going_is_skipped(quiet, tmp_path):
    c = quiet
    sid = c.post("/api/schedules", json=body()).json()["id"]
    first = c.post(f"/api/schedules/{sid}/run").json()
    assert first["status"] == "queued"  # this server runs no jobs: the run stays queued
    fire_soon(c.app, sid)
    end = time.time() + 10
    while not [e for e in runs(c, sid)["events"] if e["event"] == "skipped"] and time.time() < end:
        time.sleep(0.1)
    got = runs(c, sid)
    assert [j["id"] for j in got["runs"]] == [first["id"]]
    skipped = got["events"][0]
    assert skipped["event"] == "skipped" and skipped["job"] == first["id"] and "still queued" in skipped["message"]
    r = c.post(f"/api/schedules/{sid}/run")
    assert r.status_code == 409 and first["id"] in r.json()["detail"]
    c.post(f"/api/jobs/{first['id']}/cancel")
    second = c.post(f"/api/schedules/{sid}/run")
    assert second.status_code == 202
    assert [j["id"] for j in runs(c, sid)["runs"]] == [second.json()["id"], first["id"]]  # newest first


def test_catch_up_after_downtime(tmp_path):
    """A firing missed while the server was down runs once at the next start (when catch_up is on)."""
    with TestClient(create_app(home=tmp_path, run_jobs=False)) as c:
        ids = {name: c.post("/api/schedules", json=body(name, **extra)).json()["id"]
               for name, extra in (("missed", {}), ("no catch-up", {"catch_up": False}),
                                   ("disabled", {"enabled": False}), ("fresh", {}))}
    db = sqlite3.connect(tmp_path / "service.db")
    two_days_ago = time.time() - 2 * 86400
    db.execute("UPDATE schedules SET updated=?, last_fired=? WHERE name != 'fresh'", (two_days_ago, two_days_ago))
    db.commit()
    db.close()
    with TestClient(create_app(home=tmp_path, run_jobs=False)) as c:
        got = {name: runs(c, sid) for name, sid in ids.items()}
        (job,) = got["missed"]["runs"]
        assert job["status"] == "queued" and job["params"]["trigger"] == "catch_up"
        assert "missed while the server was down" in got["missed"]["events"][0]["message"]
        assert not got["no catch-up"]["runs"] and not got["disabled"]["runs"] and not got["fresh"]["runs"]
        c.post(f"/api/jobs/{job['id']}/cancel")
    with TestClient(create_app(home=tmp_path, run_jobs=False)) as c:  # caught up once, not at every start
        assert len(runs(c, ids["missed"])["runs"]) == 1


def test_ingest_then_retrain_runs_twice(tmp_path):
    """The pipeline of the Collect tab (ingest an inbox, retrain, promote if better) on real faces
    (5 AT&T photos each of two people: different photos, not near duplicates of one); the second
    run finds nothing new."""
    import shutil

    att = shared_path("identity", "att_faces")
    for who in ("s1", "s2"):
        d = tmp_path / "collect" / "inbox" / "2026-12-01-training-images" / who
        d.mkdir(parents=True)
        for i in range(1, 6):
            shutil.copyfile(att / who / f"{i}.pgm", d / f"{i}.pgm")
    steps = [{"step": "ingest", "inboxes": ["inbox"], "into": "people"},
             {"step": "retrain", "dataset": "people", "model": "people.ffm", "promote": "if_better"}]
    with TestClient(create_app(home=tmp_path)) as c:
        sid = c.post("/api/schedules", json=body("collect", steps=steps)).json()["id"]
        first = wait_job(c, c.post(f"/api/schedules/{sid}/run").json()["id"], timeout=300)
        assert first["status"] == "done", first
        ingest, retrain = first["result"]["steps"]
        assert ingest["report"]["new"] == 10 and set(ingest["report"]["routed"]) == {"s1", "s2"}
        assert "version" in retrain["report"] and "promoted" in retrain["report"]
        second = wait_job(c, c.post(f"/api/schedules/{sid}/run").json()["id"], timeout=300)
        assert second["status"] == "done", second
        assert second["result"]["steps"][0]["report"]["new"] == 0
    assert (tmp_path / "collect" / "people.ffm").exists()


# -- the Collect tab (headless Chromium, as tests/test_web.py) --------------------------------------

@pytest.fixture()
def collect_page(tmp_path):
    """The page of a real service (uvicorn on a free port; jobs not run, so runs stay queued) in
    headless Chromium, on the Collect tab."""
    from conftest import chromium, serve_app

    pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install 'faceforge[test]')")
    from selenium.webdriver.support.ui import WebDriverWait

    with serve_app(create_app(home=tmp_path, run_jobs=False)) as url:
        driver = chromium("1360,1000")
        try:
            driver.get(url + "/")
            WebDriverWait(driver, 15).until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
            driver.find_element("css selector", "#tab-collect").click()
            yield driver, url
        finally:
            driver.quit()


def test_the_collect_tab_creates_runs_and_deletes_a_schedule(collect_page):
    import urllib.request

    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    d, url = collect_page

    def q(css):
        return d.find_element("css selector", css)

    def text(css):
        return d.execute_script("const e = document.querySelector(arguments[0]); return e ? e.textContent : ''", css)

    def wait(cond, what, timeout=15):
        try:
            WebDriverWait(d, timeout, poll_frequency=0.2).until(lambda d: cond())
        except TimeoutException:
            pytest.fail(f"timed out waiting for {what}; the page says: {text('#collect-error')} "
                        f"{text('#collect-form-error')}")

    wait(lambda: "No schedules yet" in text("#collect-empty"), "the empty list")
    assert text("#collect-cron-hint") == "Every day at 02:00."
    q("#collect-cron").clear()
    q("#collect-cron").send_keys("30 6 * * 1-5")
    assert text("#collect-cron-hint") == "Every weekday (Monday to Friday) at 06:30."
    for field, value in (("name", "nightly"), ("inbox", "/etc"), ("dataset", "people"), ("model", "people.ffm")):
        q(f"#collect-{field}").send_keys(value)
    q("#collect-save").click()
    wait(lambda: "collect_roots" in text("#collect-form-error"), "the refusal of /etc")
    q("#collect-inbox").clear()
    q("#collect-inbox").send_keys("inbox")
    q("#collect-save").click()
    row = 'tr[data-schedule] td.schedule-next'
    wait(lambda: d.find_elements("css selector", row) and text(row) not in ("", "–"), "the schedule with a next run")
    with urllib.request.urlopen(f"{url}/api/schedules", timeout=5) as r:
        (s,) = json.load(r)["schedules"]
    assert s["name"] == "nightly" and s["cron"] == "30 6 * * 1-5"
    assert s["steps"] == [{"step": "ingest", "inboxes": ["inbox"], "into": "people"},
                          {"step": "retrain", "dataset": "people", "model": "people.ffm", "promote": "if_better",
                           "margin": 0}]
    q("tr[data-schedule] .schedule-run").click()
    wait(lambda: text("tr[data-schedule] td.schedule-status") == "last run queued", "the queued run")
    wait(lambda: d.find_elements("css selector", '#collect-runs .run[data-status="queued"]'), "the run in its card")
    q("tr[data-schedule] .schedule-toggle").click()
    wait(lambda: text("tr[data-schedule] td.schedule-status") == "disabled", "the schedule disabled")
    q("tr[data-schedule] .schedule-delete").click()
    q("tr[data-schedule] .schedule-delete").click()  # the second click within 4 s deletes
    wait(lambda: "No schedules yet" in text("#collect-empty"), "the list empty again")
    errors = [e["message"] for e in d.get_log("browser") if "Uncaught" in e["message"] or ".js" in e["message"]]
    assert not errors, errors
