"""Live pipeline on real frames: sources, capture thread, tracking with labels, worker, sinks, CLI."""

import json
import time
import urllib.request

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import write_panning_video
from faceforge.attributes import load_attribute
from faceforge.cli.main import app
from faceforge.errors import ParameterError, SourceError
from faceforge.live import CaptureThread, LiveAnalyzer, MjpegServer, WindowSink, describe_source, has_gui, run_live

runner = CliRunner()


@pytest.fixture(scope="module")
def clip(tmp_path_factory, astronaut):
    return write_panning_video(tmp_path_factory.mktemp("live") / "clip.avi", astronaut, frames=24, step=4)


@pytest.fixture(scope="module")
def models():
    return {"emotion": load_attribute("emotion"), "gender": load_attribute("gender")}


def test_video_to_annotated_video_and_jsonl(clip, models, tmp_path):
    out, js = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    stats = run_live(clip, models, output=out, jsonl=js, workers=0)
    recs = [json.loads(x) for x in js.read_text().splitlines()]
    assert stats.frames == len(recs) == 24 and stats.dropped == 0
    labelled = [r["faces"] for r in recs if r["faces"]]
    assert len(labelled) >= 22
    assert {f["track"] for faces in labelled for f in faces} == {1}            # one stable id
    assert all(faces[0]["emotion"]["label"] == "happy" and faces[0]["gender"]["label"] == "female"
               for faces in labelled)
    assert stats.label_flips == {"emotion": 0, "gender": 0}
    assert stats.classifications < stats.frames                                 # not every frame
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 24
    assert not list(tmp_path.glob(".*part*"))                                   # no temporary left


def test_classification_runs_on_a_worker(clip, models):
    an = LiveAnalyzer(models, workers=1)
    cap = CaptureThread(clip)
    seen = []
    for frame in cap:
        seen.append(an.process(frame.image, frame.index))
    an.flush()
    an.close()
    assert an.classifications >= 1 and len(an.latencies) == an.classifications
    assert any(f.predictions for faces in seen for f in faces.rows())
    assert all(f.track_id == 1 for faces in seen for f in faces.rows())


def test_image_folder_and_glob_sources(astronaut, tmp_path, models):
    for i in range(5):
        Image.fromarray(np.roll(astronaut, 6 * i, axis=1)).save(tmp_path / f"f{i:02d}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    assert describe_source(tmp_path) == ("images", False)
    got = []
    stats = run_live(tmp_path, {"emotion": models["emotion"]}, workers=0, on_frame=lambda i, f: got.append((i, f)))
    assert stats.frames == 5 and [i for i, _ in got] == list(range(5))
    stats = run_live(str(tmp_path / "f0[0-2].png"), {"emotion": models["emotion"]}, workers=0, max_frames=2)
    assert stats.frames == 2


def test_bad_sources_say_what_to_do(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        describe_source(tmp_path / "missing.mp4")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(SourceError, match="not a video"):
        CaptureThread(tmp_path / "x.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        CaptureThread(tmp_path / "empty")
    (tmp_path / "broken.mp4").write_bytes(b"\0" * 100)
    with pytest.raises(SourceError):
        CaptureThread(tmp_path / "broken.mp4")


def test_live_sources_drop_frames_instead_of_falling_behind(clip):
    cap = CaptureThread(clip, drop=True)
    got = []
    for f in cap:
        got.append(f.index)
        time.sleep(0.03)  # a slow consumer
    assert cap.dropped > 0 and len(got) + cap.dropped == 24
    assert got == sorted(got) and got[-1] == 23                      # in order, and the newest is last
    assert [f.index for f in CaptureThread(clip)] == list(range(24))  # files: every frame


def test_mjpeg_server_serves_frames(astronaut):
    srv = MjpegServer(port=0)
    try:
        srv.write(astronaut)
        jpeg = urllib.request.urlopen(srv.url + "frame.jpg", timeout=5).read()
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == astronaut.shape
        with urllib.request.urlopen(srv.url, timeout=5) as r:
            assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            assert r.read(7) == b"--frame"
    finally:
        srv.close()


def test_live_sinks_are_the_library_sinks():
    import faceforge.sinks as sinks

    assert (MjpegServer, WindowSink) == (sinks.MjpegServer, sinks.WindowSink)


def test_window_needs_a_gui():
    if has_gui():
        pytest.skip("this OpenCV build has a GUI")
    with pytest.raises(ParameterError, match="--mjpeg"):
        WindowSink()


def test_cli_live(clip, tmp_path):
    r = runner.invoke(app, ["live", "-s", str(clip), "-a", "emotion", "--jsonl", str(tmp_path / "l.jsonl"),
                            "-o", str(tmp_path / "l.avi"), "--max-frames", "10"])
    assert r.exit_code == 0, r.output
    assert "10 frames" in r.output and (tmp_path / "l.avi").is_file()
    assert len((tmp_path / "l.jsonl").read_text().splitlines()) == 10
    r = runner.invoke(app, ["live", "-s", str(tmp_path / "nope.mp4"), "-a", "emotion", "--jsonl", str(tmp_path / "x")])
    assert r.exit_code == 2 and "no such file" in r.output
    r = runner.invoke(app, ["live", "-s", str(clip), "-o", str(clip)])
    assert r.exit_code == 2 and "overwrite" in r.output


def test_tiled_rounds_keep_small_face_tracks_alive(clip, models):
    an = LiveAnalyzer({"emotion": models["emotion"]}, workers=0, tile_every=4, fps=10, hold_s=0.2)
    assert an.tracker.max_age >= 6  # tracks must outlive the untiled rounds in between
    cap = CaptureThread(clip)
    ids = {int(t) for frame in cap for t in an.process(frame.image, frame.index).track_id}
    assert ids == {1}


def test_a_lost_face_keeps_its_label_for_the_hold_time(astronaut, models):
    an = LiveAnalyzer({"emotion": models["emotion"]}, detector="yunet", workers=0, fps=10, hold_s=0.5, max_coast=0.5)
    for i in range(3):
        faces = an.process(np.roll(astronaut, 4 * i, axis=1), i)
    assert faces.predictions["emotion"][0].label == "happy"
    blank = np.full_like(astronaut, 128)
    held = [an.process(blank, i) for i in range(3, 12)]
    kept = [len(f) for f in held]
    assert kept[:5] == [1] * 5 and kept[-1] == 0                  # ~0.5 s at 10 FPS, then gone
    assert all(f.predictions["emotion"][0].label == "happy" and not f.data["visible"][0] for f in held[:5])


def test_no_flicker_on_a_real_street_clip(models):
    """Several people walking (1080p): stable ids, and labels that almost never change."""
    from conftest import shared_path

    video = shared_path("video", "street_1080p.mp4")
    per_track = {}

    def on_frame(i, faces):
        for f in faces.rows():
            p = f.predictions.get("gender")
            per_track.setdefault(f.track_id, []).append(p.label if p else None)

    stats = run_live(video, {"gender": models["gender"]}, workers=0, max_frames=60, tile_every=15,
                     on_frame=on_frame)
    from faceforge.track import count_flips

    assert stats.frames == 60 and 4 <= stats.tracks <= 40
    long_tracks = [v for v in per_track.values() if len(v) >= 20]
    assert len(long_tracks) >= 3                                     # people followed for 20+ frames
    assert sum(count_flips(v) for v in per_track.values()) <= 2


def test_http_stream_source(mjpeg_stream, models):
    """An MJPEG stream over HTTP (served by faceforge's own sink) read as a live source."""
    assert describe_source(mjpeg_stream) == ("stream", True)
    stats = run_live(mjpeg_stream, {"emotion": models["emotion"]}, workers=0, max_frames=8)
    assert stats.frames == 8 and stats.tracks == 1


def test_a_blurred_face_is_classified_again_when_it_sharpens(astronaut, models):
    import cv2

    from faceforge.live.pipeline import sharpness

    blurred = cv2.GaussianBlur(astronaut, (0, 0), 3)
    box = np.array([175, 70, 280, 175], np.float32)
    assert sharpness(astronaut, box) > 4 * sharpness(blurred, box)
    an = LiveAnalyzer({"emotion": models["emotion"]}, detector="yunet", workers=0, reclassify_every=100)
    for i in range(3):
        an.process(blurred, i)
    n_blurred = an.classifications
    an.process(astronaut, 3)
    assert n_blurred == 1 and an.classifications == 2
