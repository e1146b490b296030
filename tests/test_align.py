"""Alignment geometry on real faces."""

import numpy as np
import pytest

from faceforge.align import TEMPLATES, align_faces, face_transforms, transform_points, umeyama
from faceforge.detectors import get_detector
from faceforge.errors import ParameterError
from faceforge.types import Faces


def test_umeyama_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    a, s, t = np.deg2rad(23), 1.7, np.array([12.0, -4.0])
    r = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    dst = src @ r.T + t
    m = umeyama(src, dst)
    assert np.allclose(m[:, :2], r, atol=1e-9) and np.allclose(m[:, 2], t, atol=1e-9)
    with pytest.raises(ParameterError):
        umeyama(np.ones((5, 2)), dst)


@pytest.mark.parametrize("template", ["arcface112", "dlib150"])
def test_landmarks_land_on_the_template(astronaut, template):
    faces = get_detector("yunet")(astronaut)
    m = face_transforms(faces, template)[0]
    tpl = TEMPLATES[template]
    mapped = transform_points(faces.landmarks[0], m) / tpl.size
    # a similarity fit to 5 real points: each within 5% of the chip side
    assert np.abs(mapped - tpl.points).max() < 0.05


def test_rotation_is_undone(astronaut):
    """A face rotated by 20 degrees gives (almost) the same aligned chip as the upright face."""
    import cv2

    det = get_detector("yunet")
    up = align_faces(astronaut, det(astronaut), "arcface112")[0].astype(float)
    rot = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D((224, 124), 20, 1.0), (512, 512),
                         borderMode=cv2.BORDER_REFLECT)
    faces = det(rot)
    assert len(faces) == 1
    chip = align_faces(rot, faces, "arcface112")[0].astype(float)
    corr = np.corrcoef(up.ravel(), chip.ravel())[0, 1]
    unaligned = align_faces(rot, faces, "margin", size=112, margin=1.0)[0].astype(float)
    assert corr > 0.85 and corr > np.corrcoef(up.ravel(), unaligned.ravel())[0, 1] + 0.1


def test_eyes_level_after_alignment(astronaut):
    import cv2

    rot = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D((224, 124), -25, 1.0), (512, 512))
    faces = get_detector("yunet")(rot)
    eyes = transform_points(faces.landmarks[0, :2], face_transforms(faces, "arcface112")[0])
    assert abs(eyes[0, 1] - eyes[1, 1]) < 2.0 and eyes[0, 0] < eyes[1, 0]


def test_faces_without_landmarks_fall_back_to_the_box(astronaut):
    faces = get_detector("haar")(astronaut)
    assert not faces.has_landmarks.any()
    chips = align_faces(astronaut, faces, "arcface112", size=96)
    assert chips.shape == (1, 96, 96, 3) and chips.std() > 20


def test_margin_chips_and_chip_sizes(astronaut):
    box = np.array([176, 72, 272, 176], np.float32)  # 96 x 104: the square side is 104
    faces = Faces([box], [1.0])
    c1 = align_faces(astronaut, faces, "margin", size=104, margin=1.0)[0]
    # no rotation, scale 1: the square around the box, pixel for pixel
    assert np.abs(c1.astype(int) - astronaut[72:176, 172:276].astype(int)).mean() < 2
    c2 = align_faces(astronaut, faces, "margin", size=208, margin=2.0)[0]
    assert np.abs(c2[52:156, 52:156].astype(int) - c1.astype(int)).mean() < 2  # twice the box, same centre
    edge = align_faces(astronaut, Faces([[0, 0, 100, 100]], [1.0]), "margin", size=64, margin=2.0)
    assert edge.shape == (1, 64, 64, 3)  # past the border: replicated, not cut short
    chips = align_faces(astronaut, faces, "margin", size=64, margin=1.5)
    assert chips.shape == (1, 64, 64, 3)
    with pytest.raises(ParameterError, match="margin must be > 0"):
        align_faces(astronaut, faces, "margin", margin=0)
    with pytest.raises(ParameterError, match="Unknown alignment template"):
        align_faces(astronaut, faces, "nope")
    assert align_faces(astronaut, Faces.empty(), "arcface112").shape == (0, 112, 112, 3)


def test_small_face_downscale_path_matches_direct_warp(astronaut):
    """Chips of a big face (shrunk > 2x) go through area pre-filtering but keep the geometry."""
    import cv2

    big = cv2.resize(astronaut, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    faces = get_detector("yunet")(big)
    chip_big = align_faces(big, faces, "arcface112")[0].astype(float)
    chip_small = align_faces(astronaut, get_detector("yunet")(astronaut), "arcface112")[0].astype(float)
    assert np.corrcoef(chip_big.ravel(), chip_small.ravel())[0, 1] > 0.9
