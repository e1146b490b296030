"""Archives as inputs: class folders in a zip / tar work; unsafe archives are refused."""

import hashlib
import io
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from faceforge.data import load_dataset
from faceforge.errors import DatasetError, SourceError
from faceforge.sources import expand_paths
from faceforge.sources.archive import extract_archive, is_archive


def _png(img) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture()
def faces_zip(tmp_path, astronaut):
    path = tmp_path / "faces.zip"
    with zipfile.ZipFile(path, "w") as z:
        for cls in ("alice", "bob"):
            for i in range(3):
                shift = 10 * i + (50 if cls == "bob" else 0)
                z.writestr(f"faces/{cls}/{i}.png", _png(np.roll(astronaut, shift, axis=1)))
        z.writestr("faces/readme.txt", "not an image")
    return path


def test_zip_of_class_folders_is_a_dataset(faces_zip):
    before = hashlib.sha256(faces_zip.read_bytes()).hexdigest()
    ds = load_dataset(faces_zip)
    assert ds.classes == ["alice", "bob"] and len(ds) == 6
    again = load_dataset(faces_zip)  # extracted once, then reused from the cache
    assert again.paths == ds.paths
    files = expand_paths([faces_zip])
    assert len(files) == 6 and all(f.suffix == ".png" for f in files)
    assert hashlib.sha256(faces_zip.read_bytes()).hexdigest() == before and is_archive(faces_zip)


def test_tar_gz_works_too(tmp_path, astronaut):
    path = tmp_path / "faces.tar.gz"
    with tarfile.open(path, "w:gz") as t:
        for cls in ("a", "b"):
            for i in range(2):
                data = _png(np.roll(astronaut, 20 * i, axis=0))
                info = tarfile.TarInfo(f"{cls}/{i}.png")
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    assert load_dataset(path).classes == ["a", "b"]


@pytest.mark.parametrize("name, match", [("../evil.png", "outside"), ("a/../../evil.png", "outside"),
                                         ("/etc/evil.png", "absolute")])
def test_path_traversal_is_refused(tmp_path, name, match):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("ok/1.png", b"x")
        z.writestr(name, b"x")
    with pytest.raises(SourceError, match=match):
        extract_archive(path, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.png").exists()
    with pytest.raises(DatasetError, match=match):
        load_dataset(path)


def test_links_and_bombs_are_refused(tmp_path):
    path = tmp_path / "link.tar"
    with tarfile.open(path, "w") as t:
        info = tarfile.TarInfo("a/passwd.png")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        t.addfile(info)
    with pytest.raises(SourceError, match="link"):
        extract_archive(path, tmp_path / "out")
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("a/big.png", b"\0" * 5_000_000)
    assert bomb.stat().st_size < 100_000
    with pytest.raises(SourceError, match="limit"):
        extract_archive(bomb, tmp_path / "out", max_bytes=1_000_000)
    with pytest.raises(SourceError, match="limit"):
        extract_archive(bomb, tmp_path / "out", max_files=0)
    (tmp_path / "fake.zip").write_bytes(b"not a zip at all")
    with pytest.raises(SourceError, match="not a zip or tar"):
        extract_archive(tmp_path / "fake.zip", tmp_path / "out")
