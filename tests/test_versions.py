"""Model versions (faceforge.collect.versions) on real faces: retrain warm, keep versions, promote only
what is not worse on a fixed validation split, roll back exactly; the CLI; gallery history and enrol --from."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import shared_path
from faceforge.cli.main import app
from faceforge.collect import history, promote, retrain, rollback
from faceforge.collect.split import class_photos, fixed_split
from faceforge.collect.versions import lock, versions_dir
from faceforge.errors import BusyError, DatasetError, OutputError, ParameterError, VersionError

runner = CliRunner()
#: A named fast embedder and head, no internal validation or learning curve: retrain's own split decides.
FAST = dict(embedder="dlib-resnet", head="logreg", val=0.0, learning_curve=False)


def _people():
    src = shared_path("identity", "att_faces")
    return sorted((p for p in src.iterdir() if p.is_dir()), key=lambda p: int(p.name[1:]))


def _add(dataset: Path, person: Path, photos: range, label: str | None = None) -> None:
    """Copy AT&T photos ``photos`` (1-based numbers) of ``person`` into ``dataset/label``."""
    d = dataset / (label or person.name)
    d.mkdir(parents=True, exist_ok=True)
    for i in photos:
        shutil.copyfile(person / f"{i}.pgm", d / f"{person.name}_{i}.pgm")


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _predictions(model: Path, photos: list[Path]) -> list[tuple]:
    from faceforge.train import load_classifier

    clf = load_classifier(model)
    out = []
    for p in photos:
        for pred in clf.classify(p).predictions[clf.name]:
            out.append((pred.label, pred.score, tuple(pred.top_k)))
    return out


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    """Three "days" of a dataset of AT&T people, retrained after each day, and what each retrain returned."""
    people = _people()
    root = tmp_path_factory.mktemp("versions")
    ds, model = root / "dataset", root / "models" / "people.ffm"
    for p in people[:5]:
        _add(ds, p, range(1, 7))
    _add(ds, people[30], range(1, 4), label="review")  # the review queue and hidden folders are not classes
    _add(ds, people[31], range(1, 4), label=".trash")
    runs = ds / ".faceforge" / "runs"
    runs.mkdir(parents=True)
    for run in ("20261201T020000Z-aaaa", "20261202T020000Z-bbbb"):
        (runs / f"{run}.json").write_text("{}")
    probes = [people[i] / "10.pgm" for i in range(5)]  # never in the dataset
    out = {"root": root, "dataset": ds, "model": model, "people": people, "probes": probes}
    out["r1"] = retrain(ds, model, **FAST)  # day 1
    out["pred1"] = _predictions(model, probes)
    out["bytes1"] = model.read_bytes()
    # day 2: 2 more photos each; the same settings without naming them; a margin no version can meet
    for p in people[:5]:
        _add(ds, p, range(7, 9))
    out["r2"] = retrain(ds, model, margin=-1.0)
    out["r2b"] = retrain(ds, model, margin=1.0)  # the same data, a lenient margin: promoted
    out["pred2"] = _predictions(model, probes)
    # day 3: a new person
    _add(ds, people[5], range(1, 9))
    out["r3"] = retrain(ds, model)
    return out


def test_first_version_is_promoted_and_records_the_dataset(days):
    r1, model = days["r1"], days["model"]
    assert r1.version == "v0001" and r1.promoted and r1.decision == "promoted"
    assert r1.reason.startswith("v0001 promoted: the first version") and "validation photos" in r1.reason
    assert days["bytes1"] == (versions_dir(model) / "v0001.ffm").read_bytes()  # what day 1 put at MODEL
    state = r1.record["dataset_state"]
    assert state["classes"] == {p.name: 6 for p in days["people"][:5]} and state["photos"] == 30
    assert state["ingest_run"] == "20261202T020000Z-bbbb" and len(state["files_sha256"]) == 64
    assert r1.record["settings"]["embedder"] == "dlib-resnet" and r1.record["settings"]["head"] == "logreg"
    assert r1.metrics["source"] == "headline" and r1.metrics["validation_photos"] >= 5


def test_version_count_grows_only_when_not_worse(days):
    r2, r2b, model = days["r2"], days["r2b"], days["model"]
    assert not r2.promoted and r2.decision == "kept" and r2.reason.startswith("kept v0001: v0002")
    assert "margin -1" in r2.reason
    assert r2b.promoted and r2b.version == "v0003"
    # warm and with the same settings as the model it replaces (not named on the second call)
    assert r2.record["train"]["cache_hits"] >= 20 and r2.record["settings"] == days["r1"].record["settings"]
    warm = r2b.record["train"]
    assert warm["cache_misses"] == 0 and warm["cache_hits"] == warm["photos"]
    recs = history(model)
    assert [r["version"] for r in recs] == ["v0001", "v0002", "v0003", "v0004"]
    assert [r["decision"] for r in recs] == ["promoted", "kept", "promoted", "promoted"]
    assert all((versions_dir(model) / r["file"]).is_file() for r in recs)
    assert sum(r["current"] for r in recs) == 1 and recs[-1]["current"]


def test_a_new_class_makes_the_new_version_win(days):
    r3 = days["r3"]
    assert r3.promoted and r3.version == "v0004"
    m = r3.metrics
    new_person = days["people"][5].name
    assert new_person in m["current"]["unknown_classes"] and m["current"]["version"] == "v0003"
    assert m["new"]["value"] > m["current"]["value"]
    assert m["validation_classes"] == 6
    assert f"current v0003 {100 * m['current']['value']:.2f}%" in r3.reason


def test_rollback_restores_the_previous_predictions_exactly(days, tmp_path):
    model = days["model"]
    before = model.read_bytes()
    rec = rollback(model)
    assert rec["version"] == "v0003"
    assert _predictions(model, days["probes"]) == days["pred2"]
    rec = rollback(model)  # v0002 was never promoted: back to v0001
    assert rec["version"] == "v0001" and model.read_bytes() == days["bytes1"]
    assert _predictions(model, days["probes"]) == days["pred1"]
    with pytest.raises(VersionError, match="nothing to roll back to: only v0001"):
        rollback(model)
    promote(model, 4)
    assert model.read_bytes() == before and [r["current"] for r in history(model)][-1]
    with pytest.raises(VersionError, match="no version 'v0009'"):
        promote(model, "v0009")


def test_no_version_trains_on_a_validation_photo_and_the_split_stays_fixed(days):
    folder = versions_dir(days["model"])
    trained_before: set[str] = set()
    val_before: set[str] = set()
    for r in history(days["model"]):
        train = {row["sha256"] for row in _csv(folder / r["train_csv"])}
        val = {row["sha256"] for row in _csv(folder / r["validation_csv"])}
        assert not train & val  # never trained on its own validation photos
        assert not trained_before & val  # a photo that trained an earlier version never becomes validation
        assert len(val) >= r["dataset_state"]["photos"] * 0.1
        trained_before |= train
        val_before |= val
    labels = {row["label"] for row in _csv(folder / "v0004.train.csv")}
    assert "review" not in labels and ".trash" not in labels


def test_a_class_reaching_five_photos_takes_an_untrained_photo_for_validation(tmp_path):
    # rule 2 alone (fraction 0): a class of 4 photos trains on all four; when it grows to 5, its
    # validation photo is the new one, never one that trained a version
    person = _people()[7]
    _add(tmp_path, person, range(1, 5))
    train4, val4 = fixed_split(class_photos(tmp_path), 0.0)
    assert len(train4) == 4 and not val4
    _add(tmp_path, person, range(5, 6))
    train5, val5 = fixed_split(class_photos(tmp_path), 0.0, trained={p.sha256 for p in train4})
    assert [p.rel for p in val5] == [f"{person.name}/{person.name}_5.pgm"]
    for n in range(6, 11):  # growing on: the held-out photo stays while no photo hashes below the fraction
        _add(tmp_path, person, range(n, n + 1))
        _, val = fixed_split(class_photos(tmp_path), 0.0, trained={p.sha256 for p in train4})
        assert len(val) == 1 and val[0].sha256 not in {p.sha256 for p in train4}


@pytest.mark.parametrize("case, error, match", [
    ("missing", DatasetError, "no such dataset folder"),
    ("empty", DatasetError, "no photos in class folders"),
    ("one photo", DatasetError, r"class 's9' has 0 photo\(s\) to train on \(1 in .*, 1 held out"),
    ("one class", DatasetError, "only one class"),
    ("model inside", OutputError, "inside the input"),
    ("promote", ParameterError, "promote must be one of"),
    ("metric", ParameterError, "metric must be one of"),
    ("setting", ParameterError, "no setting"),
])
def test_bad_retrains_write_nothing(tmp_path, case, error, match):
    people = _people()
    ds, model, kw = tmp_path / "ds", tmp_path / "m" / "people.ffm", dict(FAST)
    if case != "missing":
        ds.mkdir()
    if case not in ("missing", "empty"):
        _add(ds, people[0], range(1, 7))
    if case not in ("missing", "empty", "one class"):
        _add(ds, people[8], range(1, 2) if case == "one photo" else range(1, 7))
    if case == "model inside":
        model = ds / "people.ffm"
    kw.update({"promote": {"promote": "sometimes"}, "metric": {"metric": "f1"},
               "setting": {"embeder": "dlib-resnet"}}.get(case, {}))
    with pytest.raises(error, match=match):
        retrain(ds, model, **kw)
    assert not model.exists() and not versions_dir(model).exists()


def test_concurrent_retrain_is_refused_or_waits_and_an_existing_model_is_kept(tmp_path):
    from faceforge.train import train

    people = _people()
    ds, model = tmp_path / "ds", tmp_path / "people.ffm"
    for p in people[10:13]:
        _add(ds, p, range(1, 7))
    train(ds, model, progress=False, **FAST)  # a model trained before versions existed
    original = model.read_bytes()
    with lock(model):
        with pytest.raises(BusyError, match="another retrain"):
            retrain(ds, model, wait=0.3)
    release = threading.Event()

    def hold() -> None:
        with lock(model):
            release.set()
            time.sleep(1.5)

    t = threading.Thread(target=hold)
    t.start()
    release.wait(10)
    t0 = time.monotonic()
    res = retrain(ds, model, wait=60, val=0.0, learning_curve=False)  # waits for the holder, then runs
    t.join()
    assert time.monotonic() - t0 >= 1.0
    recs = history(model)
    assert recs[0]["decision"] == "imported" and recs[0]["settings"]["embedder"] == "dlib-resnet"
    assert res.version == "v0002" and res.metrics["current"]["version"] == "v0001"
    if res.promoted:
        rollback(model)
        assert model.read_bytes() == original


def test_a_killed_retrain_leaves_no_half_version(tmp_path):
    people = _people()
    ds, model = tmp_path / "ds", tmp_path / "people.ffm"
    for p in people[14:16]:
        _add(ds, p, range(1, 7))
    retrain(ds, model, **FAST)
    child = textwrap.dedent(f"""
        import os, signal
        from faceforge.collect import retrain
        def die(name, payload):
            if name == "saved":  # the model file is written: killed before the version is listed
                os.kill(os.getpid(), signal.SIGKILL)
        retrain({str(ds)!r}, {str(model)!r}, on_event=die)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                         os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, timeout=300)
    assert p.returncode == -9, p.stderr.decode()[-2000:]
    folder = versions_dir(model)
    assert [r["version"] for r in history(model)] == ["v0001"]
    assert list(folder.glob(".work-*")) and not (folder / "v0002.ffm").exists()
    res = retrain(ds, model)  # the next retrain sweeps the dead one's work and reuses its number
    assert res.version == "v0002" and not list(folder.glob(".work-*"))
    (current,) = [r for r in history(model) if r["current"]]
    assert model.read_bytes() == (folder / current["file"]).read_bytes()


def test_cli_retrain_and_models(tmp_path):
    people = _people()
    ds, model = tmp_path / "ds", tmp_path / "people.ffm"
    for p in people[16:18]:
        _add(ds, p, range(1, 7))
    retrain(ds, model, **FAST)
    r = runner.invoke(app, ["retrain", str(ds), "--model", str(model), "--promote", "never", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["version"] == "v0002" and not res["promoted"] and res["reason"].startswith("kept v0001")
    r = runner.invoke(app, ["retrain", str(ds), "-m", str(model), "--margin", "0.5"])
    assert r.exit_code == 0, r.output
    assert "v0003 promoted" in r.output and "validation photos" in r.output
    r = runner.invoke(app, ["models", "history", str(model), "--json"])
    assert [(v["version"], v["current"]) for v in json.loads(r.output)] == [
        ("v0001", False), ("v0002", False), ("v0003", True)]
    assert "v0003" in runner.invoke(app, ["models", "history", str(model)]).output
    r = runner.invoke(app, ["models", "promote", str(model), "2"])
    assert r.exit_code == 0 and "v0002 is now" in r.output
    assert model.read_bytes() == (versions_dir(model) / "v0002.ffm").read_bytes()
    r = runner.invoke(app, ["models", "rollback", str(model)])
    assert r.exit_code == 0 and "v0003 is now" in r.output
    r = runner.invoke(app, ["models", "promote", str(model), "v0007"])
    assert r.exit_code == 2 and "no version 'v0007'" in r.output
    r = runner.invoke(app, ["retrain", str(ds), "-m", str(model), "--promote", "maybe"])
    assert r.exit_code == 2 and "promote must be one of" in r.output
    # `models` alone is still the table of pretrained models
    r = runner.invoke(app, ["models"])
    assert r.exit_code == 0 and "faceforge models (nothing is ever downloaded)" in r.output
    r = runner.invoke(app, ["models", "--json"])
    assert r.exit_code == 0 and {"dlib-resnet", "logreg"} <= {row["name"] for row in json.loads(r.output)}


def test_gallery_enrol_from_a_dataset_and_its_history(tmp_path):
    from faceforge.gallery import Gallery

    people = _people()
    ds, db = tmp_path / "ds", tmp_path / "g.db"
    for p in people[20:23]:
        _add(ds, p, range(1, 3))
    _add(ds, people[24], range(1, 3), label="review")
    r = runner.invoke(app, ["gallery", "enrol", "--from", str(ds), "-f", str(db)])
    assert r.exit_code == 0, r.output
    assert "6 photo(s) of 3 people enrolled" in r.output
    assert {p.name: p.faces for p in Gallery(db).people()} == {p.name: 2 for p in people[20:23]}
    r = runner.invoke(app, ["gallery", "enrol", "--from", str(ds), "-f", str(db)])  # nothing new: nothing embedded
    assert r.exit_code == 0 and "0 photo(s) of 0 people enrolled" in r.output and "enrolled already" in r.output
    _add(ds, people[20], range(3, 4))
    r = runner.invoke(app, ["gallery", "enrol", "--from", str(ds), "-f", str(db)])
    assert "1 photo(s) of 1 people enrolled" in r.output
    r = runner.invoke(app, ["gallery", "enrol", "--from", str(ds), "anna", "-f", str(db)])
    assert r.exit_code == 2 and "give no PERSON" in r.output
    r = runner.invoke(app, ["gallery", "enrol", "-f", str(db)])
    assert r.exit_code == 2 and "Give a PERSON" in r.output
    assert runner.invoke(app, ["gallery", "remove", people[21].name, "-f", str(db)]).exit_code == 0
    r = runner.invoke(app, ["gallery", "history", "-f", str(db), "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert [(e["action"], e["person"], e["photos"], e["faces"]) for e in rows] == [
        ("enrol", people[20].name, 2, 2), ("enrol", people[21].name, 2, 2), ("enrol", people[22].name, 2, 2),
        ("enrol", people[20].name, 1, 3), ("remove", people[21].name, 2, 0)]
    assert all(e["when"].endswith("+00:00") for e in rows)
    assert "remove" in runner.invoke(app, ["gallery", "history", "-f", str(db)]).output
    g = Gallery(db)
    g.drop()
    assert Gallery(db).history()[-1]["action"] == "drop" and Gallery(db).history()[-1]["photos"] == 5
    assert hashlib.sha256(db.read_bytes()).hexdigest()  # the file is still a gallery file
