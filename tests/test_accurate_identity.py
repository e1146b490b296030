"""The accurate identity preset (issue 19.1): flip-averaged embeddings with their own key, cache entries,
thresholds and galleries, through the library, the CLI and the API; the fast default unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import jpeg, variants

from faceforge.errors import ImageError, ParameterError


@pytest.fixture(scope="module")
def pipes():
    from faceforge.pipeline import FacePipeline

    return FacePipeline("yunet", "dlib-resnet"), FacePipeline("yunet", "dlib-resnet", quality="accurate")


@pytest.fixture(scope="module")
def found(pipes, astronaut):
    """The astronaut's face as the pipelines find it: (detection image, faces, chips)."""
    fast, _ = pipes
    faces, det_img, _ = fast.finder.find_scaled(astronaut)
    return det_img, faces, fast.chips(det_img, faces)


# -- the embeddings -----------------------------------------------------------------------------
def test_fast_is_exactly_the_single_embedding_of_old(pipes, found):
    from faceforge.align import align_faces
    from faceforge.embedders import get_embedder

    det_img, faces, _ = found
    emb = get_embedder("dlib-resnet")
    old = emb._embed(np.ascontiguousarray(align_faces(det_img, faces, template="dlib150", size=150)))
    assert np.array_equal(pipes[0].embed_chips(det_img, faces), old)  # byte-identical
    assert np.array_equal(emb.embed(found[2]), old) and np.array_equal(emb.embed(found[2], tta="none"), old)
    assert pipes[0].quality == "fast" and pipes[0].embedding_key == "dlib-resnet"


def test_accurate_is_the_mirror_average_and_differs_from_fast(pipes, found):
    from faceforge.embedders import get_embedder

    det_img, faces, chips = found
    emb = get_embedder("dlib-resnet")
    plain = emb.embed(chips)
    mirrored = emb.embed(np.ascontiguousarray(chips[:, :, ::-1]))
    acc = pipes[1].embed_chips(det_img, faces)
    np.testing.assert_allclose(acc, (plain + mirrored) / 2, atol=1e-5)
    np.testing.assert_allclose(emb.embed(chips, tta="flip"), acc, atol=1e-6)
    assert acc.dtype == np.float32 and acc.shape == (1, 128)
    assert float(np.linalg.norm(acc - plain)) > 0.02  # a different embedding, not a rounding of the same


def test_embedding_keys_keep_the_presets_apart(pipes, astronaut):
    from faceforge.pipeline.core import quality_key

    fast, acc = pipes
    f, a = fast.embed(astronaut), acc.embed(astronaut)
    assert list(f.embeddings) == ["dlib-resnet"]
    assert list(a.embeddings) == ['dlib-resnet{"quality":"accurate"}'] == [acc.embedding_key]
    assert quality_key("dlib-resnet", "dlib5", "accurate") == 'dlib-resnet{"quality":"accurate","template":"dlib5"}'
    assert quality_key("dlib-resnet", "dlib5") == 'dlib-resnet{"template":"dlib5"}'  # fast: the key of old


@pytest.mark.parametrize("bad", ["slow", "Accurate", "", 1, ["accurate"]])
def test_unknown_quality_or_tta_is_refused(bad, found, tmp_path):
    from faceforge.embedders import get_embedder
    from faceforge.gallery import Gallery
    from faceforge.pipeline import FacePipeline, verify

    for call in (lambda: FacePipeline("yunet", "dlib-resnet", quality=bad),
                 lambda: verify(found[0], found[0], quality=bad),
                 lambda: Gallery(tmp_path / "g.db", quality=bad)):
        with pytest.raises(ParameterError, match="quality must be one of 'fast', 'accurate'"):
            call()
    with pytest.raises(ParameterError, match="tta must be one of 'none', 'flip'"):
        get_embedder("dlib-resnet").embed(found[2], tta=bad)


def test_embedder_validates_chips_before_any_augmentation():
    from faceforge.embedders import get_embedder

    with pytest.raises(ImageError, match=r"\(n, 150, 150, 3\) uint8"):
        get_embedder("dlib-resnet").embed(np.zeros((1, 112, 112, 3), np.uint8), tta="flip")
    assert get_embedder("dlib-resnet").embed(np.zeros((0, 150, 150, 3), np.uint8), tta="flip").shape == (0, 128)


def test_verify_uses_the_accurate_embeddings_and_says_so(pipes, astronaut, grace):
    from faceforge.pipeline import verify

    shifted = np.roll(astronaut, 30, axis=1)
    f = verify(astronaut, shifted, pipeline=pipes[0])
    a = verify(astronaut, shifted, quality="accurate")
    assert f.quality == "fast" and a.quality == "accurate" and a.to_dict()["quality"] == "accurate"
    assert "quality" not in f.to_dict()  # fast answers as of old
    assert (f.threshold, f.far) == (0.6, 0.01) and (a.threshold, a.far) == (0.59, 0.01)  # each preset's calibration
    assert a.same and f.same and a.distance != f.distance
    assert not verify(astronaut, grace, quality="accurate").same
    with pytest.raises(ParameterError, match="pipeline given embeds with quality='fast'"):
        verify(astronaut, shifted, pipeline=pipes[0], quality="accurate")


# -- the embedding cache ------------------------------------------------------------------------
def test_dataset_embeddings_are_cached_apart(tmp_path, astronaut, grace):
    from PIL import Image

    from faceforge.data import EmbeddingCache, embed_dataset, load_dataset
    from faceforge.data.embed import face_config

    for who, img in (("eileen", astronaut), ("grace", grace)):
        (tmp_path / "ds" / who).mkdir(parents=True)
        for i, x in enumerate(variants(img, 2)):
            Image.fromarray(x).save(tmp_path / "ds" / who / f"{i}.jpg")
    ds = load_dataset(tmp_path / "ds")
    db = EmbeddingCache(tmp_path / "cache.sqlite")
    f1 = embed_dataset(ds, cache=db, progress=False, workers=1)
    a1 = embed_dataset(ds, cache=db, progress=False, workers=1, quality="accurate")
    assert f1.cache_hits == 0 and a1.cache_hits == 0  # accurate never reads the fast entries
    assert len(db) == 8
    f2 = embed_dataset(ds, cache=db, progress=False, workers=1)
    a2 = embed_dataset(ds, cache=db, progress=False, workers=1, quality="accurate")
    assert f2.cache_hits == 4 and a2.cache_hits == 4
    assert np.array_equal(f1.X, f2.X) and np.array_equal(a1.X, a2.X) and not np.allclose(f1.X, a1.X)
    assert "quality" not in face_config() and face_config(quality="accurate")["quality"] == "accurate"
    # a concatenation: each part embedded (and cached) with the preset, then joined
    pair = embed_dataset(ds, embedder="dlib-resnet+gendernet", cache=db, progress=False, workers=1, quality="accurate")
    fast_pair = embed_dataset(ds, embedder="dlib-resnet+gendernet", cache=db, progress=False, workers=1)
    assert pair.X.shape == fast_pair.X.shape and len(pair.X) == 4
    assert not np.allclose(pair.X, fast_pair.X)


# -- galleries ----------------------------------------------------------------------------------
def test_a_gallery_keeps_its_preset_and_refuses_the_other(tmp_path, astronaut, grace):
    from faceforge.gallery import Gallery

    path = tmp_path / "g.db"
    fast = Gallery(path, "crew")
    fast.enrol("eileen", variants(astronaut, 2))
    acc = Gallery(path, "crew-accurate", quality="accurate")
    acc.enrol("eileen", variants(astronaut, 2))
    assert (fast.quality, acc.quality) == ("fast", "accurate")
    assert (fast.threshold, acc.threshold) == (0.46, 0.45) and acc.expected_far == 0.01
    assert Gallery(path, "crew-accurate").quality == "accurate"  # reopened: the stored preset
    assert fast.embedding_key == "dlib-resnet" and acc.embedding_key == 'dlib-resnet{"quality":"accurate"}'
    query = np.roll(astronaut, 40, axis=1)
    assert fast.identify(query).predictions["crew"][0].label == "eileen"
    assert acc.identify(query, quality="accurate").predictions["crew-accurate"][0].label == "eileen"
    assert acc.verify(query, "eileen").same and not acc.verify(grace, "eileen").same
    # the stored embeddings are the preset's own: accurate rows are flip averages
    stored_acc, stored_fast = acc._stored()[2], fast._stored()[2]
    assert not np.allclose(stored_acc, stored_fast)
    for call in (lambda: fast.identify(query, quality="accurate"),
                 lambda: fast.verify(query, "eileen", quality="accurate"),
                 lambda: Gallery(path, "crew", quality="accurate"), lambda: acc.identify(query, quality="fast")):
        with pytest.raises(ParameterError, match="was enrolled with quality"):
            call()
    # an Analyzer with both galleries computes each preset's embedding once, under its own key
    from faceforge.attributes import Analyzer

    res = Analyzer(attributes=(), models={"fast": fast, "accurate": acc}).analyze(query)
    assert set(res.embeddings) == {"dlib-resnet", 'dlib-resnet{"quality":"accurate"}'}
    assert res.predictions["fast"][0].label == res.predictions["accurate"][0].label == "eileen"


def test_old_gallery_files_open_as_fast(tmp_path, astronaut):
    """A gallery file written before the quality column: the migration adds it, as "fast"."""
    import sqlite3

    from faceforge.gallery import MIGRATIONS, Gallery

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    for m in MIGRATIONS[:-1]:
        db.executescript(m)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) - 1}")
    db.execute("INSERT INTO galleries VALUES ('crew', 'dlib-resnet', '1', 0)")
    db.commit()
    db.close()
    g = Gallery(path, "crew")
    assert g.quality == "fast"
    g.enrol("eileen", [astronaut])
    assert g.identify(astronaut).predictions["crew"][0].label == "eileen"


# -- CLI and API --------------------------------------------------------------------------------
def test_cli_accurate_flag_reaches_the_pipeline(tmp_path, astronaut, grace):
    from PIL import Image
    from typer.testing import CliRunner

    from faceforge.cli.main import app

    a, b, c = tmp_path / "a.jpg", tmp_path / "b.jpg", tmp_path / "c.jpg"
    Image.fromarray(astronaut).save(a)
    Image.fromarray(np.roll(astronaut, 30, axis=1)).save(b)
    Image.fromarray(grace).save(c)
    run = CliRunner().invoke
    r = run(app, ["verify", str(a), str(b), "--json", "--accurate"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["quality"] == "accurate"
    r = run(app, ["verify", str(a), str(b), "--json"])
    assert "quality" not in json.loads(r.output.strip().splitlines()[-1])  # fast: the answer of old
    out = tmp_path / "e.npz"
    assert run(app, ["embed", str(a), "-o", str(out), "--accurate", "--workers", "1"]).exit_code == 0
    z = np.load(out)
    assert str(z["quality"]) == "accurate"
    from faceforge.pipeline import FacePipeline

    np.testing.assert_allclose(z["embeddings"], FacePipeline(quality="accurate").embed(
        np.asarray(Image.open(a))).embedding, atol=1e-5)
    g = tmp_path / "g.db"
    assert run(app, ["gallery", "enrol", "eileen", str(a), "-f", str(g), "--accurate"]).exit_code == 0
    r = run(app, ["gallery", "verify", "eileen", str(b), "-f", str(g), "--json", "--accurate"])
    assert r.exit_code == 0 and json.loads(r.output.strip().splitlines()[-1])["same"]
    assert run(app, ["gallery", "identify", str(b), "-f", str(g)]).exit_code == 0  # the gallery's own preset
    assert run(app, ["gallery", "enrol", "grace", str(c), "-f", str(g), "-n", "other"]).exit_code == 0
    r = run(app, ["gallery", "identify", str(b), "-f", str(g), "-n", "other", "--accurate"])
    assert r.exit_code != 0 and "was enrolled with quality 'fast'" in " ".join(r.output.split())


def test_api_quality_field_reaches_the_gallery_and_the_analyzer(tmp_path, astronaut):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from faceforge.service import create_app

    with TestClient(create_app(home=tmp_path, run_jobs=False)) as c:
        files = [("files", (f"a{i}.jpg", jpeg(x), "image/jpeg")) for i, x in enumerate(variants(astronaut, 2))]
        r = c.post("/api/galleries/crew/people/eileen/photos", files=files, data={"quality": "accurate"})
        assert r.status_code == 201 and r.json()["quality"] == "accurate"
        assert "quality" not in c.post("/api/galleries/fastcrew/people/eileen/photos", files=files).json()
        assert c.get("/api/galleries").json()["galleries"] == [{"name": "crew", "people": 1, "quality": "accurate"},
                                                               {"name": "fastcrew", "people": 1}]
        photo = {"file": ("q.jpg", jpeg(np.roll(astronaut, 40, axis=1)), "image/jpeg")}
        r = c.post("/api/galleries/crew/identify", files=photo).json()
        assert r["quality"] == "accurate" and r["faces"][0]["label"] == "eileen" and r["threshold"] == 0.45
        r = c.post("/api/galleries/crew/verify", files=photo, data={"person": "eileen", "quality": "accurate"})
        assert r.status_code == 200 and r.json()["same"] and r.json()["quality"] == "accurate"
        for route, data in (("identify", {"quality": "accurate"}),
                            ("verify", {"person": "eileen", "quality": "accurate"})):
            r = c.post(f"/api/galleries/fastcrew/{route}", files=photo, data=data)
            assert r.status_code == 422 and "was enrolled with quality 'fast'" in r.json()["detail"]
        r = c.post("/api/galleries/fastcrew/people/eileen/photos", files=files, data={"quality": "accurate"})
        assert r.status_code == 422
        r = c.post("/api/galleries/crew/identify", files=photo, data={"quality": "best"})
        assert r.status_code == 422
        r = c.post("/api/analyze", files=photo, data={"attributes": "", "gallery": "crew", "quality": "accurate"})
        assert r.status_code == 200 and r.json()["faces"][0]["identity"]["label"] == "eileen"
        engine = c.app.state.engine
        assert {an.quality for an in engine._analyzers.values()} == {"accurate"}
        assert c.post("/api/analyze", files=photo, data={"attributes": "", "quality": "slow"}).status_code == 422
