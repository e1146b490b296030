"""Reading images of every format and layout; bad files give clear errors and are never changed."""

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from conftest import write_panning_video
from faceforge.errors import ImageError, SourceError
from faceforge.sources import expand_paths, iter_frames, load_image, to_rgb_uint8


@pytest.mark.parametrize("fmt,suffix", [("JPEG", ".jpg"), ("PNG", ".png"), ("BMP", ".bmp"), ("GIF", ".gif"),
                                        ("PPM", ".pgm"), ("WEBP", ".webp"), ("TIFF", ".tif"), ("PNG", "")])
def test_formats_load_as_rgb_uint8(tmp_path, astronaut, fmt, suffix):
    img = Image.fromarray(astronaut)
    if suffix == ".pgm":
        img = img.convert("L")
    path = tmp_path / f"face{suffix}"
    img.save(path, format=fmt)
    arr = load_image(path)
    assert arr.shape == (512, 512, 3) and arr.dtype == np.uint8
    if fmt in ("PNG", "BMP", "TIFF"):
        assert np.array_equal(arr, astronaut)


def test_exif_orientation_is_applied(tmp_path, astronaut):
    img = Image.fromarray(astronaut[:, :400])  # 400 wide, 512 tall
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    img.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").shape == (400, 512, 3)


def test_grey_rgba_16bit_float_arrays(astronaut):
    grey = astronaut.mean(axis=2).astype(np.uint8)
    assert to_rgb_uint8(grey).shape == (512, 512, 3)
    rgba = np.dstack([astronaut, np.full((512, 512), 255, np.uint8)])
    assert np.array_equal(to_rgb_uint8(rgba), astronaut)
    sixteen = astronaut.astype(np.uint16) * 257
    assert np.array_equal(to_rgb_uint8(sixteen), astronaut)
    assert np.abs(to_rgb_uint8(astronaut / 255.0).astype(int) - astronaut).max() <= 1
    with pytest.raises(ImageError, match="expected an image of shape"):
        to_rgb_uint8(np.zeros((4, 4, 2), np.uint8))


def test_16bit_png_file(tmp_path, astronaut):
    grey16 = (astronaut.mean(axis=2) * 257).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    arr = load_image(tmp_path / "g16.png")
    assert arr.dtype == np.uint8 and abs(int(arr[100, 100, 0]) - int(astronaut[100, 100].mean())) <= 2


def test_bad_files_raise_clear_errors_and_stay_untouched(tmp_path, astronaut):
    corrupt = tmp_path / "corrupt.jpg"
    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, format="JPEG")
    corrupt.write_bytes(buf.getvalue()[:300])
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (corrupt, text, empty)}
    with pytest.raises(ImageError, match="corrupt.jpg: the image is corrupt or truncated"):
        load_image(corrupt)
    with pytest.raises(ImageError, match="notes.jpg: not an image"):
        load_image(text)
    with pytest.raises(ImageError, match="empty.png: the file is empty"):
        load_image(empty)
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in before}
    assert before == after


def test_huge_image_is_refused(tmp_path):
    Image.new("L", (3000, 3000)).save(tmp_path / "big.png")
    with pytest.raises(ImageError, match="big.png: 3000x3000 is 9 MP, above the 1 MP limit"):
        load_image(tmp_path / "big.png", max_pixels=1_000_000)


def test_folder_walk_and_frame_errors(tmp_path, astronaut):
    (tmp_path / "a" / "b").mkdir(parents=True)
    Image.fromarray(astronaut).save(tmp_path / "a" / "b" / "x.png")
    Image.fromarray(astronaut).save(tmp_path / "a" / "noext", format="PNG")
    (tmp_path / "a" / "readme.txt").write_text("hi")
    (tmp_path / "a" / "bad.jpg").write_text("nope")
    skipped = []
    files = expand_paths([tmp_path], skipped=skipped)
    assert [f.name for f in files] == ["bad.jpg", "noext", "x.png"]
    assert skipped == [(str(tmp_path / "a" / "readme.txt"), "not an image or video")]
    errors = []
    frames = list(iter_frames([tmp_path], errors=errors))
    assert len(frames) == 2
    assert [e[0] for e in errors] == [str(tmp_path / "a" / "readme.txt"), str(tmp_path / "a" / "bad.jpg")]
    assert "bad.jpg: not an image" in errors[1][1]
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="No images or videos found in .*empty"):
        expand_paths([tmp_path / "empty"])
    with pytest.raises(SourceError, match="no such file or folder"):
        expand_paths([tmp_path / "nope"])


def test_video_frames(tmp_path, astronaut):
    path = write_panning_video(tmp_path / "clip.avi", astronaut, frames=6, step=5)
    frames = list(iter_frames([path], every=2))
    assert [f.index for f in frames] == [0, 2, 4]
    assert frames[0].image.shape == (512, 512, 3)
