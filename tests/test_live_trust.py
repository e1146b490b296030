"""Live video you can trust (issue 17): cuts end tracks, identity splits, votes, bounded coasting,
re-acquisition of lost faces, on real images and real footage."""

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import shared_path
from faceforge.errors import ParameterError
from faceforge.live import LiveAnalyzer, draw, run_live
from faceforge.sinks.annotate import COASTING_COLOUR
from faceforge.track import CutDetector, LabelVote, face_quality, frame_distance


def _canvas(face: np.ndarray, x: int, size=(640, 480), side: int = 200) -> np.ndarray:
    """A grey frame with ``face`` (resized to ``side``) at column ``x``: the same place in every frame."""
    w, h = size
    out = np.full((h, w, 3), 110, np.uint8)
    out[120:120 + side, x:x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    return out


@pytest.fixture(scope="module")
def faces2(astronaut, grace):
    """Two real people's faces, each cropped square around its detected box (the face fills the same
    share of the crop, so both land in the same box on a canvas)."""
    from faceforge.pipeline import FaceFinder

    out = []
    for img in (astronaut, grace):
        x1, y1, x2, y2 = FaceFinder("photo").find(img).xyxy[0]
        cx, cy, r = (x1 + x2) / 2, (y1 + y2) / 2, 0.9 * max(x2 - x1, y2 - y1)
        out.append(img[int(max(0, cy - r)):int(cy + r), int(max(0, cx - r)):int(cx + r)])
    return tuple(out)


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, astronaut, grace):
    from faceforge.gallery import Gallery

    g = Gallery(tmp_path_factory.mktemp("trust") / "g.db", "crew")
    g.enrol("eileen", [astronaut, np.roll(astronaut, 20, axis=1)])
    g.enrol("grace", [grace])
    return g


def _ids(seq):
    return {int(t) for faces in seq for t in faces.track_id}


# -- 1. cuts -----------------------------------------------------------------------------------

def test_a_join_of_two_clips_ends_every_track(astronaut, grace):
    """A panning astronaut clip joined to a panning Grace Hopper clip, faces where the other's was."""
    g = cv2.resize(grace, (512, 512), interpolation=cv2.INTER_AREA)
    first = [np.roll(astronaut, 4 * i, axis=1) for i in range(6)]
    second = [np.roll(g, 4 * i, axis=1) for i in range(6)]
    for cut_threshold, spans in ((0.07, False), (None, True)):
        an = LiveAnalyzer({}, detector="yunet", workers=0, cut_threshold=cut_threshold)
        a = [an.process(f, i) for i, f in enumerate(first)]
        b = [an.process(f, 6 + i) for i, f in enumerate(second)]
        assert _ids(a) and _ids(b)
        assert bool(_ids(a) & _ids(b)) is spans           # without cut detection the id crosses the join
    assert an.cut_frames == [] and frame_distance(first[-1], second[0]) > 0.07


def test_real_clips_joined_and_a_slideshow_have_no_track_across_a_cut():
    street = shared_path("video", "street_1080p.mp4")
    tv = shared_path("video", "tv_5frames.mp4")
    shots = sorted(shared_path("photos", "tv_group_shots").glob("*.jpg"))

    def read(p, n, size=(960, 540)):
        cap, out = cv2.VideoCapture(str(p)), []
        while len(out) < n:
            ok, f = cap.read()
            if not ok:
                break
            out.append(cv2.resize(f[:, :, ::-1], size, interpolation=cv2.INTER_AREA))
        return out

    s, t = read(street, 12), read(tv, 5)
    slides = [cv2.resize(cv2.imread(str(p))[:, :, ::-1], (960, 540)) for p in shots]
    parts = [s, t + t[::-1], s[::-1]] + [[np.roll(x, 3 * k, axis=1) for k in range(4)] for x in slides]
    an = LiveAnalyzer({}, detector="photo", workers=0, reacquire_every=0)
    seen, i, joins = [], 0, []
    for part in parts:
        ids = set()
        joins.append(i)
        for f in part:
            ids |= _ids([an.process(np.ascontiguousarray(f), i)])
            i += 1
        seen.append(ids)
    assert an.cut_frames == joins[1:]                     # every join found, nothing else
    for k in range(len(seen)):
        for m in range(k + 1, len(seen)):
            assert not seen[k] & seen[m], (k, m)          # no id in two parts
    assert sum(map(bool, seen)) >= 5                      # tracks on most parts


def test_the_real_clips_give_no_false_cut():
    for name in ("street_1080p.mp4", "tv_5frames.mp4"):
        cap, det, n = cv2.VideoCapture(str(shared_path("video", name))), CutDetector(), 0
        while True:
            ok, f = cap.read()
            if not ok:
                break
            det.update(f[:, :, ::-1])
            n += 1
        assert n >= 5 and det.cuts == 0, (name, det.distance)


# -- 2. appearance split and vote ---------------------------------------------------------------

def test_another_persons_face_in_the_same_box_splits_the_track(faces2, gallery):
    a, g = faces2
    frames = [_canvas(a, 200)] * 4 + [_canvas(g, 200)] * 4
    for split, n_ids in ((True, 2), (False, 1)):
        an = LiveAnalyzer({"identity": gallery}, detector="yunet", workers=0, cut_threshold=None,
                          reclassify_every=1, split=split)
        out = [an.process(f, i) for i, f in enumerate(frames)]
        assert len(_ids(out)) == n_ids and an.splits == n_ids - 1
    first, last = out[3], out[-1]
    an2 = LiveAnalyzer({"identity": gallery}, detector="yunet", workers=0, cut_threshold=None, reclassify_every=1)
    out = [an2.process(f, i) for i, f in enumerate(frames)]
    assert out[3].predictions["identity"][0].label == "eileen" and out[-1].predictions["identity"][0].label == "grace"
    assert out[3].track_id[0] != out[-1].track_id[0]
    assert first.track_id[0] == last.track_id[0]          # split=False: one id across both people


def test_the_label_is_the_quality_weighted_vote(astronaut, grace, gallery):
    """Three poor faces of Grace against two good ones of Eileen: Eileen wins, by weight."""
    from faceforge.live.pipeline import sharpness
    from faceforge.pipeline import FaceFinder

    finder = FaceFinder("photo")
    good = finder.find(astronaut)
    small = cv2.resize(grace, (grace.shape[1] // 6, grace.shape[0] // 6), interpolation=cv2.INTER_AREA)
    poor = finder.find(small)
    p_good = gallery.predict_faces(astronaut, good[:1])[0]
    p_poor = gallery.predict_faces(small, poor[:1])[0]
    assert (p_good.label, p_poor.label) == ("eileen", "grace")
    w_good = face_quality(float(np.sqrt(good.area[0])), sharpness(astronaut, good.xyxy[0]), good.score[0])
    w_poor = face_quality(float(np.sqrt(poor.area[0])), sharpness(small, poor.xyxy[0]), poor.score[0])
    assert w_good > 2 * w_poor
    vote = LabelVote()
    for p, w in ((p_poor, w_poor), (p_good, w_good), (p_poor, w_poor), (p_good, w_good), (p_poor, w_poor)):
        out = vote.update(p, w)
    assert out.label == "eileen" and vote.votes == 5
    assert out.score == pytest.approx(2 * w_good / (2 * w_good + 3 * w_poor))
    assert dict(out.top_k)["grace"] == pytest.approx(1 - out.score)


def test_jsonl_reports_identity_votes_confidence_and_coasting(astronaut, gallery, tmp_path):
    for i in range(10):
        Image.fromarray(np.roll(astronaut, 5 * i, axis=1)).save(tmp_path / f"f{i:02d}.png")
    blank = np.full_like(astronaut, 128)
    for i in range(10, 16):
        Image.fromarray(blank).save(tmp_path / f"f{i:02d}.png")
    js = tmp_path / "out.jsonl"
    stats = run_live(tmp_path, {"identity": gallery}, jsonl=js, workers=0, reclassify_every=3, fps=10,
                     hold_s=1.0, max_coast=0.3)
    recs = [json.loads(x) for x in js.read_text().splitlines()]
    assert len(recs) == 16 and stats.cuts == 0                       # a blank frame is not a cut
    ident = [r["faces"][0]["identity"] for r in recs[1:10]]
    assert all(d["label"] == "eileen" and d["confidence"] == d["score"] == 1.0 for d in ident)
    assert [d["votes"] for d in ident][-1] >= 3 and ident[-1]["votes"] > ident[0]["votes"]
    assert all(r["faces"][0]["coasting"] is False for r in recs[:10])
    # the face is gone: 3 coasting frames (0.3 s at 10 FPS), marked, then hidden
    assert [len(r["faces"]) for r in recs[10:]] == [1, 1, 1, 0, 0, 0]
    assert all(r["faces"][0]["coasting"] is True and r["faces"][0]["visible"] is False for r in recs[10:13])
    assert stats.coasting == 3


# -- 3. bounded coasting, drawn -------------------------------------------------------------------

def test_coasting_is_bounded_and_drawn_dashed_grey(astronaut):
    an = LiveAnalyzer({}, detector="yunet", workers=0, fps=10, hold_s=1.0, max_coast=0.2)
    for i in range(3):
        an.process(np.roll(astronaut, 4 * i, axis=1), i)
    blank = np.full_like(astronaut, 30)
    shown = [an.process(blank, i) for i in range(3, 9)]
    assert [len(f) for f in shown] == [1, 1, 0, 0, 0, 0]
    assert len(an.tracker.tracks) == 1                    # hidden, not ended: its id survives hold_s
    assert shown[0].data["coasting"].tolist() == [True]
    img = draw(blank, shown[0])
    x1, y1, x2, y2 = shown[0].xyxy[0].astype(int)
    edge = img[y1 - 1:y1 + 2, x1:x2].reshape(-1, 3)
    grey = np.all(np.abs(edge.astype(int) - COASTING_COLOUR) <= 30, axis=1)
    assert 0.2 < grey.mean() < 0.9                        # dashes of grey, gaps of the frame
    live = an.process(np.roll(astronaut, 40, axis=1), 9)
    assert live.data["coasting"].tolist() == [False] and live.track_id.tolist() == shown[0].track_id.tolist()


# -- 4. re-acquisition ----------------------------------------------------------------------------

def test_lost_tracks_are_reacquired_by_the_photo_detector_on_the_street_clip():
    from faceforge.pipeline import FaceFinder
    from faceforge.types import iou_matrix

    cap, frames = cv2.VideoCapture(str(shared_path("video", "street_1080p.mp4"))), []
    while len(frames) < 40:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(f[:, :, ::-1], (640, 480), interpolation=cv2.INTER_AREA))
    ref = [FaceFinder("photo").find(f).xyxy for f in frames]
    recall = {}
    for every in (0, 3):
        an = LiveAnalyzer({}, workers=0, fps=25, reacquire_every=every, reacquire_budget=None)
        hit = 0
        for i, f in enumerate(frames):
            out = an.process(f, i)
            vis = out.xyxy[out.data["visible"]]
            if len(ref[i]) and len(vis):
                hit += int((iou_matrix(ref[i], vis).max(1) >= 0.3).sum())
        recall[every] = hit / sum(len(r) for r in ref)
        if every:
            assert an.reacquired >= 5 and an.searches >= an.reacquired
    assert recall[3] > recall[0] + 0.02, recall


# -- options ------------------------------------------------------------------------------------

@pytest.mark.parametrize("options, match", [
    ({"max_coast": -1}, "max_coast"),
    ({"reacquire_every": -2}, "reacquire_every"),
    ({"cut_threshold": 0.0}, "cut threshold"),
    ({"cut_threshold": 3}, "cut threshold"),
    ({"vote": "sometimes"}, "vote"),
    ({"vote": ["nobody"]}, "vote"),
])
def test_bad_options_say_what_is_expected(options, match):
    with pytest.raises(ParameterError, match=match):
        LiveAnalyzer({}, workers=0, **options)
