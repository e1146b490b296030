"""yunet and haar on real images; the detector factory."""

import numpy as np
import pytest

from conftest import ASTRONAUT_BOX, shared_path
from faceforge.detectors import available_detectors, get_detector
from faceforge.errors import ParameterError
from faceforge.types import iou_matrix


@pytest.mark.parametrize("name", ["yunet", "haar"])
def test_one_face_on_the_astronaut(astronaut, name):
    faces = get_detector(name)(astronaut)
    assert len(faces) == 1 and faces.image_size == (512, 512) and faces.detector == name
    assert iou_matrix(faces.xyxy, ASTRONAUT_BOX)[0, 0] > 0.6


@pytest.mark.parametrize("name", ["yunet", "haar"])
def test_no_face_on_coffee_or_blank(coffee, name):
    det = get_detector(name)
    assert len(det(coffee)) == 0
    assert len(det(np.full((300, 400, 3), 128, np.uint8))) == 0


def test_yunet_landmarks_order_and_placement(astronaut):
    f = get_detector("yunet")(astronaut)
    lm = f.landmarks[0]
    x1, y1, x2, y2 = f.xyxy[0]
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]  # image-left before image-right
    assert (lm[:2, 1] < (y1 + y2) / 2).all() and (lm[3:, 1] > lm[2, 1]).all()  # eyes up, mouth below nose
    assert ((lm[:, 0] > x1) & (lm[:, 0] < x2)).all()


def test_yunet_mirror_and_input_layouts(astronaut):
    det = get_detector("yunet")
    ref = det(astronaut)
    flipped = det(astronaut[:, ::-1])
    mirrored = ref.xyxy[0][[2, 1, 0, 3]] * [-1, 1, -1, 1] + [512, 0, 512, 0]
    assert iou_matrix(flipped.xyxy, mirrored)[0, 0] > 0.8
    grey = astronaut.mean(axis=2).astype(np.uint8)
    assert len(det(grey)) == 1
    rgba = np.dstack([astronaut, np.full((512, 512), 255, np.uint8)])
    assert len(det(rgba)) == 1
    assert len(det((astronaut.astype(np.uint16) * 257))) == 1


def test_yunet_downscales_big_images_and_maps_back(astronaut):
    import cv2

    det = get_detector("yunet", max_size=640)
    big = cv2.resize(astronaut, (1600, 1600))
    faces = det(big)
    assert len(faces) == 1
    assert iou_matrix(faces.xyxy, ASTRONAUT_BOX * 1600 / 512)[0, 0] > 0.6


def test_factory_errors_and_batches(astronaut, coffee):
    with pytest.raises(ParameterError, match="Did you mean 'yunet'"):
        get_detector("yunett")
    with pytest.raises(ParameterError, match="min_score must lie in"):
        get_detector("haar", cached=False, min_score=2)
    assert {"yunet", "haar", "blazeface.short", "blazeface.full", "mtcnn"} <= set(available_detectors())
    assert [len(f) for f in get_detector("yunet").detect_batch([astronaut, coffee])] == [1, 0]


def test_yunet_group_photo():
    path = shared_path("photos", "face_recognition_examples", "two_people.jpg")
    from faceforge.sources import load_image

    assert len(get_detector("yunet")(load_image(path))) == 2


def test_photo_and_live_aliases_resolve_to_installed_detectors(monkeypatch):
    from faceforge.detectors import base

    assert base.resolve_detector_name("photo") == "yunet"
    assert base.resolve_detector_name("live") == "blazeface.full"
    assert base.resolve_detector_name("haar") == "haar"
    # where yuface is missing (no wheel for this Python), photos fall back to MTCNN
    import faceforge.registry as reg

    real = reg.is_installed
    monkeypatch.setattr(reg, "is_installed", lambda n: n != "yunet" and real(n))
    assert base.resolve_detector_name("photo") == "mtcnn"
