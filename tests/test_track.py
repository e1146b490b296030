"""Tracker ids and label smoothing on real frames (a panning photo, two faces side by side)."""

import numpy as np
import pytest

from faceforge.detectors import get_detector
from faceforge.errors import ParameterError
from faceforge.track import LabelSmoother, Tracker, count_flips, flips_per_second
from faceforge.types import Prediction
from faceforge.types import Faces


def _frames(image, n, step):
    """The image rolled right by ``step`` px per frame: the face moves right at constant speed."""
    return [np.roll(image, i * step, axis=1) for i in range(n)]


@pytest.fixture(scope="module")
def detector():
    return get_detector("yunet")


@pytest.fixture(scope="module")
def two_faces(astronaut):
    face = astronaut[40:240, 130:330]
    canvas = np.full((300, 700, 3), 90, np.uint8)
    canvas[50:250, 40:240] = face
    canvas[50:250, 420:620] = face[:, ::-1]
    return canvas


def test_one_face_keeps_its_id_while_moving(astronaut, detector):
    trk = Tracker()
    ids = set()
    xs = []
    for i, f in enumerate(_frames(astronaut, 12, 6)):
        tracks = trk.update(detector(f), i)
        assert len(tracks) == 1
        ids.add(tracks[0].id)
        xs.append(tracks[0].xyxy[0])
    assert ids == {1} and trk.tracks[0].confirmed and trk.tracks[0].hits == 12
    assert np.all(np.diff(xs) > 0)                       # follows the face to the right
    assert abs(trk.tracks[0].velocity[0] - 6) < 2        # about 6 px per frame


def test_id_survives_a_gap_and_coasts(astronaut, detector):
    trk = Tracker(max_age=8)
    frames = _frames(astronaut, 16, 6)
    for i in range(6):
        trk.update(detector(frames[i]), i)
    x_before = trk.tracks[0].xyxy[0]
    for i in range(6, 11):                                # the face is hidden for 5 frames
        tracks = trk.update(Faces.empty((512, 512)), i)
        assert len(tracks) == 1 and not tracks[0].visible
    assert trk.tracks[0].xyxy[0] > x_before + 20          # kept moving while unseen
    for i in range(11, 16):
        tracks = trk.update(detector(frames[i]), i)
    assert [t.id for t in tracks] == [1] and tracks[0].visible


def test_track_ends_after_max_age_and_ids_are_not_reused(astronaut, detector):
    trk = Tracker(max_age=2)
    trk.update(detector(astronaut), 0)
    trk.update(detector(astronaut), 1)
    for i in range(2, 5):
        trk.update(Faces.empty((512, 512)), i)
    assert trk.tracks == [] and [t.id for t in trk.removed] == [1]
    assert [t.id for t in trk.update(detector(astronaut), 5)] == [2]


def test_detect_every_third_frame_boxes_follow(astronaut, detector):
    from faceforge.types import iou_matrix

    trk = Tracker()
    frames = _frames(astronaut, 13, 5)
    ious = []
    for i, f in enumerate(frames):
        if i % 3 == 0:
            trk.update(detector(f), i)
        else:
            t = trk.predict(i)[0]
            ious.append(iou_matrix(t.xyxy[None], detector(f).xyxy)[0, 0])
    assert min(ious[2:]) > 0.8  # once the velocity is known, predicted boxes sit on the face


def test_two_faces_keep_distinct_ids(two_faces, detector):
    trk = Tracker()
    first = None
    for i, f in enumerate(_frames(two_faces, 8, 4)):
        tracks = trk.update(detector(f), i)
        order = tuple(t.id for t in sorted(tracks, key=lambda t: t.xyxy[0]))
        first = first or order
        assert len(tracks) == 2 and order == first


def test_low_score_detection_extends_but_never_starts_a_track(astronaut, detector):
    trk = Tracker(high_score=0.6, low_score=0.3)
    f = detector(astronaut)
    weak = Faces(f.xyxy, np.full(len(f), 0.4, np.float32), f.landmarks, f.image_size, f.detector)
    assert trk.update(weak, 0) == []
    trk.update(f, 1)
    assert [t.id for t in trk.update(weak, 2)] == [1] and trk.tracks[0].visible


def test_bad_parameters():
    with pytest.raises(ParameterError):
        Tracker(low_score=0.8, high_score=0.5)
    with pytest.raises(ParameterError):
        LabelSmoother(alpha=0)


def _p(label, p, other="bob"):
    return Prediction(label, p, [(label, p), (other, 1 - p)])


def test_smoother_holds_a_label_against_single_frame_noise():
    s = LabelSmoother(alpha=0.3, switch_margin=0.15)
    raw, shown = [], []
    seq = ["alice"] * 5 + ["bob"] + ["alice"] * 3 + ["bob"] + ["alice"] * 3 + ["bob"] * 8
    for lab in seq:
        pred = _p(lab, 0.8, "bob" if lab == "alice" else "alice")
        raw.append(pred.label)
        shown.append(s.update(pred).label)
    assert count_flips(raw) == 5 and count_flips(shown) == 1   # lone frames ignored, real change kept
    assert shown[-1] == "bob" and shown[:14] == ["alice"] * 14
    assert flips_per_second(shown, 10.0) == pytest.approx(1 / 2.1)  # 21 frames at 10 FPS


def test_smoother_unknown_and_regression():
    s = LabelSmoother()
    s.update(_p("alice", 0.9))
    out = s.update(Prediction("unknown", 0.9, [("alice", 0.9), ("bob", 0.1)], known_score=0.1))
    assert out.label == "alice"  # one stranger-looking frame does not relabel the face
    r = LabelSmoother(alpha=0.5)
    r.update(Prediction("30.0", 30.0, value=30.0))
    assert r.update(Prediction("40.0", 40.0, value=40.0)).value == pytest.approx(35.0)


def test_smoothing_real_predictions_on_a_real_clip(astronaut, detector):
    """Emotion per frame on a moving, noisy clip: the smoothed label never flickers."""
    from faceforge.attributes import load_attribute

    emo = load_attribute("emotion")
    trk = Tracker()
    rng = np.random.default_rng(0)
    shown = []
    for i, f in enumerate(_frames(astronaut, 12, 5)):
        noisy = np.clip(f.astype(np.int16) + rng.normal(0, 12, f.shape), 0, 255).astype(np.uint8)
        faces = detector(noisy)
        t = trk.update(faces, i)[0]
        sm = t.data.setdefault("emotion", LabelSmoother())
        shown.append(sm.update(emo.predict_faces(noisy, faces[:1])[0]).label)
    assert count_flips(shown) == 0 and shown[-1] == "happy"


def test_smoothed_gallery_answers_keep_threshold_and_far(astronaut, tmp_path):
    """A gallery's smoothed label in live video still says the threshold in force and its false-accept rate."""
    from faceforge.gallery import Gallery
    from faceforge.pipeline import FaceFinder

    g = Gallery(tmp_path / "g.db")
    g.enrol("eileen", [astronaut])
    raw = g.predict_faces(astronaut, FaceFinder().find(astronaut))[0]
    sm = LabelSmoother()
    out = [sm.update(raw) for _ in range(3)][-1]
    assert out.label == "eileen" and out.threshold == raw.threshold == g.threshold
    assert out.far == raw.far is not None and out.distance == raw.distance
    assert {"threshold", "far", "distance"} <= set(out.to_dict())
