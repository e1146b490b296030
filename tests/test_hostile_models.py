"""Hostile model files, images and archives (issue 14): each is refused at load, fast and in little
memory, with a clear error naming the file, by the library and by the service (4xx, no server path,
nothing left in ``home/models``).

The model files are crafted from a real tiny model trained here on two real people; the bombs are
built byte by byte (deflate streams of zeros repeated), so making them allocates nothing large.
"""

from __future__ import annotations

import io
import json
import struct
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from PIL import Image

from conftest import jpeg, variants
from faceforge.errors import BundleError, ImageError, SourceError

# -- building hostile bytes ----------------------------------------------------------------------


def deflate_zeros(head: bytes, n: int, chunk: int = 1 << 20) -> tuple[bytes, int, int]:
    """A raw deflate stream of ``head`` + ``n`` zero bytes, its CRC-32 and its size, built from one
    compressed chunk repeated (a full flush resets the compressor, so every chunk compresses alike)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    zeros = bytes(chunk)
    block = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(head)
    for _ in range(n // chunk):
        crc = zlib.crc32(zeros, crc)
    return start + block * (n // chunk) + c.flush(), crc, len(head) + n


def raw_zip(members: list[tuple[str, bytes, int, int]]) -> bytes:
    """A zip of already-deflated members ``(name, data, crc, declared size)`` (the size may lie)."""
    out, central = io.BytesIO(), []
    for name, data, crc, size in members:
        off, nb = out.tell(), name.encode()
        out.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(data), size, len(nb), 0)
                  + nb + data)
        central.append(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(data), size,
                                   len(nb), 0, 0, 0, 0, 0, off) + nb)
    cd = out.tell()
    out.write(b"".join(central))
    out.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), out.tell() - cd, cd, 0))
    return out.getvalue()


def npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


GIB = 2**30


def bounded(fn: Callable[[], Any], seconds: float, mb: float) -> Exception:
    """Run ``fn``, which must raise; return the error after checking its time and peak memory."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the caller checks the type
        err = e
    else:
        raise AssertionError("no error raised")
    finally:
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.2f} s"
    assert peak < mb * 1e6, f"peak {peak / 1e6:.0f} MB"
    return err


# -- a real tiny model, and models made from it ----------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory, astronaut, grace) -> dict[str, Path]:
    """Two small models trained on 4 photos each of two real people: logreg (with the unknown-face
    check) and knn."""
    from faceforge.train import train

    root = tmp_path_factory.mktemp("tiny")
    for label, img in {"eileen": astronaut, "grace": grace}.items():
        (root / "photos" / label).mkdir(parents=True)
        for i, v in enumerate(variants(img, 4)):
            Image.fromarray(v).save(root / "photos" / label / f"{i}.jpg")
    out = {"logreg": root / "logreg.ffm", "knn": root / "knn.ffm"}
    train(root / "photos", out["logreg"], progress=False)
    train(root / "photos", out["knn"], head="knn", target_far=None, progress=False)
    return out


def read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    with zipfile.ZipFile(path) as z:
        manifest = json.loads(z.read("manifest.json"))
        with np.load(io.BytesIO(z.read("arrays.npz"))) as npz:
            return manifest, {k: npz[k] for k in npz.files}


def write(manifest: Any, arrays: dict[str, np.ndarray] | bytes) -> bytes:
    """A model file's bytes (no checks: the manifest may be anything, the arrays NaN)."""
    if not isinstance(arrays, bytes):
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        arrays = buf.getvalue()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", manifest if isinstance(manifest, str) else json.dumps(manifest))
        z.writestr("arrays.npz", arrays)
    return out.getvalue()


def edit(fn: Callable[[dict, dict], Any], base: str = "logreg") -> Callable[[dict[str, Path]], bytes]:
    def make(models: dict[str, Path]) -> bytes:
        m, a = read(models[base])
        fn(m, a)
        return write(m, a)

    return make


def _set(d: dict, key: str, value: Any) -> None:
    d[key] = value


def _double_compressed_bomb(models: dict[str, Path]) -> bytes:
    """1 GiB of zeros as an array, compressed in the .npz and again in the model file (a few kB)."""
    m, _ = read(models["logreg"])
    head = npy_header((GIB // 8,))
    data, crc, size = deflate_zeros(head, GIB)
    return write(m, raw_zip([("head.W.npy", data, crc, size)]))


def _lying_bomb(models: dict[str, Path]) -> bytes:
    """The same, its .npz header claiming 1 MB."""
    m, _ = read(models["logreg"])
    data, crc, _ = deflate_zeros(npy_header((GIB // 8,)), GIB)
    return write(m, raw_zip([("head.W.npy", data, crc, 2**20)]))


def _lying_npy(models: dict[str, Path]) -> bytes:
    """An array whose .npy header claims 10^12 floats over 16 bytes of data."""
    m, a = read(models["logreg"])
    buf = io.BytesIO()
    np.savez(buf, **{k: v for k, v in a.items() if k != "head.W"})
    raw = io.BytesIO(buf.getvalue())
    with zipfile.ZipFile(raw, "a") as z:
        z.writestr("head.W.npy", npy_header((10**6, 10**6)) + bytes(16))
    return write(m, raw.getvalue())


HOSTILE_MODELS = [
    ("embedder_null", edit(lambda m, a: _set(m, "embedder", None)), "names no embedder"),
    ("embedder_missing", edit(lambda m, a: m.pop("embedder")), "names no embedder"),
    ("embedder_list", edit(lambda m, a: _set(m, "embedder", ["dlib-resnet"])), "'embedder' must be"),
    ("embedder_unknown", edit(lambda m, a: _set(m, "embedder", "nope-net")), "does not know"),
    ("embedder_is_a_detector", edit(lambda m, a: _set(m, "embedder", "yunet")), "not an embedder"),
    ("no_head", edit(lambda m, a: m.pop("head")), "'head' must be"),
    ("head_a_string", edit(lambda m, a: _set(m, "head", "logreg")), "'head' must be"),
    ("no_task", edit(lambda m, a: m.pop("task")), "'task' must be"),
    ("classes_not_a_list", edit(lambda m, a: _set(m, "classes", "eileen,grace")), "'classes' must be"),
    ("head_width", edit(lambda m, a: _set(m["head"], "n_features", 64)), "takes 64-D"),
    ("nan_weights", edit(lambda m, a: a["head.W"].__setitem__((0, 0), np.nan)), "NaN"),
    ("inf_bias", edit(lambda m, a: a["head.b"].__setitem__(0, np.inf)), "NaN or infinite"),
    ("wrong_shape", edit(lambda m, a: _set(a, "head.W", a["head.W"][:100])), "head.W"),
    ("transposed", edit(lambda m, a: _set(a, "head.W", np.ascontiguousarray(a["head.W"].T))), "head.W"),
    ("missing_array", edit(lambda m, a: a.pop("head.b")), "missing arrays"),
    ("stray_array", edit(lambda m, a: _set(a, "evil", np.zeros(3))), "no use for"),
    ("string_weights", edit(lambda m, a: _set(a, "head.b", np.array(["x", "y"]))), "floating-point"),
    ("present_out_of_range", edit(lambda m, a: _set(a, "head.present", np.array([0, 7]))), "head.present"),
    ("openset_nan", edit(lambda m, a: a["openset.gallery"].__setitem__((0, 0), np.nan)), "openset.gallery"),
    ("openset_width", edit(lambda m, a: _set(a, "openset.gallery", a["openset.gallery"][:, :64])), "openset"),
    ("knn_zero_neighbours", edit(lambda m, a: _set(a, "head.n_neighbors", np.array([0])), "knn"), "n_neighbors"),
    ("knn_labels", edit(lambda m, a: a["head.gallery_y"].__setitem__(0, 9), "knn"), "gallery_y"),
    ("deep_manifest", lambda models: write('{"a":' * 100_000 + "1" + "}" * 100_000, {}), "damaged"),
    ("lying_npy_header", _lying_npy, "claims shape"),
    ("double_compressed_bomb", _double_compressed_bomb, "limit"),
    ("lying_zip_header", _lying_bomb, "damaged"),
]


@pytest.fixture(scope="module")
def hostile(models) -> dict[str, bytes]:
    return {case: make(models) for case, make, _ in HOSTILE_MODELS}


def test_the_tiny_models_load_and_classify(models, astronaut):
    from faceforge.train import load_classifier

    for path in models.values():
        clf = load_classifier(path)
        (pred,) = clf.classify(astronaut).predictions[clf.name]
        assert pred.label == "eileen" and np.isfinite(pred.score)


@pytest.mark.parametrize("case,match", [(c, m) for c, _, m in HOSTILE_MODELS], ids=[c for c, _, _ in HOSTILE_MODELS])
def test_hostile_model_files_are_refused_at_load(hostile, tmp_path, case, match):
    from faceforge.train import load_classifier

    path = tmp_path / f"{case}.ffm"
    path.write_bytes(hostile[case])
    err = bounded(lambda: load_classifier(path), seconds=0.5, mb=60)
    assert isinstance(err, BundleError), repr(err)
    assert str(path) in str(err) and match in str(err), str(err)


def test_the_bombs_are_small_files(hostile):
    assert len(hostile["double_compressed_bomb"]) < 30_000 and len(hostile["lying_zip_header"]) < 30_000


# -- the service: uploads ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from faceforge.service import create_app

    home = tmp_path_factory.mktemp("svc")
    with TestClient(create_app(home=home, run_jobs=False)) as c:
        yield c, home


@pytest.mark.parametrize("case", [c for c, _, _ in HOSTILE_MODELS])
def test_bad_uploads_get_4xx_and_leave_nothing(service, hostile, case):
    client, home = service
    r = client.post("/api/models", files={"file": (f"{case}.ffm", hostile[case], "application/zip")},
                    data={"name": "bad"})
    assert 400 <= r.status_code < 500, r.text
    assert f"{case}.ffm" in r.json()["detail"], r.text
    assert str(home) not in r.text and "/tmp" not in r.text and "upload-" not in r.text
    assert list((home / "models").iterdir()) == []
    assert all(m["name"] != "bad" for m in client.get("/api/models").json()["models"])


def test_good_upload_is_kept_and_its_manifest_names_no_server_path(service, models, tmp_path, astronaut):
    client, home = service
    raw = models["logreg"].read_bytes()
    assert str(models["logreg"].parent).encode() in zipfile.ZipFile(io.BytesIO(raw)).read("manifest.json")
    r = client.post("/api/models", files={"file": ("crew.ffm", raw, "application/zip")}, data={"name": "crew"})
    assert r.status_code == 201, r.text
    got = client.get("/api/models/crew/file").content
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(got)).read("manifest.json"))
    assert manifest["data"]["source"] == "photos" and str(models["logreg"].parent) not in json.dumps(manifest)
    r = client.post("/api/classify", files={"file": ("a.jpg", jpeg(astronaut), "image/jpeg")}, data={"model": "crew"})
    assert r.status_code == 200 and r.json()["faces"][0]["label"] == "eileen"
    assert client.delete("/api/models/crew").status_code == 200
    assert [p for p in (home / "models").iterdir()] == []


# -- images -------------------------------------------------------------------------------------------


def one_bit_png(w: int, h: int, noise_rows: int = 0) -> bytes:
    img = Image.new("1", (w, h), 1)
    if noise_rows:
        rng = np.random.default_rng(0)
        img.paste(Image.fromarray(rng.integers(0, 2, (noise_rows, w), dtype=np.uint8) * 255).convert("1"), (0, 0))
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    return {"9999x9999": one_bit_png(9999, 9999), "40mp": one_bit_png(6300, 6300),
            "40mp_noisy": one_bit_png(6300, 6300, noise_rows=200)}


def test_small_png_bombs_are_refused_from_the_header(bombs, tmp_path):
    from faceforge.sources import load_image

    assert len(bombs["9999x9999"]) < 30_000 and len(bombs["40mp"]) < 15_000
    for key in ("9999x9999", "40mp"):
        path = tmp_path / f"{key}.png"
        path.write_bytes(bombs[key])
        err = bounded(lambda p=path: load_image(p), seconds=0.1, mb=5)
        assert isinstance(err, ImageError) and str(path) in str(err) and "decompression bomb" in str(err)


def test_decoding_is_capped_for_pngs_and_reduced_for_jpegs(bombs, astronaut):
    from faceforge.sources import load_image

    noisy = bombs["40mp_noisy"]
    assert 6300 * 6300 / len(noisy) < 500  # not an obvious bomb: it gets to the decode cap
    err = bounded(lambda: load_image(noisy, 40_000_000, max_decode_pixels=16_000_000), seconds=0.1, mb=5)
    assert isinstance(err, ImageError) and "above the 16 MP decoded here for PNG" in str(err)
    big = jpeg(np.asarray(Image.fromarray(astronaut).resize((6000, 4000))))
    assert load_image(big, max_decode_pixels=16_000_000).shape == (2000, 3000, 3)
    assert load_image(big).shape == (4000, 6000, 3)  # the library default decodes it all


def test_service_refuses_image_bombs_fast_and_takes_camera_photos(service, bombs, astronaut):
    client, _ = service
    for key, bomb in bombs.items():
        t0 = time.perf_counter()
        r = client.post("/api/detect", files={"file": (f"{key}.png", bomb, "image/png")})
        assert r.status_code == 422 and f"{key}.png" in r.json()["detail"] and "MP" in r.json()["detail"], r.text
        assert time.perf_counter() - t0 < 0.5
    camera = jpeg(np.asarray(Image.fromarray(astronaut).resize((4000, 3000))))  # 12 MP
    r = client.post("/api/detect", files={"file": ("camera.jpg", camera, "image/jpeg")})
    assert r.status_code == 200 and (r.json()["width"], r.json()["height"]) == (4000, 3000)
    assert len(r.json()["faces"]) == 1
    # the JPEG form of a bomb: 40 MP of grey in ~0.6 MB, refused from its header
    buf = io.BytesIO()
    Image.new("RGB", (6300, 6300), (128, 128, 128)).save(buf, "JPEG", quality=50)
    t0 = time.perf_counter()
    r = client.post("/api/detect", files={"file": ("grey.jpg", buf.getvalue(), "image/jpeg")})
    assert r.status_code == 422 and "pixels per byte" in r.json()["detail"] and "grey.jpg" in r.json()["detail"]
    assert time.perf_counter() - t0 < 0.5


def test_a_jpeg_decoded_reduced_answers_in_its_own_pixels(service, astronaut):
    """A 24 MP photo is decoded at half size in the service (cheap), but the answer's size, boxes and
    landmarks are in the photo's own pixels: the same face as in a 12 MP copy, 1.5x larger."""
    client, _ = service
    boxes = {}
    for w, h in ((6000, 4000), (4000, 2667)):  # 24 MP (decoded reduced) and 10.7 MP (decoded whole)
        photo = jpeg(np.asarray(Image.fromarray(astronaut).resize((w, h))))
        r = client.post("/api/detect", files={"file": (f"{w}.jpg", photo, "image/jpeg")})
        assert r.status_code == 200, r.text
        j = r.json()
        assert (j["width"], j["height"]) == (w, h) and len(j["faces"]) == 1
        boxes[w] = np.array(j["faces"][0]["box"])
    assert np.allclose(boxes[6000], boxes[4000] * 1.5, rtol=0.05, atol=15), boxes


# -- archives -----------------------------------------------------------------------------------------


def test_zip_bomb_is_refused_and_leaves_nothing_in_the_cache(tmp_path, monkeypatch):
    from faceforge.sources.archive import extract_archive, extracted

    monkeypatch.setenv("FACEFORGE_CACHE", str(tmp_path / "cache"))
    data, crc, size = deflate_zeros(b"", GIB)
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(raw_zip([("people/amy/a.png", data, crc, size)]))
    assert bomb.stat().st_size < 1_300_000
    err = bounded(lambda: extracted(bomb), seconds=0.5, mb=20)
    assert isinstance(err, SourceError) and "zip bomb" in str(err) and str(bomb) in str(err)
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []
    # a header that lies (1 MB declared) stops at what it declared, and the partial files go
    liar = tmp_path / "liar.zip"
    liar.write_bytes(raw_zip([("people/amy/a.png", data, crc, 2**20)]))
    err = bounded(lambda: extract_archive(liar, tmp_path / "out"), seconds=0.5, mb=20)
    assert isinstance(err, SourceError) and str(liar) in str(err)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
