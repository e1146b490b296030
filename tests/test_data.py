"""faceforge.data: ingestion, checks, the embedding cache and embed_dataset, on real images."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import shared_path
from faceforge.data import (
    AUGMENTATIONS,
    Dataset,
    DatasetError,
    EmbeddingCache,
    Record,
    Sample,
    check_duplicates,
    embed_dataset,
    cache_key,
    face_config,
    load_dataset,
)
from faceforge.errors import FaceforgeError

FORMATS = ("JPEG", "PNG", "BMP", "GIF", "PPM", "WEBP", "TIFF")
SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "GIF": ".gif", "PPM": ".pgm", "WEBP": ".webp", "TIFF": ".tif"}


# -- real images -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def astro_faces() -> list[np.ndarray]:
    """Eight different crops of the astronaut photo around her face (one face each)."""
    from skimage import data

    img = data.astronaut()
    out = []
    for k, (dx, dy, side) in enumerate([(0, 0, 240), (-30, 10, 260), (25, -15, 230), (10, 20, 280),
                                        (-15, -10, 250), (30, 25, 270), (-25, 30, 300), (5, -20, 220)]):
        cx, cy = 225 + dx, 124 + dy
        x0, y0 = max(0, cx - side // 2), max(0, cy - side // 2)
        crop = img[y0 : y0 + side, x0 : x0 + side]
        out.append(np.clip(crop.astype(np.float32) * (0.9 + 0.03 * k), 0, 255).astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def lfw_faces() -> list[np.ndarray]:
    """Tiny 25x25 grey face crops (scikit-image's LFW subset; the first 100 are faces)."""
    from skimage import data

    x = data.lfw_subset()[:100]
    return [np.repeat((f * 255).round().astype(np.uint8)[:, :, None], 3, axis=2) for f in x]


@pytest.fixture(scope="module")
def scenes() -> list[np.ndarray]:
    """Photos without a person: crops of the coffee cup and the cat."""
    from skimage import data

    coffee, cat = data.coffee(), data.chelsea()
    return [coffee[0:240, 0:300], coffee[100:400, 250:600], coffee[0:300, 300:600], cat[40:300, 150:451]]


def save(path: Path, image: np.ndarray, fmt: str = "PNG", **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(image)
    if fmt == "PPM":
        im = im.convert("L")  # a real grey PGM
    im.save(path, format=fmt, **kw)
    return path


def digest_tree(root: Path) -> dict[str, tuple[str, int]]:
    return {str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def photo_set(tmp_path, astro_faces, lfw_faces) -> Path:
    """Two classes: 'astronaut' (eight formats, one file without an extension) and nested 'lfw/a'."""
    root = tmp_path / "photos"
    for k, fmt in enumerate(FORMATS):
        save(root / "astronaut" / f"img{k}{SUFFIX[fmt]}", astro_faces[k], fmt)
    save(root / "astronaut" / "noext", astro_faces[7], "JPEG")
    for k in range(4):
        save(root / "lfw" / "a" / f"{k}.png", lfw_faces[k])
    return root


@pytest.fixture()
def cache(tmp_path) -> EmbeddingCache:
    c = EmbeddingCache(tmp_path / "cache" / "emb.sqlite")
    yield c
    c.close()


# -- ingestion ---------------------------------------------------------------------------------

def test_folder_ingestion_nested_formats_and_hidden(photo_set, astro_faces):
    (photo_set / ".hidden").mkdir()
    save(photo_set / ".hidden" / "x.png", astro_faces[0])
    save(photo_set / "astronaut" / ".secret.png", astro_faces[0])
    save(photo_set / "stray.png", astro_faces[0])
    (photo_set / "README.md").write_text("notes")
    (photo_set / "astronaut" / "labels.json").write_text("{}")
    (photo_set / "astronaut" / "clip.xyz").write_bytes(b"\x00\x01")

    ds = load_dataset(photo_set, warn_per_class=5)
    assert ds.task == "classification"
    assert ds.classes == ["astronaut", "lfw/a"]
    assert ds.counts() == {"astronaut": 8, "lfw/a": 4}
    assert all(os.path.isabs(s.path) for s in ds.samples)
    names = {Path(s.path).name for s in ds.samples}
    assert "noext" in names and {"img0.jpg", "img3.gif", "img4.pgm", "img5.webp", "img6.tif"} <= names
    assert not any(".hidden" in s.path or ".secret" in s.path for s in ds.samples)
    kinds = {(p.kind, Path(p.path).name) for p in ds.problems}
    assert ("root_image", "stray.png") in kinds
    assert ("not_image", "clip.xyz") in kinds
    assert ("few_images", "a") in kinds  # lfw/a has 4 < 5
    assert not any(Path(p.path).name in ("README.md", "labels.json") for p in ds.problems)
    assert ds.root == os.path.abspath(photo_set)


def test_csv_ingestion_like_utkface(tmp_path, lfw_faces):
    root = tmp_path / "utk"
    rows = []
    for k in range(24):
        name = f"{k}_face.jpg.chip.jpg"
        save(root / "images" / name, lfw_faces[k], "JPEG")
        rows.append([name, str(18 + k), "female" if k % 2 else "male", "white"])
    rows.append(["gone.jpg", "30", "male", "white"])
    with open(root / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows([["file", "age", "gender", "race"], *rows])

    ages = load_dataset(root / "labels.csv", label_column="age", image_root="images")
    assert ages.task == "regression" and ages.classes == []
    assert len(ages) == 24 and ages.samples[0].label == 18.0
    assert all(Path(s.path).parent == (root / "images").resolve() for s in ages.samples)
    assert [p.kind for p in ages.problems] == ["missing"] and "gone.jpg" in ages.problems[0].message

    genders = load_dataset(root / "labels.csv", path_column="file", label_column="gender", image_root=root / "images")
    assert genders.task == "classification" and genders.classes == ["female", "male"]

    # without image_root nothing resolves: the error points at the folder that has the files
    with pytest.raises(DatasetError, match=r"image_root='.*images'"):
        load_dataset(root / "labels.csv", label_column="age")


def test_csv_headerless_relative_and_no_extension(tmp_path, astro_faces, lfw_faces):
    root = tmp_path / "set"
    save(root / "a" / "one", astro_faces[0], "JPEG")  # no extension: sniffed
    save(root / "a" / "two.png", astro_faces[1])
    save(root / "b" / "three.bmp", lfw_faces[0], "BMP")
    save(root / "b" / "four.gif", lfw_faces[1], "GIF")
    (root / "list.csv").write_text("a/one,anna\na/two.png,anna\nb/three.bmp,ben\nb/four.gif,ben\na/two.png,ben\n")
    ds = load_dataset(root / "list.csv")
    assert ds.classes == ["anna", "ben"] and len(ds) == 4
    assert ds.samples[0].path == os.path.abspath(root / "a" / "one")
    rep = [p for p in ds.problems if p.kind == "repeated_row"]
    assert len(rep) == 1 and rep[0].severity == "warning" and "'anna' and 'ben'" in rep[0].message


def test_task_auto_detection(tmp_path, lfw_faces):
    def make(labels):
        d = tmp_path / f"t{len(list(tmp_path.iterdir()))}"
        lines = ["file,label"]
        for k, lab in enumerate(labels):
            save(d / f"{k}.png", lfw_faces[k])
            lines.append(f"{k}.png,{lab}")
        (d / "l.csv").write_text("\n".join(lines))
        return d / "l.csv"

    assert load_dataset(make([1, 2, 3] * 4)).task == "classification"  # 3 numeric values: classes
    reg = load_dataset(make([20 + 1.5 * k for k in range(12)]))
    assert reg.task == "regression" and reg.samples[3].label == 24.5
    assert load_dataset(make([1, 2, 3] * 4), task="regression").task == "regression"
    with pytest.raises(DatasetError, match="numeric labels.*'x'"):
        load_dataset(make(["x", "y"] * 3), task="regression")
    with pytest.raises(DatasetError, match="task must be"):
        load_dataset(make([1, 2] * 2), task="clustering")


def test_too_few_images_refused_with_a_fix(photo_set, astro_faces):
    save(photo_set / "zoe" / "only.png", astro_faces[0])
    with pytest.raises(DatasetError) as e:
        load_dataset(photo_set)
    msg = str(e.value)
    assert "'zoe'" in msg and "1 image" in msg and "at least 2" in msg
    assert "add photos" in msg and "remove the folders" in msg and str(photo_set / "zoe") in msg
    assert load_dataset(photo_set, min_per_class=1).counts()["zoe"] == 1


def test_empty_or_wrong_sources(tmp_path, astro_faces):
    with pytest.raises(DatasetError, match="no such folder or CSV"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images found"):
        load_dataset(tmp_path / "empty")
    (tmp_path / "empty" / "classA").mkdir()
    (tmp_path / "empty" / "classA" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="no images found"):
        load_dataset(tmp_path / "empty")
    flat = tmp_path / "flat"
    for k in range(3):
        save(flat / f"{k}.png", astro_faces[k])
    with pytest.raises(DatasetError, match="no class sub-folders"):
        load_dataset(flat)
    with pytest.raises(DatasetError, match="single image"):
        load_dataset(flat / "0.png")
    one = tmp_path / "one"
    for k in range(3):
        save(one / "solo" / f"{k}.png", astro_faces[k])
    with pytest.raises(DatasetError, match="only one class"):
        load_dataset(one)
    assert issubclass(DatasetError, FaceforgeError)


# -- checks ------------------------------------------------------------------------------------

def test_exact_and_near_duplicates(photo_set, astro_faces, tmp_path):
    src = photo_set / "astronaut" / "img1.png"
    (photo_set / "lfw" / "a" / "copy.png").write_bytes(src.read_bytes())  # same bytes, other class
    buf = io.BytesIO()
    Image.open(photo_set / "astronaut" / "img0.jpg").resize((200, 200)).save(buf, "JPEG", quality=55)
    (photo_set / "astronaut" / "resaved.jpg").write_bytes(buf.getvalue())  # re-encoded + resized
    ds = load_dataset(photo_set)
    probs = check_duplicates(ds, cache=tmp_path / "c.sqlite")
    exact = [p for p in probs if p.kind == "duplicate"]
    near = [p for p in probs if p.kind == "near_duplicate"]
    assert len(exact) == 1 and exact[0].severity == "warning"
    assert "labelled both 'astronaut' and 'lfw/a'" in exact[0].message
    assert str(src) in exact[0].message and "copy.png" in exact[0].message
    assert len(near) == 1 and near[0].severity == "info"
    assert "resaved.jpg" in near[0].message and "img0.jpg" in near[0].message
    # the astronaut crops differ from each other: no other pair is flagged
    assert {Path(p.path).name for p in probs} == {"copy.png", "resaved.jpg"}


def test_check_duplicates_reuses_hashes_from_embedding(photo_set, cache, monkeypatch):
    ds = load_dataset(photo_set, warn_per_class=2)
    embed_dataset(ds, cache=cache, workers=1, progress=False)
    import faceforge.runner

    monkeypatch.setattr(faceforge.runner, "run_items", lambda *a, **k: pytest.fail("decoded images again"))
    assert check_duplicates(ds, cache=cache) == []


# -- embedding and the cache -------------------------------------------------------------------

def test_embed_then_cache_hit(photo_set, cache, monkeypatch):
    ds = load_dataset(photo_set)
    before = digest_tree(photo_set)
    first = embed_dataset(ds, cache=cache, workers=1, progress=False)
    assert check_duplicates(ds, cache=cache) == []
    assert first.X.shape == (12, 128) and first.X.dtype == np.float32
    assert first.cache_misses == 12 and first.cache_hits == 0
    assert first.y.tolist() == [0] * 8 + [1] * 4 and first.classes == ["astronaut", "lfw/a"]
    assert first.paths == ds.paths and not first.augmented.any()
    assert first.face_sources == {"detected": 12, "whole_image": 0, "dropped": 0}  # 25 px faces too (upscaled)
    assert first.embedder == "dlib-resnet" and first.config["detector"] != "photo"

    import faceforge.data.embed as emb
    import faceforge.sources

    monkeypatch.setattr(emb, "_pipeline", lambda *a: pytest.fail("loaded a model on a warm run"))
    monkeypatch.setattr(faceforge.sources, "load_image", lambda *a, **k: pytest.fail("decoded an image on a warm run"))
    again = embed_dataset(ds, cache=cache, workers=1, progress=False)
    assert again.cache_misses == 0 and again.cache_hits == 12
    np.testing.assert_array_equal(again.X, first.X)
    assert digest_tree(photo_set) == before  # nothing written beside the photos, nothing touched


def test_cache_survives_rename_and_config_changes_miss(photo_set, cache):
    ds = load_dataset(photo_set)
    embed_dataset(ds, cache=cache, workers=1, progress=False)
    moved = photo_set.parent / "moved"
    photo_set.rename(moved)
    ds2 = load_dataset(moved)
    e = embed_dataset(ds2, cache=cache, workers=1, progress=False)  # same bytes: same keys
    assert e.cache_misses == 0 and e.cache_hits == 12
    e = embed_dataset(ds2, cache=cache, crops=True, workers=1, progress=False)  # another face config
    assert e.cache_misses == 12 and e.face_sources["whole_image"] == 12


def test_resume_after_interrupted_run(photo_set, cache, monkeypatch):
    import faceforge.data.embed as emb

    ds = load_dataset(photo_set)
    real = emb._EmbedTask.__call__
    calls = {"n": 0}

    def flaky(self, order, item):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # the user pressed Ctrl-C during the 4th image
        return real(self, order, item)

    monkeypatch.setattr(emb._EmbedTask, "__call__", flaky)
    with pytest.raises(KeyboardInterrupt):
        embed_dataset(ds, cache=cache, workers=1, progress=False)
    monkeypatch.setattr(emb._EmbedTask, "__call__", real)
    e = embed_dataset(ds, cache=cache, workers=1, progress=False)
    assert e.cache_hits == 3 and e.cache_misses == 9 and len(e.X) == 12


def test_unreadable_files_reported_not_fatal(photo_set, cache, monkeypatch):
    bad = photo_set / "astronaut" / "broken.jpg"
    good = (photo_set / "astronaut" / "img0.jpg").read_bytes()
    bad.write_bytes(good[: len(good) // 3])  # truncated JPEG
    (photo_set / "astronaut" / "notes.png").write_bytes(b"this is not a picture at all")
    (photo_set / "lfw" / "a" / "empty.png").write_bytes(b"")
    ds = load_dataset(photo_set)
    assert [(p.kind, Path(p.path).name) for p in ds.problems if p.kind != "few_images"] == [("unreadable", "empty.png")]
    e = embed_dataset(ds, cache=cache, workers=1, progress=False)
    unread = {Path(p.path).name: p for p in e.problems if p.kind == "unreadable"}
    assert set(unread) == {"broken.jpg", "notes.png", "empty.png"}
    assert str(bad) in unread["broken.jpg"].message and "re-export or remove" in unread["broken.jpg"].message
    assert len(e.X) == 12 and e.face_sources["dropped"] == 2
    # known-bad files are remembered: the warm run decodes nothing and still reports them
    import faceforge.sources

    monkeypatch.setattr(faceforge.sources, "load_image", lambda *a, **k: pytest.fail("decoded again"))
    e2 = embed_dataset(ds, cache=cache, workers=1, progress=False)
    assert e2.cache_misses == 0 and {Path(p.path).name for p in e2.problems if p.kind == "unreadable"} == set(unread)


def test_crop_modes_and_fallback_report(tmp_path, astro_faces, scenes, cache):
    root = tmp_path / "mixed"
    for k in range(3):
        save(root / "people" / f"{k}.jpg", astro_faces[k], "JPEG")
    for k, img in enumerate(scenes):
        save(root / "things" / f"{k}.jpg", img, "JPEG")
    ds = load_dataset(root)
    auto = embed_dataset(ds, cache=cache, workers=1, progress=False)
    assert auto.face_sources == {"detected": 3, "whole_image": 4, "dropped": 0} and len(auto.X) == 7
    nof = [p for p in auto.problems if p.kind == "no_face"]
    assert len(nof) == 4 and all(p.severity == "info" and "whole image was used" in p.message for p in nof)
    assert {Path(p.path).parent.name for p in nof} == {"things"}

    strict = embed_dataset(ds, cache=cache, crops=False, workers=1, progress=False)
    assert strict.face_sources == {"detected": 3, "whole_image": 0, "dropped": 4} and len(strict.X) == 3
    assert strict.y.tolist() == [0, 0, 0]
    assert sum(p.kind == "no_face" and p.severity == "warning" for p in strict.problems) == 4
    assert any(p.kind == "few_images" and p.path == "things" for p in strict.problems)
    np.testing.assert_allclose(strict.X, auto.X[:3], rtol=0, atol=0)  # detected faces: same embedding

    whole = embed_dataset(ds, cache=cache, crops=True, workers=1, progress=False)
    assert whole.face_sources == {"detected": 0, "whole_image": 7, "dropped": 0}
    assert not any(p.kind == "no_face" for p in whole.problems)


def test_tiny_crops_need_upscaling(tmp_path, lfw_faces, cache):
    root = tmp_path / "tiny"
    for k in range(6):
        save(root / ("x" if k < 3 else "y") / f"{k}.png", lfw_faces[k])
    ds = load_dataset(root)
    up = embed_dataset(ds, cache=cache, workers=1, progress=False)
    raw = embed_dataset(ds, cache=cache, upscale=None, workers=1, progress=False)
    assert up.face_sources["detected"] == 6
    assert raw.face_sources["detected"] < 6 and raw.face_sources["whole_image"] == 6 - raw.face_sources["detected"]
    assert raw.cache_misses == 6  # upscaling is part of the key


def test_augmentation_adds_flagged_rows(photo_set, cache):
    ds = load_dataset(photo_set)
    base = embed_dataset(ds, cache=cache, workers=1, progress=False)
    aug = embed_dataset(ds, augment=True, cache=cache, workers=1, progress=False)
    k = 1 + len(AUGMENTATIONS)
    assert aug.X.shape == (12 * k, 128) and aug.augmented.sum() == 12 * (k - 1)
    assert aug.cache_hits == 12 and aug.cache_misses == 12 * (k - 1)  # originals came from the cache
    np.testing.assert_array_equal(aug.X[~aug.augmented], base.X)
    assert aug.paths[:k] == [ds.samples[0].path] * k and aug.y[:k].tolist() == [0] * k
    assert aug.face_sources == base.face_sources  # counted over source images only
    flips = aug.X[1::k]  # a mirrored face embeds close to, not exactly at, the original
    d = np.linalg.norm(flips - base.X, axis=1)
    assert np.all(d > 0) and np.all(d < 0.6)
    some = embed_dataset(ds, augment=["flip"], cache=cache, workers=1, progress=False)
    assert some.cache_misses == 0 and len(some.X) == 24
    with pytest.raises(FaceforgeError, match="Unknown augmentation"):
        embed_dataset(ds, augment=["blur"], cache=cache, workers=1, progress=False)


def test_process_pool(photo_set, cache):
    """Two worker processes (the task object and its results cross process boundaries)."""
    ds = load_dataset(photo_set)
    ref = embed_dataset(ds, cache=cache, workers=1, progress=False)
    other = EmbeddingCache(cache.path.parent / "pool.sqlite")
    try:
        par = embed_dataset(ds, cache=other, workers=2, progress=False)
    finally:
        other.close()
    assert par.cache_misses == 12 and par.paths == ref.paths
    np.testing.assert_allclose(par.X, ref.X, atol=1e-4)


def test_embedding_cache_roundtrip_and_memo(tmp_path, monkeypatch):
    path = tmp_path / "c.sqlite"
    with EmbeddingCache(path) as c:
        assert c.get("nope") is None
        rec = Record(np.arange(128, dtype=np.float32), "detected", 2, [1.5, 2.0, 30.0, 40.25])
        c.put("k1", rec)
        c.put("k2", Record(np.zeros(0, np.float32), "none", 0, None))
    with EmbeddingCache(path) as c:  # reopened: committed
        got = c.get("k1")
        np.testing.assert_array_equal(got.embedding, rec.embedding)
        assert (got.face, got.n_faces, got.box) == ("detected", 2, [1.5, 2.0, 30.0, 40.25])
        assert c.get("k2").embedding.shape == (0,) and len(c) == 2 and "k1" in c
        f = tmp_path / "f.bin"
        f.write_bytes(b"abc")
        import faceforge.data.cache as cm

        calls = []
        real = cm.hash_file
        monkeypatch.setattr(cm, "hash_file", lambda p: calls.append(p) or real(p))
        sha = hashlib.sha256(b"abc").hexdigest()
        assert c.file_sha256(f) == sha and c.file_sha256(f) == sha and len(calls) == 1
        f.write_bytes(b"abcd")  # changed size: hashed again
        assert c.file_sha256(f) == hashlib.sha256(b"abcd").hexdigest() and len(calls) == 2
        with pytest.raises(DatasetError, match="cannot be read"):
            c.file_sha256(tmp_path / "missing")
    (tmp_path / "junk.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(DatasetError, match="Delete the file"):
        EmbeddingCache(tmp_path / "junk.sqlite")


def test_warm_run_of_5000_is_fast(tmp_path, monkeypatch):
    """All keys cached: keys from memoised hashes, batched reads, no decoding, no model."""
    root = tmp_path / "many"
    n = 5000
    rng = np.random.default_rng(0)
    for k in range(n):
        d = root / f"c{k % 10}"
        if k < 10:
            d.mkdir(parents=True)
        (d / f"{k}.jpg").write_bytes(rng.bytes(64))  # never decoded: every key is cached below
    ds = load_dataset(root)
    cfg = face_config()
    with EmbeddingCache(tmp_path / "c.sqlite") as c:
        c.put_many((cache_key(info.sha256, cfg), Record(v, "detected", 1, [0, 0, 1, 1]))
                   for info, v in zip(c.file_infos(ds.paths), rng.standard_normal((n, 128)).astype(np.float32)))
        import faceforge.data.embed as emb

        monkeypatch.setattr(emb, "_pipeline", lambda *a: pytest.fail("loaded a model"))
        t = time.perf_counter()
        e = embed_dataset(ds, cache=c, progress=False)
        took = time.perf_counter() - t
    assert e.cache_misses == 0 and e.X.shape == (n, 128)
    assert took < 3.0, f"warm run of {n} images took {took:.1f} s"


def test_bad_arguments(photo_set, cache):
    ds = load_dataset(photo_set)
    with pytest.raises(FaceforgeError, match="Unknown embedder"):
        embed_dataset(ds, embedder="nope", cache=cache)
    with pytest.raises(FaceforgeError, match="crops must be"):
        embed_dataset(ds, crops="sometimes", cache=cache)
    with pytest.raises(DatasetError, match="CSV files only"):
        load_dataset(photo_set, label_column="x")
    empty = Dataset([Sample(str(photo_set / "gone.png"), "a")], "classification", ["a"], str(photo_set), [])
    with pytest.raises(DatasetError, match="none of the 1 images"):
        embed_dataset(empty, cache=cache, progress=False)


# -- real data -----------------------------------------------------------------------------------

@pytest.mark.shared
def test_att_faces_three_people(tmp_path):
    att = shared_path("identity", "att_faces")
    root = tmp_path / "att3"
    for person in ("s1", "s2", "s3"):
        (root / person).mkdir(parents=True)
        for f in sorted((att / person).glob("*.pgm")):
            (root / person / f.name).symlink_to(f)  # link, never copy, the shared data
    before = digest_tree(att / "s1")
    ds = load_dataset(root)
    assert ds.classes == ["s1", "s2", "s3"] and len(ds) == 30
    with EmbeddingCache(tmp_path / "c.sqlite") as c:
        e = embed_dataset(ds, cache=c, workers=1, progress=False)
    assert e.face_sources == {"detected": 30, "whole_image": 0, "dropped": 0}
    assert e.X.shape == (30, 128)
    # same person closer than different people, on average
    d = np.linalg.norm(e.X[:, None] - e.X[None], axis=2)
    same = e.y[:, None] == e.y[None]
    assert d[same & ~np.eye(30, dtype=bool)].mean() < 0.6 < d[~same].mean()
    assert digest_tree(att / "s1") == before
