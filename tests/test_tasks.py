"""Face tasks over many inputs (faceforge.tasks) on real photos: the library behind the batch commands.

Photos: the astronaut (skimage), Grace Hopper (matplotlib), two 25x25 LFW crops from scikit-image's
LFW subset that the bare detector misses (the face finder upscales them), a photo without a face
(coffee), a truncated JPEG and a text file.
"""

from __future__ import annotations

import json
import logging
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import write_panning_video
from faceforge.attributes import MODELS_DIR
from faceforge.errors import BundleError, OutputError, ParameterError, SourceError
from faceforge.pipeline import FaceFinder
from faceforge.sources import load_image
from faceforge.tasks import (ClassifyTask, DetectTask, analyze_files, classify_files, detect_files, embed_files,
                             output_stem)
from faceforge.types import Faces

GENDER = MODELS_DIR / "gender.ffm"


@pytest.fixture(scope="module")
def folder(tmp_path_factory, astronaut, grace, coffee):
    from skimage import data

    from faceforge.detectors import get_detector

    det = get_detector("yunet")
    lfw = (data.lfw_subset()[:60] * 255).astype(np.uint8)
    tiny = [np.stack([im] * 3, -1) for im in lfw if not len(det(np.stack([im] * 3, -1)))][:2]
    assert len(tiny) == 2
    d = tmp_path_factory.mktemp("tasks") / "photos"
    (d / "lfw").mkdir(parents=True)
    images = {"astronaut.png": astronaut, "coffee.jpg": coffee, "grace.jpg": grace,
              "lfw/tiny0.png": tiny[0], "lfw/tiny1.png": tiny[1]}
    for name, im in images.items():
        Image.fromarray(im).save(d / name)
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (d / "notes.txt").write_text("not a photo")
    return d, images


def _by_name(results, root):
    return {str(Path(f.meta["source"]).relative_to(root)): f for f in results}


def test_detect_files_finds_what_the_face_finder_finds_and_reports_skipped_files(folder):
    root, images = folder
    skipped: list[tuple[str, str]] = []
    results = list(detect_files([root], workers=1, skipped=skipped))
    assert all(isinstance(f, Faces) for f in results)
    got = _by_name(results, root)
    assert set(got) == set(images)  # input order, every usable photo once
    finder = FaceFinder("photo", detector_options={"min_score": 0.5})
    for name, im in images.items():
        want = finder.find(load_image(root / name))  # the file as stored (grace.jpg: JPEG-compressed)
        np.testing.assert_allclose(got[name].xyxy, want.xyxy, atol=0.01, err_msg=name)
        np.testing.assert_allclose(got[name].landmarks, want.landmarks, atol=0.01, err_msg=name)
        m = got[name].meta
        assert (m["width"], m["height"]) == (im.shape[1], im.shape[0]) and m["frame"] == 0
        assert m["detector"] == "yunet" and m["ms"] > 0
    assert [len(got[n]) for n in ("astronaut.png", "grace.jpg", "lfw/tiny0.png", "coffee.jpg")] == [1, 1, 1, 0]
    reasons = dict(skipped)
    assert set(reasons) == {str(root / "broken.jpg"), str(root / "notes.txt")}
    assert reasons[str(root / "notes.txt")] == "not an image or video"
    assert "broken.jpg" in reasons[str(root / "broken.jpg")]


def test_detect_files_gives_the_same_faces_as_the_cli(folder, tmp_path):
    from faceforge.cli.main import app

    root, _ = folder
    r = CliRunner().invoke(app, ["detect", str(root), "--jsonl", str(tmp_path / "d.jsonl"), "--workers", "1"])
    assert r.exit_code == 0, r.output
    cli = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    lib = list(detect_files([root], workers=1, skipped=[]))
    assert [c["file"] for c in cli] == [f.meta["source"] for f in lib]
    for c, f in zip(cli, lib):
        assert c["faces"] == f.to_dicts()
        assert (c["width"], c["height"], c["detector"]) == (f.meta["width"], f.meta["height"], f.meta["detector"])


def test_arguments_fail_at_call_time_and_skips_are_logged_without_a_list(folder, tmp_path, caplog):
    root, _ = folder
    with pytest.raises(ParameterError, match="Did you mean 'yunet'"):
        detect_files([root], detector="yunett")
    with pytest.raises(SourceError, match="no such file or folder"):
        detect_files([tmp_path / "nowhere"])
    with pytest.raises(BundleError):
        classify_files(tmp_path, [root])
    with caplog.at_level(logging.WARNING, logger="faceforge.tasks"):
        assert len(list(detect_files([root], workers=1))) == 5
    assert "broken.jpg" in caplog.text and "notes.txt" in caplog.text


def test_side_outputs_follow_the_stem_rule_and_never_overwrite_inputs(folder, tmp_path, astronaut):
    root, _ = folder
    out = tmp_path / "out"
    skipped: list[tuple[str, str]] = []
    list(detect_files([root / "astronaut.png", root / "lfw"], crops=out / "crops", annotate=out / "ann", workers=1,
                      skipped=skipped))
    assert not skipped
    assert sorted(p.name for p in (out / "crops").iterdir()) == ["astronaut_face0.png", "tiny0_face0.png",
                                                                  "tiny1_face0.png"]
    assert sorted(p.name for p in (out / "ann").iterdir()) == ["astronaut.jpg", "tiny0.jpg", "tiny1.jpg"]
    before = (root / "grace.jpg").read_bytes()
    with pytest.raises(OutputError, match="Refusing to overwrite the input file .*grace.jpg"):  # refused up front
        detect_files([root / "grace.jpg"], annotate=root, workers=1)  # grace.jpg -> grace.jpg
    assert (root / "grace.jpg").read_bytes() == before
    list(detect_files([root / "grace.jpg"], crops=out / "margin", crop_template="margin", crop_size=64, workers=1))
    assert Image.open(out / "margin" / "grace_face0.png").size == (64, 64)

    clip = write_panning_video(tmp_path / "clip.avi", astronaut, frames=3, step=8)
    frames = list(detect_files([clip], crops=out / "vid", workers=1))
    assert [f.meta["frame"] for f in frames] == [0, 1, 2] and all(len(f) == 1 for f in frames)
    assert sorted(p.name for p in (out / "vid").iterdir()) == ["clip_f000001_face0.png", "clip_f000002_face0.png",
                                                                "clip_face0.png"]


def test_output_stem_for_stills_and_video_frames(tmp_path):
    assert output_stem("photos/sub/a.jpg") == "a"
    assert output_stem(tmp_path / "my photo.png", 0) == "my_photo"
    assert output_stem("clip.mp4", 12) == "clip_f000012"
    assert output_stem("clip.mp4", 0) == "clip"  # the first frame is named like a still


def test_classify_files_labels_every_face_with_the_built_in_gender_model(folder):
    root, images = folder
    skipped: list[tuple[str, str]] = []
    got = _by_name(classify_files(GENDER, [root], workers=1, skipped=skipped), root)
    assert set(got) == set(images) and len(skipped) == 2
    f = got["astronaut.png"]
    assert f.meta["model"] == "gender" and len(f) == 1
    (p,) = f.predictions["gender"]
    assert p.label == "female" and 0.5 < p.score <= 1
    assert [lab for lab, _ in p.top_k] == ["female", "male"]
    for f in got.values():
        assert len(f.predictions["gender"]) == len(f)
        assert all(p.label in ("female", "male") for p in f.predictions["gender"])
    rec = got["astronaut.png"].to_dicts(flatten="gender")[0]
    assert rec["label"] == "female" and "detection_score" in rec


def test_embed_and_analyze_files(folder, tmp_path):
    root, _ = folder
    emb = _by_name(embed_files([root / "astronaut.png", root / "grace.jpg", root / "coffee.jpg"], workers=1), root)
    assert emb["astronaut.png"].embedding.shape == (1, 128) and len(emb["coffee.jpg"]) == 0
    d = np.linalg.norm(emb["astronaut.png"].embedding[0] - emb["grace.jpg"].embedding[0])
    assert d > 0.6  # two different people
    own = shutil.copy(GENDER, tmp_path / "sex.ffm")  # a user's model file, reported under its stem
    an = _by_name(analyze_files([root / "astronaut.png"], attributes=["gender"], models=[own], workers=1), root)
    (face,) = an["astronaut.png"].rows()
    assert set(face.predictions) == {"gender", "sex"}
    assert face["gender"].label == face["sex"].label == "female"


def test_tasks_pickle_without_their_models(astronaut):
    from faceforge.runner import WorkItem as Item

    for task in (DetectTask("photo"), ClassifyTask(GENDER)):
        first = task(astronaut, Item("a.png"))
        again = pickle.loads(pickle.dumps(task))
        assert all(getattr(again, k) is None for k in task._cached)  # the models stay behind
        np.testing.assert_allclose(again(astronaut, Item("a.png")).xyxy, first.xyxy)
