"""Pseudo-labelling with a teacher: manifest, class folders, resume, balance."""

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import shared_path
from faceforge.bootstrap.autolabel import autolabel
from faceforge.cli.main import app
from faceforge.errors import ParameterError
from faceforge.train import train

runner = CliRunner()


@pytest.fixture(scope="module")
def utk(tmp_path_factory):
    """A gender teacher from 25 + 25 UTKFace photos, and 60 other photos with labels hidden."""
    root = shared_path("utkface")
    rows = list(csv.DictReader(open(root / "labels.csv")))
    male = [r for r in rows if r["gender"] == "male"]
    female = [r for r in rows if r["gender"] == "female"]
    base = tmp_path_factory.mktemp("utk")
    for cls, part in (("male", male[:25]), ("female", female[:25])):
        (base / "train" / cls).mkdir(parents=True)
        for r in part:
            (base / "train" / cls / r["file"]).symlink_to(root / "images" / r["file"])
    (base / "unlabelled").mkdir()
    truth = {}
    for r in male[100:130] + female[100:130]:
        (base / "unlabelled" / r["file"]).symlink_to(root / "images" / r["file"])
        truth[r["file"]] = r["gender"]
    train(base / "train", base / "teacher.ffm", embedder="agegender", val=0.0, progress=False, learning_curve=False)
    return base, truth


def test_autolabel_writes_classes_manifest_and_resumes(utk, tmp_path):
    base, truth = utk
    out = tmp_path / "pseudo"
    res = autolabel(base / "teacher.ffm", [base / "unlabelled"], out, min_confidence=0.6, workers=2, progress=False)
    assert len(res.faces) == 60 and res.resumed == 0
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    assert len(rows) == 60 and set(rows[0]) >= {"source", "label", "confidence", "kept", "crop"}
    kept = [r for r in rows if r["kept"] == "1"]
    assert all(float(r["confidence"]) >= 0.6 for r in kept)
    assert all((out / r["crop"]).is_file() for r in kept)
    assert sum(res.counts.values()) == len(kept) == sum(1 for p in out.glob("*/*.jpg"))
    right = np.mean([truth[r["source"].split("/")[-1]] == r["label"] for r in kept])
    assert right >= 0.8                                             # the teacher's kept labels are mostly right
    summary = json.loads((out / "summary.json").read_text())
    assert sum(summary["histogram"].values()) == 60
    # resume: a second run finds every image done and changes nothing
    res2 = autolabel(base / "teacher.ffm", [base / "unlabelled"], out, min_confidence=0.6, progress=False)
    assert res2.resumed == 60 and res2.counts == res.counts
    # an interrupted run: drop the last 20 progress lines, rerun, same result
    prog = out / ".progress.jsonl"
    lines = prog.read_text().splitlines()
    prog.write_text("\n".join(lines[:-20]) + "\n" + lines[-20][:30])  # and a half-written line
    res3 = autolabel(base / "teacher.ffm", [base / "unlabelled"], out, min_confidence=0.6, progress=False, workers=1)
    assert res3.resumed == 40 and res3.counts == res.counts
    # the class folders train a student directly
    r = runner.invoke(app, ["train", str(out), "-o", str(tmp_path / "student.ffm"), "--val", "0", "--no-curve",
                            "--embedder", "agegender", "--workers", "1"])
    assert r.exit_code == 0, r.output


def test_balance_cap_evens_out_classes(utk, tmp_path):
    base, _ = utk
    res = autolabel(base / "teacher.ffm", [base / "unlabelled"], tmp_path / "b", min_confidence=0.5,
                    balance="cap", progress=False, workers=1)
    assert len(set(res.counts.values())) == 1 and res.skew == 1.0
    # what the cap dropped, per class: eligible (main, confident) faces = kept + dropped
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["balance_dropped"] == res.dropped and sum(res.dropped.values()) > 0
    for c, n in res.counts.items():
        eligible = [r for r in res.faces if r["label"] == c and r["main"] and r["confidence"] >= 0.5]
        assert n + res.dropped.get(c, 0) == len(eligible)
        assert sum(r["reason"] == "balance" for r in res.faces if r["label"] == c) == res.dropped.get(c, 0)
    r = runner.invoke(app, ["autolabel", str(base / "unlabelled"), "-m", str(base / "teacher.ffm"),
                            "-o", str(tmp_path / "b2"), "--balance", "cap", "--min-confidence", "0.5",
                            "--workers", "1"])
    assert r.exit_code == 0 and "balance cap dropped: " in r.output, r.output
    with pytest.raises(ParameterError):
        autolabel(base / "teacher.ffm", [base / "unlabelled"], tmp_path / "c", balance="magic")


def test_cli_autolabel(utk, tmp_path):
    base, _ = utk
    r = runner.invoke(app, ["autolabel", str(base / "unlabelled"), "-m", str(base / "teacher.ffm"),
                            "-o", str(tmp_path / "o"), "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "60 faces labelled" in r.output and "confidence:" in r.output
    assert "Next: faceforge distil" in r.output


def test_only_the_main_face_of_a_photo_gets_its_label(utk, tmp_path):
    """A group photo of two real faces: the centred, larger one is labelled; the other is background."""
    from PIL import Image

    base, truth = utk
    files = sorted(truth)
    big = Image.open(base / "unlabelled" / files[0]).convert("RGB").resize((300, 300))
    small = Image.open(base / "unlabelled" / files[-1]).convert("RGB").resize((150, 150))
    group = Image.new("RGB", (700, 420), (128, 128, 128))
    group.paste(big, (200, 60))
    group.paste(small, (540, 250))
    (tmp_path / "in").mkdir()
    group.save(tmp_path / "in" / "group.jpg", quality=95)
    res = autolabel(base / "teacher.ffm", [tmp_path / "in"], tmp_path / "o", min_confidence=0.0, progress=False,
                    workers=1)
    assert len(res.faces) == 2 and res.background == 1, res.faces
    main = [r for r in res.faces if r["main"]]
    assert len(main) == 1 and main[0]["box"][0] < 540 and main[0]["kept"]
    back = [r for r in res.faces if not r["main"]][0]
    assert not back["kept"] and back["reason"] == "background"
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["main_faces"] == 1 and summary["background_faces"] == 1 and sum(summary["kept"].values()) == 1
    res = autolabel(base / "teacher.ffm", [tmp_path / "in"], tmp_path / "o2", min_confidence=0.0, progress=False,
                    workers=1, faces="all")
    assert sum(res.counts.values()) == 2


def test_distil_student_matches_teacher(utk, tmp_path):
    from faceforge.bootstrap import distil

    base, truth = utk
    pseudo = tmp_path / "pseudo"
    autolabel(base / "teacher.ffm", [base / "unlabelled"], pseudo, min_confidence=0.5, progress=False, workers=2)
    test = tmp_path / "test.csv"
    test.write_text("file,gender\n" + "".join(f"{base / 'unlabelled' / f},{g}\n" for f, g in truth.items()))
    res = distil(pseudo, tmp_path / "student.ffm", embedder="agegender", detector="yunet", test=test,
                 test_options={"label_column": "gender"}, progress=False, latency_samples=5)
    # agreement on the teacher's own faces, in photos the probe student never saw (same embedder: high)
    a = res.agreement_detail
    assert res.agreement is not None and res.agreement >= 0.85, a
    assert a["photos"] >= 8 and a["faces"] + a["missed"] >= a["photos"] and a["faces"] >= 6
    assert set(res.test) == {"student", "teacher"} and res.test["student"]["images"] == 60
    assert res.test["student"]["balanced_accuracy"] >= res.test["teacher"]["balanced_accuracy"] - 0.15
    assert set(res.latency_ms) == {"student", "teacher"} and all(v > 0 for v in res.latency_ms.values())
    # the default student: chosen by the same feature search as train (issue 13)
    r = runner.invoke(app, ["distil", str(pseudo), "-o", str(tmp_path / "s2.ffm"), "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "agreement with the teacher" in r.output and "held-out photos" in r.output
    assert "latency per image" in r.output and "chosen by the feature search" in r.output
    from faceforge.train import load_classifier

    assert load_classifier(tmp_path / "s2.ffm").manifest["embedder"] in r.output
