"""quality="accurate" for gender and age (issue 19.3): the mean over the chip, its rotations and mirror
images; fast unchanged; the CLI flag; UTKFace when present."""

import csv
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import SHARED
from faceforge.attributes import Analyzer, load_attribute
from faceforge.attributes.tta import (
    ACCURATE_JITTERS,
    AugmentedModel,
    augmented_chips,
    chip_transforms,
    jitter_matrix,
)
from faceforge.cli.main import app
from faceforge.errors import ParameterError

runner = CliRunner()


@pytest.fixture(scope="module")
def fast():
    return Analyzer(["gender", "age"])


@pytest.fixture(scope="module")
def accurate():
    return Analyzer(["gender", "age"], quality="accurate")


def _found(an, image):
    faces, det, _ = an.finder.find_scaled(image)
    return faces, det


@pytest.mark.parametrize("photo", ["astronaut", "grace"])
def test_accurate_is_the_mean_over_chip_mirror_and_rotations(request, fast, accurate, photo):
    image = request.getfixturevalue(photo)
    faces, det = _found(accurate, image)  # the accurate preset's own finder (test-time augmented detection)
    pipe = load_attribute("age").pipeline
    emb = pipe.embedder
    chips = pipe.chips(det, faces)  # what fast embeds
    mats, size = chip_transforms(det, faces, emb.alignment)
    rotated = [augmented_chips(det, mats, size, flip=False, jitters=[j])[:, 1] for j in ACCURATE_JITTERS]
    assert [j[3] for j in ACCURATE_JITTERS] == [-5.0, 5.0]
    six = [chips, *rotated]
    six += [np.ascontiguousarray(c[:, :, ::-1]) for c in six]
    want = np.mean([emb.embed(c).astype(np.float64) for c in six], axis=0)
    got = accurate.models["age"].embed(det, faces)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    res_a, res_f = accurate.analyze(image), fast.analyze(image)
    for name in ("gender", "age"):
        clf = load_attribute(name)
        a = res_a.predictions[name][0]
        assert a == clf.predict_embeddings(want.astype(np.float32))[0]
    assert res_a.predictions["gender"][0].label == res_f.predictions["gender"][0].label
    assert res_a.predictions["age"][0].value != res_f.predictions["age"][0].value  # the average differs
    assert abs(res_a.predictions["age"][0].value - res_f.predictions["age"][0].value) < 10


def test_fast_is_what_the_model_file_computes(fast, astronaut):
    """quality='fast' reads the one chip's embedding (no augmentation), as before the preset existed."""
    faces, det = _found(fast, astronaut)
    res = fast.analyze(astronaut)
    clf = load_attribute("age")
    assert set(res.embeddings) == {clf.embedding_key}
    assert res.predictions["age"][0] == clf.predict_embeddings(clf.embed(det, faces))[0]
    assert fast.models["age"] is clf and fast.models["gender"] is load_attribute("gender")


def test_accurate_shares_one_augmented_embedding(accurate, astronaut):
    res = accurate.analyze(astronaut)
    assert len(res.embeddings) == 1 and "|tta:" in next(iter(res.embeddings))
    assert isinstance(accurate.models["gender"], AugmentedModel)
    assert accurate.models["gender"].embedding_key == accurate.models["age"].embedding_key


def test_emotion_and_own_models_are_the_same_in_both(astronaut):
    from faceforge.pipeline import run_models

    acc, fast = Analyzer(["emotion"], quality="accurate"), Analyzer(["emotion"])
    assert acc.models["emotion"] is fast.models["emotion"]  # no augmentation of its own
    faces, det = _found(acc, astronaut)  # on the same faces, the same answer
    a = run_models(det, faces, acc.models, 3).predictions["emotion"][0]
    f = run_models(det, faces, fast.models, 3).predictions["emotion"][0]
    assert a == f
    # the accurate finder's box moves by a fraction of a pixel: the answer stays
    labels = [an.analyze(astronaut).predictions["emotion"][0].label for an in (acc, fast)]
    assert labels[0] == labels[1]


def test_variants_order_and_jitter(astronaut, fast):
    faces, det = _found(fast, astronaut)
    align = load_attribute("age").pipeline.embedder.alignment
    mats, size = chip_transforms(det, faces, align)
    v = augmented_chips(det, mats, size, flip=True, jitters=[(1.0, 0.03, 0.0, 0.0)])
    assert v.shape == (1, 4, size, size, 3)
    np.testing.assert_array_equal(v[0, 0], load_attribute("age").pipeline.chips(det, faces)[0])
    np.testing.assert_array_equal(v[0, 2], v[0, 0, :, ::-1])
    assert not np.array_equal(v[0, 1], v[0, 0])
    np.testing.assert_allclose(jitter_matrix(size, (1.0, 0.0, 0.0, 0.0)), np.eye(3), atol=1e-12)


@pytest.mark.parametrize("jitter", [(0.0, 0, 0, 0), (-1.0, 0, 0, 0)])
def test_bad_jitter_is_refused(jitter):
    with pytest.raises(ParameterError, match="scale"):
        AugmentedModel(load_attribute("age"), jitters=[jitter])


@pytest.mark.parametrize("quality", ["best", "", None, 1, "ACCURATE"])
def test_bad_quality_is_refused(quality, tmp_path):
    from faceforge.tasks import analyze_files

    with pytest.raises(ParameterError, match="quality"):
        Analyzer(["age"], quality=quality)
    with pytest.raises(ParameterError, match="quality"):
        analyze_files([tmp_path], attributes=["age"], quality=quality)


# -- CLI and batch ----------------------------------------------------------------------------------

def test_cli_accurate_flag(tmp_path, astronaut):
    img = tmp_path / "astro.png"
    Image.fromarray(astronaut).save(img)
    out = {}
    for flag in ([], ["--accurate"]):
        jl = tmp_path / f"a{len(flag)}.jsonl"
        r = runner.invoke(app, ["analyze", str(img), "-a", "gender,age", "--jsonl", str(jl), "--workers", "1", *flag])
        assert r.exit_code == 0, r.output
        (rec,) = [json.loads(x) for x in jl.read_text().splitlines()]
        out[bool(flag)] = rec["faces"][0]
    assert out[True]["gender"]["label"] == out[False]["gender"]["label"] == "female"
    assert out[True]["age"]["value"] != out[False]["age"]["value"]
    want = Analyzer(["gender", "age"], quality="accurate").analyze(astronaut).predictions["age"][0].value
    assert out[True]["age"]["value"] == pytest.approx(want, abs=1e-3)  # the JSONL rounds to 4 decimals
    r = runner.invoke(app, ["analyze", "--help"])
    assert "--accurate" in r.output


def test_api_accurate_gives_the_libraries_accurate_age(tmp_path, astronaut):
    """The service passes built-in attributes to the analyzer as models: the preset must still reach them."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from conftest import jpeg
    from faceforge.service import create_app

    photo = jpeg(astronaut)
    with TestClient(create_app(home=tmp_path, run_jobs=False)) as c:
        ages = {}
        for q in ("fast", "accurate"):
            r = c.post("/api/analyze", files={"file": ("a.jpg", photo, "image/jpeg")},
                       data={"attributes": "gender,age", "quality": q})
            assert r.status_code == 200, r.text
            ages[q] = r.json()["faces"][0]["age"]["value"]
    from faceforge.sources import load_image

    img = load_image(photo)
    want = {q: Analyzer(["gender", "age"], quality=q).analyze(img).predictions["age"][0].value for q in ages}
    assert ages["fast"] != ages["accurate"]
    assert ages == pytest.approx(want, abs=1e-3)


# -- on UTKFace, when the development data is there -------------------------------------------------

def test_accurate_lowers_the_age_error_on_held_out_utkface():
    root = SHARED / "utkface"
    if not (root / "labels.csv").is_file():
        pytest.skip(f"needs {root} (the ../shared/data development set)")
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from train_attributes import held_out

    rows = [r for r in csv.DictReader(open(root / "labels.csv")) if held_out(r["file"])][::20]
    fast, acc = Analyzer(["age"]), Analyzer(["age"], quality="accurate")
    err = {"fast": [], "accurate": []}
    for r in rows:
        for name, an in (("fast", fast), ("accurate", acc)):
            err[name].append(abs(an.analyze(root / "images" / r["file"]).predictions["age"][0].value - float(r["age"])))
    assert len(rows) >= 40
    assert np.mean(err["accurate"]) < np.mean(err["fast"]), {k: np.mean(v) for k, v in err.items()}
