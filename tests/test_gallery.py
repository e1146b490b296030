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
    assert json.loads((tmp_path / "id.jsonl").read_text())["faces"][0]["label"] == "grace"
    assert run("gallery", "verify", "eileen", str(tmp_path / "a1.jpg"), "-f", str(db)).returncode == 0
    assert run("gallery", "verify", "grace", str(tmp_path / "a1.jpg"), "-f", str(db)).returncode == 1
    r = run("analyze", str(tmp_path / "a1.jpg"), "-a", "gender", "-g", str(db), "--workers", "1",
            "--jsonl", str(tmp_path / "an.jsonl"))
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "an.jsonl").read_text())["faces"][0]["identity"]["label"] == "eileen"
    assert run("gallery", "remove", "eileen", "-f", str(db)).returncode == 0
    r = run("gallery", "list", "-f", str(db), "-n", "nope")
    assert r.returncode == 2 and "no gallery 'nope'" in r.stderr
