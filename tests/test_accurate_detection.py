"""The accurate preset's detection (issue 19, point 2): views mapped back into the photo, weighted box
fusion, the registry's threshold, and the switch through the finder, the pipeline, the CLI and the API."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from conftest import jpeg
from faceforge.errors import ParameterError
from faceforge.types import Faces, iou_matrix


def _faces(boxes, scores):
    boxes = np.asarray(boxes, np.float32)
    lm = np.stack([np.stack([boxes[:, 0] + k, boxes[:, 1] + k], axis=1) for k in range(5)], axis=1)
    return Faces(boxes, np.asarray(scores, np.float32), lm)


def _crowd(astronaut, size, sizes):
    """A grey photo of ``size`` (w, h) with a copy of the astronaut per face height in ``sizes``, in
    rows of six; returns the photo and the face boxes."""
    canvas = np.full((size[1], size[0], 3), 120, np.uint8)
    boxes = []
    for i, px in enumerate(sizes):
        s = px / 90  # the astronaut's face is about 90 px tall in the 512 px photo
        small = cv2.resize(astronaut, (round(512 * s), round(512 * s)), interpolation=cv2.INTER_AREA)
        x, y = (60 + 160 * (i % 6), 60 + 240 * (i // 6))
        canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
        # the face box in this copy: the astronaut's box (about x 175-270, y 60-180 of 512) scaled
        boxes.append(np.array([175, 60, 270, 180]) * s + [x, y, x, y])
    return canvas, np.array(boxes, np.float32)


@pytest.fixture(scope="module")
def crowd(astronaut):
    """A 1024x768 grey photo with 12 copies of the astronaut whose faces are 9 to 14 px tall (yunet's
    smallest at this size: it misses the 9 px ones) and 4 copies at 40 px (easy)."""
    canvas, boxes = _crowd(astronaut, (1024, 768), [9, 10, 11, 12, 13, 14] * 2 + [40] * 4)
    return canvas, boxes[:12], boxes[12:]


def test_a_mirrored_view_maps_back_onto_the_photo(astronaut):
    from faceforge.detectors import get_detector
    from faceforge.detectors.tta import view_faces

    det = get_detector("yunet", cached=False, landmarks="raw")
    plain = view_faces(det, astronaut)
    mirrored = view_faces(det, astronaut, 1.0, True)
    enlarged = view_faces(det, astronaut, 2.0, False)
    assert len(plain) == len(mirrored) == len(enlarged) == 1
    for other in (mirrored, enlarged):
        assert iou_matrix(plain.xyxy, other.xyxy)[0, 0] > 0.85
        # the same landmark in the same slot (eyes and mouth corners swapped back: unswapped, the eyes
        # would be 46 px apart); yunet's raw mouth points move a few pixels between views
        d = np.abs(other.landmarks - plain.landmarks)[0]
        assert d[:2].max() < 5 and d.max() < 10
    assert plain.landmarks[0, 0, 0] < plain.landmarks[0, 1, 0]  # slot order kept: left of the image first


def test_fusion_averages_boxes_and_shares_the_score_among_views():
    from faceforge.detectors.tta import fuse

    a = _faces([[100, 100, 200, 200], [500, 500, 520, 520]], [0.9, 0.6])
    b = _faces([[104, 100, 204, 200]], [0.6])
    f = fuse([a, b], iou=0.5, method="wbf")
    assert len(f) == 2
    np.testing.assert_allclose(f.xyxy[0], [101.6, 100, 201.6, 200], atol=1e-4)  # weighted by 0.9 / 0.6
    np.testing.assert_allclose(f.score, [0.75, 0.3], atol=1e-6)  # (0.9+0.6)/2, and 0.6/2: one view of two
    m = fuse([a, b], iou=0.5, method="max")
    np.testing.assert_allclose(m.score, [0.9, 0.6], atol=1e-6)
    # a view never joins one face twice: two overlapping faces of one view stay two
    c = _faces([[100, 100, 200, 200], [110, 100, 210, 200]], [0.9, 0.8])
    assert len(fuse([c], iou=0.5)) == 2
    # size-aware: the 20 px face is too small (min 24 px) for the two 1x views, which do not count
    # against it; the 100 px face is seen by all three views
    sized = fuse([a, b, _faces([[500, 500, 520, 520]], [0.8])], iou=0.5, scales=[1, 1, 2], min_size=24)
    np.testing.assert_allclose(sized.score, [(0.6 + 0.8) / 2, (0.9 + 0.6) / 3], atol=1e-6)
    plain = fuse([a, b, _faces([[500, 500, 520, 520]], [0.8])], iou=0.5)
    np.testing.assert_allclose(plain.score, [(0.9 + 0.6) / 3, (0.6 + 0.8) / 3], atol=1e-6)
    with pytest.raises(ParameterError):
        fuse([a], method="mean")


def test_the_accurate_detector_finds_faces_too_small_for_the_fast_one(crowd):
    from faceforge.detectors import detector_for, get_detector
    from faceforge.detectors.tta import AugmentedDetector

    canvas, tiny, easy = crowd
    fast = get_detector("yunet")(canvas)
    acc_det = detector_for("yunet", "accurate")
    assert isinstance(acc_det, AugmentedDetector) and acc_det.name == "yunet"
    acc = acc_det(canvas)

    def found(faces, boxes):
        return int((iou_matrix(boxes, faces.xyxy).max(axis=1) >= 0.3).sum()) if len(faces) else 0

    assert found(acc, easy) == found(fast, easy) == 4
    assert found(acc, tiny) == len(tiny) and found(fast, tiny) <= len(tiny) - 2  # the enlarged views
    assert len(acc) - found(acc, tiny) - found(acc, easy) <= 1  # no more than one false face on a plain photo
    assert acc.detector == "yunet" and acc.landmarks.shape == (len(acc), 5, 2)


def test_enlarged_views_enlarge_photos_over_the_detectors_max_size(astronaut):
    """A 2560 px photo: yunet shrinks it to 1280 px, where its faces are 8-13 px; the 2x views must see
    it at 2560 px, not be shrunk back to 1280 by the detector."""
    from faceforge.detectors import detector_for, get_detector

    canvas, boxes = _crowd(astronaut, (1280, 960), [8, 9, 10, 11, 12, 13] * 2)
    big, boxes = cv2.resize(canvas, (2560, 1920), interpolation=cv2.INTER_LINEAR), boxes * 2

    def found(faces):
        return int((iou_matrix(boxes, faces.xyxy).max(axis=1) >= 0.3).sum()) if len(faces) else 0

    n_fast, n_acc = found(get_detector("yunet")(big)), found(detector_for("yunet", "accurate")(big))
    assert n_fast <= len(boxes) - 2 and n_acc >= n_fast + 2


def test_the_switch_reaches_the_finder_and_leaves_other_detectors_alone(astronaut):
    from faceforge.detectors import detector_for, get_detector
    from faceforge.detectors.tta import AugmentedDetector, accurate_config
    from faceforge.pipeline import FaceFinder, FacePipeline

    assert detector_for("photo", "fast") is get_detector("photo")
    assert detector_for("haar", "accurate") is get_detector("haar")  # no accurate views in the registry
    cfg = accurate_config("yunet")
    assert cfg["views"] and 0 < cfg["floor"] <= cfg["min_score"] < 1
    assert detector_for("photo", "accurate") is detector_for("yunet", "accurate")  # one per process
    own = detector_for("yunet", "accurate", views=[[1, False], [1, True]])  # a list option: built afresh
    assert own.views == ((1.0, False), (1.0, True)) and own is not detector_for("yunet", "accurate")
    assert isinstance(FaceFinder("photo", quality="accurate").detector, AugmentedDetector)
    assert isinstance(FacePipeline(quality="accurate").detector, AugmentedDetector)
    assert not isinstance(FacePipeline().detector, AugmentedDetector)
    faces = FaceFinder("photo", quality="accurate").find(astronaut)
    fast = FaceFinder("photo").find(astronaut)
    assert len(faces) == len(fast) == 1 and iou_matrix(faces.xyxy, fast.xyxy)[0, 0] > 0.9
    with pytest.raises(ParameterError, match="quality must be one of"):
        FaceFinder("photo", quality="best")


def test_cli_and_api_detect_accurate(crowd, tmp_path):
    from typer.testing import CliRunner

    from faceforge.cli.main import app

    canvas = crowd[0]
    photo = tmp_path / "crowd.png"
    cv2.imwrite(str(photo), canvas[:, :, ::-1])
    counts = {}
    for flag in ([], ["--accurate"]):
        out = tmp_path / f"d{len(flag)}.jsonl"
        r = CliRunner().invoke(app, ["detect", str(photo), "--jsonl", str(out), "--workers", "1", *flag])
        assert r.exit_code == 0, r.output
        counts[bool(flag)] = len(json.loads(out.read_text().splitlines()[0])["faces"])
    assert counts[True] >= counts[False] + 2
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from faceforge.service import create_app

    with TestClient(create_app(home=tmp_path / "home", run_jobs=False)) as c:
        got = {}
        for q in ("fast", "accurate"):
            r = c.post("/api/detect", files={"file": ("c.jpg", jpeg(canvas, 95), "image/jpeg")}, data={"quality": q})
            assert r.status_code == 200, r.text
            got[q] = len(r.json()["faces"])
        assert got["accurate"] > got["fast"]
        r = c.post("/api/detect", files={"file": ("c.jpg", jpeg(canvas), "image/jpeg")}, data={"quality": "slow"})
        assert r.status_code == 422


def test_a_threshold_for_a_stated_false_positive_rate(crowd, tmp_path):
    from typer.testing import CliRunner

    from faceforge.cli.main import app
    from faceforge.detectors import detector_for
    from faceforge.detectors.base import fp_threshold
    from faceforge.tasks import detect_files

    assert fp_threshold("yunet", 0.56) == 0.5  # the fast default's threshold is the 0.56-per-photo row
    assert fp_threshold("yunet", 0.56, "accurate") == detector_for("photo", "accurate").min_score
    loose, strict = fp_threshold("yunet", 2.0, "accurate"), fp_threshold("yunet", 0.1, "accurate")
    assert loose < fp_threshold("yunet", 0.8, "accurate") <= fp_threshold("yunet", 0.75, "accurate") < strict
    assert detector_for("yunet", "fast", target_fp=1.0).min_score == fp_threshold("yunet", 1.0)
    for bad, match in (({"target_fp": 5}, "target_fp must lie in"), ({"target_fp": 1, "min_score": 0.4}, "not both")):
        with pytest.raises(ParameterError, match=match):
            detector_for("yunet", "accurate", **bad)
    with pytest.raises(ParameterError, match="no false-positive calibration"):
        list(detect_files([tmp_path], detector="haar", target_fp=1.0))
    photo = tmp_path / "crowd.png"
    cv2.imwrite(str(photo), crowd[0][:, :, ::-1])
    n = {}
    for fp in ("0.1", "2"):
        out = tmp_path / f"t{fp}.jsonl"
        r = CliRunner().invoke(app, ["detect", str(photo), "--jsonl", str(out), "--workers", "1", "--target-fp", fp])
        assert r.exit_code == 0, r.output
        n[fp] = len(json.loads(out.read_text().splitlines()[0])["faces"])
    assert n["2"] >= n["0.1"]
    r = CliRunner().invoke(app, ["detect", str(photo), "--target-fp", "1", "--min-score", "0.3"])
    assert r.exit_code != 0 and "not both" in r.output
