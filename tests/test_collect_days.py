"""Three days of collection, end to end, on real faces (issue 16's acceptance test).

Each day an inbox folder of dated class folders arrives (``YYYY-MM-DD-training-images/PERSON/``)
and goes through ``ingest`` then ``retrain``, as the daily cron job of the tutorials did:

* day 1: three people (AT&T faces s1-s3), 5 photos each;
* day 2: 3 new photos each, copies of day-1 photos under new names, a re-encoded copy of one,
  and unreadable files;
* day 3: a "bad day": the s1 folder holds photos of another person (s9), and s2 grows.

Asserted: each day processes only its new files; the originals are untouched; duplicates are not
added twice; the bad day is refused (its faces go to review, not into s1); the version count
grows only when the new version is not worse; rollback restores the previous version's
predictions exactly.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import shared_path
from faceforge.cli.main import app

pytestmark = pytest.mark.shared
runner = CliRunner()


def _tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _photos(att: Path, person: str, idx: range) -> list[Path]:
    return [att / person / f"{i}.pgm" for i in idx]


def _day(inbox: Path, date: str, people: dict[str, list[Path]]) -> Path:
    day = inbox / f"{date}-training-images"
    for person, files in people.items():
        (day / person).mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copyfile(f, day / person / f"{f.parent.name}_{f.name}")
    return day


def _reencoded(src: Path, dst: Path) -> None:
    buf = io.BytesIO()
    Image.open(src).convert("RGB").resize((110, 134)).save(buf, "JPEG", quality=80)
    dst.write_bytes(buf.getvalue())


def _predictions(model: Path, photos: list[Path]) -> list:
    from faceforge.train import load_classifier

    clf = load_classifier(model)
    out = []
    for p in photos:
        faces = clf.classify(p, top_k=3)
        out.append([[(pred.label, round(float(pred.score), 6))] + [(lab, round(float(p), 6)) for lab, p in pred.top_k]
                    for pred in faces.predictions[clf.name]])
    return out


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    att = shared_path("identity", "att_faces")
    root = tmp_path_factory.mktemp("collect")
    inbox, dataset, model = root / "inbox", root / "people", root / "people.ffm"
    return att, inbox, dataset, model


def test_three_days_of_collection(days, monkeypatch, tmp_path):
    from faceforge.collect import history, ingest, retrain, rollback

    att, inbox, dataset, model = days
    monkeypatch.setenv("FACEFORGE_CACHE", str(tmp_path / "cache"))
    train = dict(embedder="dlib-resnet", head="logreg")

    # -- day 1 --------------------------------------------------------------------------------
    day1 = _day(inbox, "2026-12-01", {p: _photos(att, p, range(1, 6)) for p in ("s1", "s2", "s3")})
    before = _tree_hashes(inbox)
    r1 = ingest([inbox], dataset, workers=2)
    # AT&T's 10 photos of a person come from one sitting: a few are as close as a re-encoded copy
    # (near duplicates, not filed twice); every photo is filed or a near duplicate
    assert r1.new == 15 and sum(r1.routed.values()) + r1.near_duplicates == 15, r1.to_dict()
    assert sorted(r1.routed) == ["s1", "s2", "s3"] and r1.near_duplicates <= 3
    v1 = retrain(dataset, model, workers=2, **train)
    assert v1.promoted and model.is_file()
    assert len(history(model)) == 1

    # -- day 2: new photos, copies, a re-encoded copy, unreadable files -----------------------
    day2 = _day(inbox, "2026-12-02", {p: _photos(att, p, range(6, 9)) for p in ("s1", "s2", "s3")})
    shutil.copyfile(day1 / "s1" / "s1_1.pgm", day2 / "s1" / "copy_of_1.pgm")          # exact duplicate
    shutil.copyfile(day1 / "s2" / "s2_2.pgm", day2 / "s2" / "again.pgm")
    _reencoded(day1 / "s3" / "s3_3.pgm", day2 / "s3" / "s3_3_small.jpg")                # near duplicate
    (day2 / "s1" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")    # unreadable
    (day2 / "s2" / "empty.png").write_bytes(b"")
    before = _tree_hashes(inbox)
    r2 = ingest([inbox], dataset, workers=2)
    d2 = r2.to_dict()
    assert _tree_hashes(inbox) == before                       # the originals are untouched
    assert r2.already_seen == 15, d2                           # day 1 is not processed again
    assert r2.new == 12 and r2.duplicates == 2, d2             # 9 photos, 1 re-encoded, 2 broken; 2 copies
    assert r2.near_duplicates >= 1, d2
    assert len(r2.unreadable) == 2 and all(("broken.jpg" in f) or ("empty.png" in f) for f, _ in r2.unreadable)
    assert sum(r2.routed.values()) + r2.near_duplicates == 10, d2
    assert not any(f["status"] == "added" and f["source"].endswith(("s3_3_small.jpg", "copy_of_1.pgm", "again.pgm"))
                   for f in d2["files"]), d2["files"]       # the copies and the re-encoded copy are not added
    s1_filed = r1.routed["s1"] + r2.routed["s1"]
    assert sum(1 for _ in (dataset / "s1").glob("*.jpg")) == s1_filed
    v2 = retrain(dataset, model, workers=2, **train)
    assert len(history(model)) == 2 and v2.reason.startswith(("v0002 promoted", "kept v0001")), v2.reason
    assert v2.to_dict()["metrics"]["validation_photos"] >= 3  # measured on the fixed validation photos
    promoted_before_day3 = [h["version"] for h in history(model) if h["promoted"]]

    # -- day 3: the s1 folder holds another person's photos -----------------------------------
    day3 = _day(inbox, "2026-12-03", {"s1": _photos(att, "s9", range(1, 6)), "s2": _photos(att, "s2", range(9, 11))})
    r3 = ingest([inbox], dataset, workers=2)
    d3 = r3.to_dict()
    files = sum(1 for p in inbox.rglob("*") if p.is_file())
    assert r3.new == 7 and r3.already_seen == files - 7, d3  # only day 3's files are processed
    assert "s1" in r3.refused, d3                              # the bad day is refused for s1...
    assert r3.routed.get("s1", 0) == 0 and r3.routed.get("s2") == 2, d3
    assert sum(1 for _ in (dataset / "s1").glob("*.jpg")) == s1_filed  # ...s1 did not take the stranger's faces
    waiting = len(list((dataset / "review").glob("*.jpg")))
    assert waiting >= 3 and waiting + r3.near_duplicates >= 5, d3  # they wait in review (or were copies)
    assert "s1" in (dataset / "review" / "review.csv").read_text()
    del day3

    # -- retrain: the version count grows only when the new version is not worse --------------
    photos = _photos(att, "s1", range(9, 11)) + _photos(att, "s3", range(9, 11))
    current = _predictions(model, photos)
    v3 = retrain(dataset, model, workers=2, margin=1.0, **train)     # new >= current - 1: any version passes
    assert v3.promoted
    hist = history(model)
    assert len(hist) == 3 and hist[-1]["promoted"]
    strict = retrain(dataset, model, workers=2, margin=-1.0, **train)  # new >= current + 1: none can pass
    assert not strict.promoted and len([h for h in history(model) if h["promoted"]]) == len(
        [h for h in hist if h["promoted"]])
    assert _predictions(model, photos) == _predictions(model, photos)
    # -- rollback restores the previous version's predictions exactly -------------------------
    rollback(model)
    assert _predictions(model, photos) == current
    assert promoted_before_day3[-1] in [h["version"] for h in history(model) if h["promoted"]]

    # the CLI reads the same history
    r = runner.invoke(app, ["models", "history", str(model), "--json"])
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.output)) == len(history(model))
    assert np.isfinite(v1.seconds)
