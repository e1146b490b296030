"""Issue 16: `faceforge ingest` / `watch`: new photos into a dataset once each, de-duplicated, routed,
refused when unlike the class, safe to interrupt; class health. Real faces throughout."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
from conftest import SHARED, jpeg
from typer.testing import CliRunner

from faceforge.cli.main import app
from faceforge.collect import class_health, ingest
from faceforge.collect.ingest import class_of
from faceforge.collect.ledger import Ledger

ATT = SHARED / "identity" / "att_faces"
needs_shared = pytest.mark.skipif(not ATT.is_dir(), reason=f"needs {ATT} (the ../shared/data development set)")


def tree_hash(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path -> sha256), with its mtime: what "untouched" means."""
    return {f"{p.relative_to(root)}@{p.stat().st_mtime_ns}": hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def filed(ds: Path) -> dict[str, list[str]]:
    """The crops in the class folders of ``ds``."""
    return {d.name: sorted(p.name for p in d.iterdir()) for d in sorted(ds.iterdir())
            if d.is_dir() and not d.name.startswith(".") and d.name != "review"}


def att(person: str, *nums: int) -> list[Path]:
    return [ATT / person / f"{n}.pgm" for n in nums]


def put(folder: Path, files: list[Path], prefix: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy2(f, folder / f"{prefix}{f.name}")


# -- without ../shared -------------------------------------------------------------------------
@pytest.mark.parametrize("rel, cls", [
    ("anna/x.jpg", "anna"),
    ("2026-12-01-training-images/anna/x.jpg", "anna"),
    ("2026-12-01-training-images/x.jpg", None),
    ("2026-12-01/x.jpg", None),
    ("x.jpg", None),
    ("people/anna/x.jpg", "anna"),
])
def test_class_of_a_file_is_its_folder_never_the_inbox_or_a_date(rel, cls):
    assert class_of(rel) == cls


@pytest.fixture()
def small_inbox(tmp_path, astronaut, grace):
    """An inbox: a person in a class folder, a renamed copy, a re-encoded smaller copy, an unlabelled
    photo of another person, a corrupt JPEG, a file that is no image, a note (ignored), a cat (no face)."""
    from skimage import data

    inbox = tmp_path / "inbox"
    (inbox / "eileen").mkdir(parents=True)
    (inbox / "grace").mkdir()
    (inbox / "eileen" / "a.jpg").write_bytes(jpeg(astronaut))
    (inbox / "eileen" / "a_copy.jpg").write_bytes(jpeg(astronaut))  # the same bytes: an exact duplicate
    import cv2

    small = cv2.resize(astronaut, (384, 384), interpolation=cv2.INTER_AREA)
    (inbox / "eileen" / "a_small.jpg").write_bytes(jpeg(small, 75))  # a near duplicate
    (inbox / "loose.jpg").write_bytes(jpeg(grace))  # unlabelled
    (inbox / "eileen" / "broken.jpg").write_bytes(jpeg(astronaut)[:300])
    (inbox / "grace" / "notes.bin").write_bytes(b"\x00\x01 not an image")
    (inbox / "README.txt").write_text("photos of the day")
    (inbox / "grace" / "cat.jpg").write_bytes(jpeg(data.chelsea()))
    return inbox


def test_ingest_files_once_dedups_reports_and_never_touches_the_originals(small_inbox, tmp_path, grace):
    ds = tmp_path / "ds"
    before = tree_hash(small_inbox)
    rep = ingest([small_inbox], ds, workers=1)
    assert tree_hash(small_inbox) == before  # not moved, renamed or changed
    assert rep.new == 6 and rep.duplicates == 1 and rep.near_duplicates == 1 and rep.no_face == 1
    assert rep.routed == {"eileen": 1}
    assert sorted(Path(p).name for p, _ in rep.unreadable) == ["broken.jpg", "notes.bin"]
    assert all(Path(p).name in why for p, why in rep.unreadable)  # the reason names the file
    assert rep.review == {"no class": 1}
    crops = filed(ds)
    assert {c: len(v) for c, v in crops.items()} == {"eileen": 1}
    sha = hashlib.sha256((small_inbox / "eileen" / "a.jpg").read_bytes()).hexdigest()
    assert crops["eileen"] == [f"{sha[:16]}_face1.jpg"]
    from faceforge.sources import load_image

    assert load_image(ds / "eileen" / crops["eileen"][0]).shape == (160, 160, 3)
    review = (ds / "review" / "review.csv").read_text()
    assert "loose.jpg" in review and "no class" in review
    saved = json.loads((ds / ".faceforge" / "runs" / f"{rep.run_id}.json").read_text())
    assert saved["routed"] == rep.routed and saved["new"] == 6
    statuses = {Path(f["source"]).name: f["status"] for f in Ledger(ds).files()}
    assert statuses == {"a.jpg": "added", "a_small.jpg": "near_duplicate", "loose.jpg": "review",
                        "broken.jpg": "unreadable", "notes.bin": "unreadable", "cat.jpg": "no_face"}
    # again: nothing new; a renamed copy elsewhere is still seen
    shutil.copy2(small_inbox / "eileen" / "a.jpg", small_inbox / "grace" / "renamed.jpg")
    again = ingest([small_inbox], ds, workers=1)
    assert again.nothing_new and again.duplicates == 1 and filed(ds) == crops
    # a dataset with a ledger: its review/ queue is no class for training
    from faceforge.data import load_dataset

    (ds / "grace").mkdir()
    (ds / "grace" / "g.jpg").write_bytes(jpeg(grace))  # a class made by hand
    assert load_dataset(ds, min_per_class=1).classes == ["eileen", "grace"]


def test_an_archive_inbox_is_read_like_a_folder(tmp_path, astronaut):
    src = tmp_path / "day"
    (src / "eileen").mkdir(parents=True)
    (src / "eileen" / "a.jpg").write_bytes(jpeg(astronaut))
    with tarfile.open(tmp_path / "day.tar", "w") as t:
        t.add(src, arcname="2026-12-01")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy2(tmp_path / "day.tar", inbox / "day.tar")  # an archive dropped into an inbox folder
    rep = ingest([inbox], tmp_path / "ds", workers=1)
    assert rep.routed == {"eileen": 1}
    assert ingest([tmp_path / "day.tar"], tmp_path / "ds", workers=1).nothing_new  # the same content


@pytest.mark.parametrize("case", ["missing", "inside_inbox", "holds_inbox"])
def test_cli_refuses_a_missing_inbox_or_an_overlap_naming_the_path(tmp_path, case):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    args = {"missing": [str(tmp_path / "nope"), "--into", str(tmp_path / "ds")],
            "inside_inbox": [str(inbox), "--into", str(inbox / "ds")],
            "holds_inbox": [str(tmp_path / "ds" / "inbox"), "--into", str(tmp_path / "ds")]}[case]
    if case == "holds_inbox":
        (tmp_path / "ds" / "inbox").mkdir(parents=True)
    res = CliRunner().invoke(app, ["ingest", *args])
    assert res.exit_code == 2, res.output
    assert "error:" in res.output and (args[0] in res.output.replace("\n", ""))
    assert not (inbox / "ds").exists()


def test_cli_prints_the_report_then_nothing_new(small_inbox, tmp_path):
    ds = tmp_path / "ds"
    res = CliRunner().invoke(app, ["ingest", str(small_inbox), "--into", str(ds), "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "filed into eileen/" in res.output and "broken.jpg" in res.output
    assert "has 1 photo(s); aim for 20" in res.output  # the health warnings
    res = CliRunner().invoke(app, ["ingest", str(small_inbox), "--into", str(ds), "--workers", "1", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout.strip().splitlines()[-1])["new"] == 0
    res = CliRunner().invoke(app, ["ingest", str(small_inbox), "--into", str(ds), "--workers", "1"])
    assert res.exit_code == 0 and "nothing new" in res.output


def test_class_health_flags_few_photos_and_a_class_that_stopped_growing(tmp_path):
    ds = tmp_path / "ds"
    for c, n in (("a", 25), ("b", 3)):
        (ds / c).mkdir(parents=True)
        for i in range(n):
            (ds / c / f"{i}.jpg").write_bytes(b"x")
    runs = [{"routed": {"a": 2, "b": 1}}, {"routed": {"a": 1}}, {"routed": {}}, {"routed": {"a": 4}}]
    h = {r["class"]: r for r in class_health(ds, runs=runs, stalled_runs=2)}
    assert h["a"]["flags"] == [] and h["b"]["flags"] == ["few_photos", "stalled"]
    assert h["b"]["runs_without_new"] == 2  # the run that filed nothing is not counted
    assert "stopped growing" in " ".join(h["b"]["warnings"])


# -- on ../shared/data -------------------------------------------------------------------------
@needs_shared
def test_two_days_of_dated_folders_and_a_day_of_unreadable_files(tmp_path):
    inbox, ds = tmp_path / "inbox", tmp_path / "people"
    for p in ("s1", "s2", "s3"):
        put(inbox / "2026-12-01-training-images" / p, att(p, 1, 3, 5, 7))
    day1 = ingest([inbox], ds, workers=1)
    assert day1.new == 12 and day1.refused == {}
    n1 = {c: len(v) for c, v in filed(ds).items()}
    assert set(n1) == {"s1", "s2", "s3"} and sum(n1.values()) + day1.near_duplicates == 12
    # day 2: new photos, copies of day 1's under new names, and a corrupt upload
    for p in ("s1", "s2", "s3"):
        put(inbox / "2026-12-02-training-images" / p, att(p, 2, 9))
        put(inbox / "2026-12-02-training-images" / p, att(p, 1, 3), prefix="again_")
    (inbox / "2026-12-02-training-images" / "s1" / "upload.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    before = tree_hash(inbox)
    day2 = ingest([inbox], ds, workers=1)
    assert tree_hash(inbox) == before
    assert day2.already_seen == 12 and day2.duplicates == 6 and day2.new == 7  # only the new files
    assert [Path(p).name for p, _ in day2.unreadable] == ["upload.jpg"]
    n2 = {c: len(v) for c, v in filed(ds).items()}
    n2_files = filed(ds)
    assert sum(n2.values()) - sum(n1.values()) == sum(day2.routed.values()) <= 6
    # day 3: only unreadable files: reported, nothing filed, and the command exits 1 (a cron job sees it)
    (inbox / "2026-12-03").mkdir()
    for i in range(3):
        (inbox / "2026-12-03" / f"scan{i}.png").write_bytes(os.urandom(200))
    res = CliRunner().invoke(app, ["ingest", str(inbox), "--into", str(ds), "--workers", "1", "--json"])
    assert res.exit_code == 1 and "none of the 3 new file(s) could be read" in res.output, res.output
    day3 = Ledger(ds).runs()[-1]["report"]
    assert day3["new"] == 3 and len(day3["unreadable"]) == 3 and day3["routed"] == {} and filed(ds) == n2_files
    assert len(Ledger(ds).runs()) == 3


@needs_shared
def test_another_persons_photos_under_a_class_are_refused(tmp_path):
    inbox, ds = tmp_path / "inbox", tmp_path / "people"
    for p in ("s1", "s2", "s3"):
        put(inbox / "day1" / p, att(p, 1, 3, 5, 7, 9))
    ingest([inbox], ds, workers=1)
    before = filed(ds)
    put(inbox / "day2" / "s1", att("s20", 1, 3, 5, 7))  # mostly another person, filed as s1
    put(inbox / "day2" / "s2", att("s2", 2, 6))          # a fresh batch of the same person
    rep = ingest([inbox], ds, workers=1)
    assert "s1" in rep.refused and "unlike" in rep.refused["s1"]
    assert "s2" not in rep.refused and rep.routed.get("s2", 0) >= 1
    assert filed(ds)["s1"] == before["s1"]  # nothing of the other person went into s1
    other = [f for f in rep.files if f"day2{os.sep}s1" in f["source"]]
    assert len(other) == 4 and {f["status"] for f in other} <= {"refused", "near_duplicate"}
    assert rep.review.get("refused for 's1'") == sum(f["status"] == "refused" for f in other) >= 3
    assert "refused" in (ds / "review" / "review.csv").read_text()
    h = {x["class"]: x for x in rep.health}
    assert "refused" in h["s1"]["flags"]


@needs_shared
def test_unlabelled_photos_are_routed_by_a_model_the_doubtful_to_review(tmp_path):
    from faceforge.train import train

    train_dir = tmp_path / "train"
    people = ("s1", "s2", "s3", "s4")
    for p in people:
        put(train_dir / p, att(p, 1, 2, 3, 4, 5, 6))
    model = tmp_path / "people.ffm"
    train(train_dir, model, embedder="dlib-resnet", head="logreg", val=0.0, progress=False, learning_curve=False)
    inbox = tmp_path / "inbox"
    for p in people:
        put(inbox / "2026-12-01", att(p, 8, 10), prefix=f"{p}_")   # unlabelled known people
    put(inbox / "2026-12-01", att("s30", 1, 5), prefix="stranger_")  # a person the model does not know
    rep = ingest([inbox], tmp_path / "ds", model=model, min_confidence=0.5, workers=1)
    by = {Path(f["source"]).name: f for f in rep.files}
    routed = [f for f in rep.files if f["status"] == "added"]
    assert len(routed) >= 4
    assert all(Path(f["source"]).name.split("_")[0] == f["class"] for f in routed)  # filed into the right class
    for name in ("stranger_1.pgm", "stranger_5.pgm"):
        assert by[name]["status"] in ("review", "near_duplicate") and by[name]["status"] != "added"
    # the threshold is the model's score: above it filed, below it to review with the score
    strict = ingest([inbox], tmp_path / "ds2", model=model, min_confidence=0.99, workers=1)
    for f in strict.files:
        if f["status"] == "added":
            assert float(f["reason"].split()[-1]) >= 0.99
        elif f["status"] == "review":
            assert f["reason"].startswith(("low confidence", "unknown face"))
    assert strict.review.get("low confidence", 0) + strict.review.get("unknown face", 0) > rep.review.get(
        "low confidence", 0) + rep.review.get("unknown face", 0)


_INGEST_CHILD = """
import os, signal, sys
from faceforge.collect import ingest
kill_at = int(sys.argv[3])  # 0: the parent kills this process; n: it kills itself at its n-th filed photo
seen = []
def on_event(kind, payload):
    if kind == "file" and payload["status"] == "added":
        seen.append(payload)
        if len(seen) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
ingest([sys.argv[1]], sys.argv[2], workers=1, engine="serial", on_event=on_event)
"""


@needs_shared
@pytest.mark.parametrize("when", ["while_processing", "while_filing"])
def test_a_killed_run_reruns_to_the_same_dataset(tmp_path, when):
    inbox = tmp_path / "inbox"
    for p in ("s4", "s5", "s6", "s7"):
        put(inbox / p, att(p, 1, 2, 4, 6, 8, 10))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    cut = tmp_path / "cut"
    child = subprocess.Popen([sys.executable, "-c", _INGEST_CHILD, str(inbox), str(cut),
                              "0" if when == "while_processing" else "5"], env=env)
    if when == "while_processing":
        pending = cut / ".faceforge" / "pending"
        t0 = time.time()
        while time.time() - t0 < 60 and child.poll() is None:  # kill it once crops are being written
            if pending.is_dir() and len(list(pending.glob("*.jpg"))) >= 3:
                break
            time.sleep(0.01)
        assert child.poll() is None, "the run ended before it could be killed"
        child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=60) == -signal.SIGKILL
    done = sum(len(v) for v in filed(cut).values())
    assert done == (0 if when == "while_processing" else 5)  # it was cut short: filed only what it recorded
    ingest([inbox], cut, workers=1)
    whole = tmp_path / "whole"
    ingest([inbox], whole, workers=1)

    def state(ds):
        return ({c: {n: hashlib.sha256((ds / c / n).read_bytes()).hexdigest() for n in v}
                 for c, v in filed(ds).items()},
                sorted((f["sha256"], f["status"]) for f in Ledger(ds).files()))

    assert state(cut) == state(whole)
    assert sum(len(v) for v in filed(whole).values()) > 10
    assert not (cut / ".faceforge" / "pending").exists()
    assert not [p for p in cut.rglob(".*.tmp")]  # no half-written file


@needs_shared
def test_watch_files_photos_as_they_arrive(tmp_path):
    from faceforge.collect import watch

    inbox, ds = tmp_path / "inbox", tmp_path / "ds"
    inbox.mkdir()
    stop, reports = threading.Event(), []
    th = threading.Thread(target=watch, args=([inbox], ds), daemon=True,
                          kwargs={"settle_s": 0.5, "stop": stop, "on_report": reports.append, "workers": 1})
    th.start()
    try:
        t0 = time.time()
        while not reports and time.time() - t0 < 30:
            time.sleep(0.05)
        assert reports and reports[0].nothing_new  # the run at start
        put(inbox / "s8", att("s8", 1, 5, 9))
        while time.time() - t0 < 60 and sum(len(v) for v in filed(ds).values()) < 2:
            time.sleep(0.1)
        assert 2 <= len(filed(ds).get("s8", [])) <= 3
    finally:
        stop.set()
        th.join(timeout=30)
    assert not th.is_alive()
