"""One source abstraction: every input kind through open_source, read the same by batch and live."""

import io
import pickle
import tarfile
import zipfile

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from faceforge.errors import ParameterError, SourceError
from faceforge.live import CaptureThread, describe_source
from faceforge.runner import run
from faceforge.sources import Frame, expand_paths, open_source


def _png(img) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()


def write_video(path, images, fps=10):
    """An MJPEG .avi with one frame per image (all resized to 320x240)."""
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (320, 240))
    for img in images:
        vw.write(np.ascontiguousarray(cv2.resize(img, (320, 240))[:, :, ::-1]))
    vw.release()
    return path


@pytest.fixture()
def photos(tmp_path, astronaut, coffee):
    """A folder as users have them: sub-folders, a video, notes, a hidden file, a corrupt photo."""
    root = tmp_path / "photos"
    (root / "trip" / "day2").mkdir(parents=True)
    (root / ".thumbs").mkdir()
    Image.fromarray(astronaut).save(root / "b_astronaut.png")
    Image.fromarray(coffee).save(root / "a_coffee.jpg")
    Image.fromarray(data.chelsea()).save(root / "trip" / "cat.png")
    Image.fromarray(np.roll(astronaut, 40, axis=1)).save(root / "trip" / "day2" / "moved.jpg")
    Image.fromarray(astronaut).save(root / ".thumbs" / "hidden.png")
    Image.fromarray(astronaut).save(root / ".hidden.png")
    (root / "trip" / "notes.txt").write_text("not a photo")
    (root / "trip" / "bad.jpg").write_text("not a jpeg either")
    write_video(root / "trip" / "clip.avi", [astronaut, coffee, np.roll(astronaut, 20, axis=0)])
    return root


def test_a_folder_reads_the_same_for_batch_and_live(photos):
    src = open_source(photos)
    assert src.kind == "folder" and not src.live
    names = [f.name for f in src]
    assert names == ["a_coffee.jpg", "b_astronaut.png", "trip/bad.jpg", "trip/cat.png", "trip/clip.avi",
                     "trip/clip.avi", "trip/clip.avi", "trip/day2/moved.jpg"]   # recursive, sorted, no hidden
    assert [(s.source, s.kind) for s in src.skipped] == [(str(photos / "trip" / "notes.txt"), "unsupported")]
    batch = [(o.item.source, o.item.index) for o in run(lambda image, frame: None, [photos], engine="serial")]
    assert batch == [(f.source, f.index) for f in src]  # the corrupt one comes back as an error outcome
    assert [str(p) for p in expand_paths([photos])] == src.paths
    assert src.length_hint() == 8
    # live reads the same frames (the corrupt one is left out with its reason), numbered in order
    cap = CaptureThread(photos)
    live = list(cap)
    good = [(f.source, f.index) for f in src if not f.source.endswith("bad.jpg")]
    assert [f.source for f in live] == [s for s, _ in good]
    assert [f.index for f in live] == [0, 1, 3, 4, 5, 6, 7]
    assert all(f.image.shape[2] == 3 and f.image.dtype == np.uint8 for f in live)
    assert [(s.source, s.kind) for s in cap.skipped] == [(str(photos / "trip" / "notes.txt"), "unsupported"),
                                                         (str(photos / "trip" / "bad.jpg"), "unreadable")]
    assert "not an image" in cap.skipped[1].reason
    # and the batch runner runs on the same frames
    outs = list(run(lambda image, frame: image.shape, photos, engine="serial"))
    assert [(o.item.source, o.item.index) for o in outs] == batch


def test_still_images_are_decoded_lazily_and_pickled_without_pixels(photos, astronaut):
    frame = next(iter(open_source(photos / "b_astronaut.png")))
    assert not frame.decoded
    assert np.array_equal(frame.image, astronaut) and frame.decoded
    again = pickle.loads(pickle.dumps(frame))
    assert not again.decoded and np.array_equal(again.image, astronaut)        # the worker decodes
    video_frame = next(iter(open_source(photos / "trip" / "clip.avi")))
    assert video_frame.decoded and pickle.loads(pickle.dumps(video_frame)).decoded
    light = video_frame.light()
    with pytest.raises(SourceError, match="light copy"):
        _ = light.image


def test_bytes_arrays_and_lists(astronaut, coffee):
    src = open_source(_png(astronaut))
    assert src.kind == "image" and np.array_equal(next(iter(src)).image, astronaut)
    arr = open_source(astronaut[:, :, 0])                                       # grey becomes RGB
    assert next(iter(arr)).image.shape == (512, 512, 3)
    mixed = open_source([astronaut, _png(coffee)])
    assert mixed.kind == "files" and [f.image.shape for f in mixed] == [(512, 512, 3), coffee.shape]
    assert [f.name for f in mixed] == ["<image 0>", "<image 1>"]
    with pytest.raises(ParameterError, match="on its own"):
        open_source([astronaut, "rtsp://camera.local/stream"])


def test_archives(tmp_path, astronaut):
    zpath = tmp_path / "faces.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for i in range(3):
            z.writestr(f"faces/alice/{i}.png", _png(np.roll(astronaut, 10 * i, axis=1)))
        z.writestr("faces/readme.txt", "about these faces")
    src = open_source(zpath)
    assert src.kind == "archive"
    assert [f.name for f in src] == [f"faces/alice/{i}.png" for i in range(3)]
    assert all(f.image.shape == (512, 512, 3) for f in src)
    assert [s.reason for s in src.skipped] == ["not an image or video"]
    tpath = tmp_path / "faces.tar.gz"
    with tarfile.open(tpath, "w:gz") as t:
        blob = _png(astronaut)
        info = tarfile.TarInfo("bob/0.png")
        info.size = len(blob)
        t.addfile(info, io.BytesIO(blob))
    assert [f.name for f in open_source(tpath)] == ["bob/0.png"]
    assert describe_source(tpath) == ("images", False)


def test_globs(photos):
    src = open_source(str(photos / "**" / "*.png"))
    assert src.kind == "glob"
    assert [f.source for f in src] == [str(photos / "b_astronaut.png"), str(photos / "trip" / "cat.png")]
    assert describe_source(str(photos / "*.jpg")) == ("images", False)
    with pytest.raises(SourceError, match="No images or videos found"):
        open_source(str(photos / "*.webp"))


def test_videos(tmp_path, astronaut, coffee):
    path = write_video(tmp_path / "clip.avi", [astronaut, coffee, astronaut, coffee, astronaut])
    src = open_source(path, every=2)
    assert src.kind == "video" and src.length_hint() == 2          # from the header: 5 // 2
    frames = list(src)
    assert [f.index for f in frames] == [0, 2, 4] and [f.position for f in frames] == [0, 1, 2]
    assert [f.timestamp for f in frames] == pytest.approx([0.0, 0.2, 0.4], abs=0.01)
    assert all(f.image.shape == (240, 320, 3) for f in frames)
    # the astronaut frames look like the astronaut, not like the coffee
    small = cv2.resize(astronaut, (320, 240)).astype(int)
    assert np.abs(frames[0].image.astype(int) - small).mean() < 10
    assert describe_source(path) == ("video", False)


def test_bad_inputs_are_skipped_with_reasons(tmp_path, astronaut):
    Image.fromarray(astronaut).save(tmp_path / "ok.png")
    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[:300])
    (tmp_path / "broken.avi").write_bytes(b"\0" * 100)
    (tmp_path / "notes.md").write_text("hello")
    src = open_source([tmp_path, tmp_path / "gone.png"], missing="skip")
    frames = list(src.frames(decode=True))
    assert [f.source for f in frames] == [str(tmp_path / "ok.png")]
    kinds = {s.source: s.kind for s in src.skipped}
    assert kinds == {str(tmp_path / "gone.png"): "missing", str(tmp_path / "notes.md"): "unsupported",
                     str(tmp_path / "broken.avi"): "unreadable", str(tmp_path / "cut.jpg"): "unreadable"}
    reasons = {s.source: s.reason for s in src.skipped}
    assert "OpenCV could not open" in reasons[str(tmp_path / "broken.avi")]
    assert "corrupt or truncated" in reasons[str(tmp_path / "cut.jpg")]
    with pytest.raises(SourceError, match="no such file or folder"):
        open_source(tmp_path / "gone.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        open_source(tmp_path / "empty")


def test_webcams_and_streams_are_live_and_not_opened_early():
    cam = open_source(0)
    assert (cam.kind, cam.live, cam.length_hint()) == ("webcam", True, None)
    assert open_source("1").kind == "webcam"
    stream = open_source("rtsp://127.0.0.1:9/none")
    assert (stream.kind, stream.live, stream.paths) == ("stream", True, [])
    assert describe_source(0) == ("webcam", True)


def test_frame_keeps_the_old_constructor(astronaut):
    f = Frame(astronaut, "a.png", 3, 0.5)
    assert (f.source, f.index, f.timestamp, f.name, f.position) == ("a.png", 3, 0.5, "a.png", 3)
    assert f.image is astronaut and f.replace(index=7).image is astronaut and f.index == 3
