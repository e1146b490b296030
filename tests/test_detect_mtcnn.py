"""MTCNN (facenet-pytorch weights, run as ONNX): faces, landmarks, inputs, options."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ASTRONAUT_BOX, shared_path
from faceforge.detectors import get_detector
from faceforge.errors import ParameterError
from faceforge.registry import is_installed
from faceforge.types import iou_matrix

pytestmark = pytest.mark.skipif(not is_installed("mtcnn.pnet"), reason="facenet-pytorch is not installed")


@pytest.fixture(scope="module")
def det():
    return get_detector("mtcnn")


def test_one_face_on_the_astronaut(det, astronaut):
    faces = det(astronaut)
    assert len(faces) == 1 and faces.detector == "mtcnn" and faces.image_size == (512, 512)
    assert faces.score[0] > 0.99
    assert iou_matrix(faces.xyxy, ASTRONAUT_BOX)[0, 0] > 0.7
    x1, y1, x2, y2 = faces.xyxy[0]
    centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
    assert np.abs(centre - [177 + 95 / 2, 72 + 104 / 2]).max() < 10


def test_landmarks_order_and_placement(det, astronaut):
    f = det(astronaut)
    lm = f.landmarks[0]
    x1, y1, x2, y2 = f.xyxy[0]
    assert f.has_landmarks.all()
    assert ((lm[:, 0] > x1) & (lm[:, 0] < x2) & (lm[:, 1] > y1) & (lm[:, 1] < y2)).all()
    assert (lm[:2, 1] < (y1 + y2) / 2).all()                 # eyes in the upper half of the box
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]       # image-left before image-right
    assert lm[0, 0] < lm[2, 0] < lm[1, 0]                    # nose between the eyes...
    assert (lm[3:, 1] > lm[2, 1]).all()                      # ...and above the mouth


def test_mirror_image_mirrors_the_face(det, astronaut):
    ref = det(astronaut)
    flipped = det(np.ascontiguousarray(astronaut[:, ::-1]))
    assert len(flipped) == 1
    mirrored = ref.xyxy[0][[2, 1, 0, 3]] * [-1, 1, -1, 1] + [512, 0, 512, 0]
    assert iou_matrix(flipped.xyxy, mirrored)[0, 0] > 0.8
    assert flipped.landmarks[0, 0, 0] < flipped.landmarks[0, 1, 0]  # still image-left first


def test_no_face_on_coffee_blank_or_tiny(det, coffee):
    assert len(det(coffee)) == 0
    assert len(det(np.full((300, 400, 3), 128, np.uint8))) == 0
    assert len(det(np.zeros((300, 400, 3), np.uint8))) == 0
    tiny = det(np.zeros((10, 10, 3), np.uint8))  # smaller than the 12-px P-Net window
    assert len(tiny) == 0 and tiny.image_size == (10, 10)


def test_grey_and_rgba_inputs(det, astronaut):
    grey = (astronaut @ np.array([0.299, 0.587, 0.114])).round().astype(np.uint8)
    for img in (grey, grey[:, :, None], np.dstack([astronaut, np.full((512, 512), 255, np.uint8)])):
        faces = det(img)
        assert len(faces) == 1
        assert iou_matrix(faces.xyxy, ASTRONAUT_BOX)[0, 0] > 0.7


def test_options(astronaut):
    fast = get_detector("mtcnn", min_face_size=60)
    assert len(fast.scales(512, 512)) < len(get_detector("mtcnn").scales(512, 512))
    assert len(fast(astronaut)) == 1
    assert len(get_detector("mtcnn", min_face_size=300)(astronaut)) == 0  # face is ~100 px
    assert get_detector("mtcnn", min_score=0.5).min_score == 0.5
    assert get_detector("mtcnn").min_score == 0.7
    with pytest.raises(ParameterError):
        get_detector("mtcnn", thresholds=(0.6, 1.5, 0.7))
    with pytest.raises(ParameterError):
        get_detector("mtcnn", factor=1.0)
    with pytest.raises(ParameterError):
        get_detector("mtcnn", min_face_size=0)


@pytest.mark.shared
def test_group_photo(det):
    from faceforge.sources.image import load_image

    img = load_image(shared_path("photos", "facenet_samples", "multiface.jpg"))
    faces = det(img)
    assert len(faces) >= 3
    assert faces.has_landmarks.all()
    assert (faces.score >= 0.7).all()
    assert (iou_matrix(faces.xyxy, faces.xyxy) - np.eye(len(faces)) < 0.3).all()  # no duplicates
