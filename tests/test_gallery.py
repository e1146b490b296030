"""Identity galleries on real faces: enrol, identify, verify, remove; as a model in Analyzer; the CLI."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from conftest import shared_path, variants
from faceforge.errors import ImageError, ParameterError
from faceforge.gallery import Gallery, GalleryError, list_galleries


@pytest.fixture()
def gallery(tmp_path, astronaut, grace):
    g = Gallery(tmp_path / "people.db", "crew")
    g.enrol("eileen", variants(astronaut, 2))
    g.enrol("grace", variants(grace, 2))
    return g


def test_enrol_reports_each_photo(tmp_path, astronaut, coffee):
    g = Gallery(tmp_path / "g.db")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    rep = g.enrol("eileen", [astronaut, coffee, tmp_path / "broken.jpg", astronaut])
    assert rep.added == ["photo 1"]
    assert rep.duplicates == ["photo 4"]  # the same photo again is stored once
    problems = dict(rep.problems)
    assert "no face" in problems["photo 2"]
    assert str(tmp_path / "broken.jpg") in problems
    assert rep.faces == 1 and [p.name for p in g.people()] == ["eileen"]


def test_enrol_refuses_a_new_person_without_faces_and_bad_names(tmp_path, coffee, astronaut):
    g = Gallery(tmp_path / "g.db")
    with pytest.raises(ParameterError, match="No face could be enrolled"):
        g.enrol("nobody", [coffee])
    assert "nobody" not in g
    for bad in ["", "../etc", "a/b", "x" * 65, " "]:
        with pytest.raises(ParameterError, match="Invalid person name"):
            g.enrol(bad, [astronaut])


def test_identify_and_verify(gallery, astronaut, grace, coffee):
    shifted = np.roll(astronaut, 40, axis=1)
    (m,) = gallery.identify(shifted).predictions[gallery.name]
    assert m.label == "eileen" and m.distance < 0.4 and m.threshold == gallery.threshold
    assert [n for n, _ in m.top_k] == ["eileen", "grace"]
    assert gallery.identify(grace[:, ::-1].copy()).predictions[gallery.name][0].label == "grace"
    assert len(gallery.identify(coffee)) == 0
    v = gallery.verify(shifted, "eileen")
    assert v.same and v.distance < 0.4
    assert not gallery.verify(shifted, "grace").same
    with pytest.raises(GalleryError, match="No person 'bob'"):
        gallery.verify(shifted, "bob")
    with pytest.raises(ImageError, match="no face"):
        gallery.verify(coffee, "eileen")


def test_remove_deletes_every_face(gallery, astronaut):
    assert gallery.remove("eileen") == 2
    assert [p.name for p in gallery.people()] == ["grace"]
    (m,) = gallery.identify(astronaut).predictions[gallery.name]
    assert m.label == "unknown" and m.distance > gallery.threshold
    db = sqlite3.connect(gallery.path)
    assert db.execute("SELECT COUNT(*) FROM faces").fetchone()[0] == 2  # grace's only
    with pytest.raises(GalleryError):
        gallery.remove("eileen")


def test_galleries_in_one_file_are_separate(gallery, tmp_path, astronaut):
    other = Gallery(gallery.path, "visitors")
    assert other.people() == []
    assert other.identify(astronaut).predictions["visitors"][0].label == "unknown"
    assert list_galleries(gallery.path) == ["crew", "visitors"]
    other.drop()
    assert list_galleries(gallery.path) == ["crew"]
    assert len(gallery) == 2


def test_gallery_is_a_face_model_for_the_analyzer(gallery, astronaut):
    from faceforge.attributes import Analyzer

    (face,) = Analyzer(["gender"], {"identity": gallery}).analyze(astronaut).rows()
    assert face["identity"].label == "eileen" and face["gender"].label == "female"
    assert face.to_dict()["identity"]["known_score"] > 0.6


def test_strangers_are_unknown_on_real_photos(tmp_path):
    root = shared_path("identity", "knn_examples")
    g = Gallery(tmp_path / "g.db")
    for person in ["obama", "biden", "kit_harington"]:
        g.enrol(person, sorted((root / "train" / person).iterdir()))
    labels = sorted(m.label for m in g.identify(root / "test" / "obama_and_biden.jpg").predictions[g.name])
    assert labels == ["biden", "obama", "unknown"]  # the third face is nobody enrolled
    assert g.identify(root / "test" / "alex_lacamoire1.jpg").predictions[g.name][0].label == "unknown"
    assert g.identify(root / "test" / "johnsnow_test1.jpg").predictions[g.name][0].label == "kit_harington"


def test_cli_enrol_identify_verify_remove(tmp_path, astronaut, grace):
    from conftest import jpeg

    for name, img in [("a1.jpg", astronaut), ("a2.jpg", astronaut[:, ::-1].copy()), ("g1.jpg", grace)]:
        (tmp_path / name).write_bytes(jpeg(img))
    db = tmp_path / "crew.db"
    ff = [sys.executable, "-m", "faceforge.cli.main"]

    def run(*args):
        return subprocess.run([*ff, *args], capture_output=True, text=True, timeout=120)

    r = run("gallery", "enrol", "eileen", str(tmp_path / "a1.jpg"), str(tmp_path / "a2.jpg"), "-f", str(db))
    assert r.returncode == 0, r.stderr
    assert "2 photo(s) added" in r.stdout
    assert run("gallery", "enrol", "grace", str(tmp_path / "g1.jpg"), "-f", str(db)).returncode == 0
    r = run("gallery", "list", "-f", str(db), "--json")
    assert {p["name"]: p["faces"] for p in json.loads(r.stdout)} == {"eileen": 2, "grace": 1}
    r = run("gallery", "identify", str(tmp_path / "g1.jpg"), "-f", str(db), "--jsonl", str(tmp_path / "id.jsonl"))
    assert r.returncode == 0 and "grace" in r.stdout
    face = json.loads((tmp_path / "id.jsonl").read_text())["faces"][0]
    assert face["label"] == "grace" and (face["threshold"], face["far"]) == (0.46, 0.01)
    assert "threshold 0.460, expected false-accept rate 1%" in r.stderr
    r = run("gallery", "identify", str(tmp_path / "g1.jpg"), "-f", str(db), "--target-far", "0.001",
            "--jsonl", str(tmp_path / "strict.jsonl"))
    assert r.returncode == 0 and json.loads((tmp_path / "strict.jsonl").read_text())["faces"][0]["far"] == 0.001
    r = run("gallery", "verify", "eileen", str(tmp_path / "a1.jpg"), "-f", str(db), "--json", "--threshold", "0.3")
    assert r.returncode == 0 and json.loads(r.stdout)["threshold"] == 0.3
    r = run("gallery", "verify", "eileen", str(tmp_path / "a1.jpg"), "-f", str(db), "--target-far", "0.05")
    assert r.returncode == 0 and "expected false-accept rate 5%" in r.stdout
    r = run("verify", str(tmp_path / "a1.jpg"), str(tmp_path / "g1.jpg"), "--json", "--target-far", "0.001")
    v = json.loads(r.stdout)
    assert v["same"] is False and (v["threshold"], v["far"]) == (0.5, 0.001)
    r = run("verify", str(tmp_path / "a1.jpg"), str(tmp_path / "a2.jpg"), "--threshold", "0.65")
    assert "threshold 0.65" in r.stdout and "expected false-accept rate 3.2%" in r.stdout
    r = run("gallery", "identify", str(tmp_path / "g1.jpg"), "-f", str(db), "--target-far", "0.5")
    assert r.returncode != 0 and "target false-accept rate must be between" in r.stderr
    assert run("gallery", "verify", "eileen", str(tmp_path / "a1.jpg"), "-f", str(db)).returncode == 0
    assert run("gallery", "verify", "grace", str(tmp_path / "a1.jpg"), "-f", str(db)).returncode == 1
    r = run("analyze", str(tmp_path / "a1.jpg"), "-a", "gender", "-g", str(db), "--workers", "1",
            "--jsonl", str(tmp_path / "an.jsonl"))
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "an.jsonl").read_text())["faces"][0]["identity"]["label"] == "eileen"
    assert run("gallery", "remove", "eileen", "-f", str(db)).returncode == 0
    r = run("gallery", "list", "-f", str(db), "-n", "nope")
    assert r.returncode == 2 and "no gallery 'nope'" in r.stderr


# -- calibrated thresholds (issue 13) -----------------------------------------------------------------
def test_default_threshold_comes_from_the_target_false_accept_rate(tmp_path):
    from faceforge.registry import get_spec

    table = dict(get_spec("dlib-resnet").input["far_thresholds"])
    g = Gallery(tmp_path / "g.db")
    assert g.target_far == 0.01 and g.threshold == table[0.01] and g.expected_far == 0.01
    strict, lenient = Gallery(g.path, target_far=0.001), Gallery(g.path, target_far=0.05)
    assert strict.threshold < g.threshold < lenient.threshold < 0.6
    assert strict.expected_far == 0.001 and lenient.expected_far == 0.05
    explicit = Gallery(g.path, threshold=0.5, target_far=0.001)  # an explicit threshold wins
    assert explicit.threshold == 0.5 and table[0.02] < 0.5 < table[0.05] and 0.02 < explicit.expected_far < 0.05
    assert Gallery(g.path, threshold=0.9).expected_far is None  # beyond the calibrated range: not known
    for bad in (0.0, 0.5, -1, "often"):
        with pytest.raises(ParameterError, match="target false-accept rate must be between 0.001 and 0.1"):
            Gallery(g.path, target_far=bad)
    with pytest.raises(ParameterError, match="threshold must be a distance >= 0"):
        Gallery(g.path, threshold=-0.1)


def test_a_larger_gallery_than_calibrated_gets_a_stricter_threshold(tmp_path, astronaut):
    from faceforge.pipeline.verify import decision_threshold

    assert decision_threshold("dlib-resnet", 0.6, None, 0.01, "gallery", 30) == (0.46, 0.01)
    thr, far = decision_threshold("dlib-resnet", 0.6, None, 0.01, "gallery", 60)
    assert thr < 0.46 and far == pytest.approx(0.01, abs=1e-4)  # FAR grows with the people compared
    assert decision_threshold("dlib-resnet", 0.6, 0.46, None, "gallery", 60)[1] == pytest.approx(0.02)
    assert decision_threshold("effnet-lite0", None, None, 0.01) == (0.6, None)  # no calibration: unknown FAR


def test_answers_carry_the_threshold_and_its_false_accept_rate(gallery, astronaut):
    shifted = np.roll(astronaut, 40, axis=1)
    (m,) = gallery.identify(shifted).predictions[gallery.name]
    assert (m.threshold, m.far) == (gallery.threshold, gallery.expected_far) == (0.46, 0.01)
    (d,) = gallery.identify(shifted).to_dicts(flatten=gallery.name)
    assert d["label"] == "eileen" and d["threshold"] == 0.46 and d["far"] == 0.01
    json.dumps(d, allow_nan=False)
    (m,) = gallery.identify(shifted, threshold=0.01).predictions[gallery.name]  # per call
    assert m.label == "unknown" and m.threshold == 0.01 and m.far == 0.001
    (m,) = gallery.identify(shifted, target_far=0.1).predictions[gallery.name]
    assert m.label == "eileen" and m.threshold > 0.46 and m.far == 0.1
    (m,) = Gallery(gallery.path, "crew").predict_faces(shifted, gallery.identify(shifted))
    assert m.far == 0.01
    v = gallery.verify(shifted, "eileen")
    assert v.same and (v.threshold, v.far) == (0.46, 0.01) and v.to_dict()["far"] == 0.01
    v = gallery.verify(shifted, "eileen", threshold=0.01)
    assert not v.same and v.threshold == 0.01
    with pytest.raises(ParameterError, match="target false-accept rate"):
        gallery.identify(shifted, target_far=0.9)


def test_strangers_from_lfw_are_unknown_without_shared_data(gallery):
    """Enrolled: Eileen Collins and Grace Hopper; strangers: scikit-image's 100 LFW faces."""
    from skimage import data

    strangers = (data.lfw_subset()[:100] * 255).astype(np.uint8)
    labels, distances = [], []
    for face in strangers:
        for m in gallery.identify(np.repeat(face[..., None], 3, 2)).predictions[gallery.name][:1]:
            labels.append(m.label)
            distances.append(m.distance)
    assert len(labels) >= 90
    assert labels.count("unknown") >= 0.98 * len(labels), sorted(zip(distances, labels))[:5]


def test_a_gallery_of_att_people_rejects_strangers(tmp_path):
    root = shared_path("identity", "att_faces")
    g = Gallery(tmp_path / "g.db")
    enrolled, strangers = [f"s{i}" for i in range(1, 11)], [f"s{i}" for i in range(31, 41)]
    for p in enrolled:
        g.enrol(p, [root / p / f"{k}.pgm" for k in (1, 2, 3)])
    stranger_d = np.array([g.identify(root / p / f"{k}.pgm").predictions[g.name][0].distance
                           for p in strangers for k in (1, 5, 9)])
    assert (stranger_d <= g.threshold).sum() <= 2  # the old 0.6 accepted about a third of them:
    assert (stranger_d <= 0.6).sum() >= 5
    found = [g.identify(root / p / f"{k}.pgm").predictions[g.name][0].label == p for p in enrolled for k in (6, 9)]
    assert sum(found) >= 16  # of 20 new photos of the enrolled people


def test_pair_verification_is_calibrated(astronaut, grace):
    from faceforge.pipeline import FacePipeline, verify

    pipe = FacePipeline()
    v = verify(astronaut, np.roll(astronaut, 30, axis=1), pipeline=pipe)
    assert v.same and (v.threshold, v.far) == (0.6, 0.01) and v.to_dict()["far"] == 0.01
    strict = verify(astronaut, grace, pipeline=pipe, target_far=0.001)
    assert not strict.same and strict.threshold < 0.6 and strict.far == 0.001
    assert verify(astronaut, grace, 0.55, pipe, target_far=0.1).threshold == 0.55  # explicit wins
    with pytest.raises(ParameterError, match="target false-accept rate"):
        verify(astronaut, grace, pipeline=pipe, target_far=2)


def test_api_identify_and_verify_take_threshold_and_target_far(tmp_path, astronaut, grace):
    from conftest import jpeg

    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from faceforge.service import create_app

    with TestClient(create_app(home=tmp_path, run_jobs=False)) as c:
        files = [("files", (f"a{i}.jpg", jpeg(x), "image/jpeg")) for i, x in enumerate(variants(astronaut, 2))]
        assert c.post("/api/galleries/crew/people/eileen/photos", files=files).status_code == 201
        photo = {"file": ("q.jpg", jpeg(np.roll(astronaut, 40, axis=1)), "image/jpeg")}
        r = c.post("/api/galleries/crew/identify", files=photo).json()
        assert (r["threshold"], r["far"]) == (0.46, 0.01)
        assert r["faces"][0]["label"] == "eileen" and r["faces"][0]["far"] == 0.01
        r = c.post("/api/galleries/crew/identify", files=photo, data={"threshold": "0.01"}).json()
        assert r["threshold"] == 0.01 and r["faces"][0]["label"] == "unknown"
        r = c.post("/api/galleries/crew/identify", files=photo, data={"target_far": "0.001"}).json()
        assert r["threshold"] < 0.46 and r["far"] == 0.001
        r = c.post("/api/galleries/crew/verify", files=photo, data={"person": "eileen", "target_far": "0.05"})
        assert r.status_code == 200 and r.json()["same"] and r.json()["far"] == 0.05 and r.json()["threshold"] > 0.46
        r = c.post("/api/galleries/crew/verify", files=photo, data={"person": "eileen", "threshold": "0.01"}).json()
        assert not r["same"] and r["threshold"] == 0.01
        r = c.post("/api/galleries/crew/identify", files=photo, data={"target_far": "0.5"})
        assert r.status_code == 422 and "target false-accept rate" in r.json()["detail"]
