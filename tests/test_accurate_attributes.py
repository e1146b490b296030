"""quality="accurate" for gender and age (issue 19.3): the mirror average, the age calibration, the CLI flag."""

import csv
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import SHARED
from faceforge.attributes import Analyzer, load_attribute
from faceforge.attributes.tta import AugmentedModel, augmented_chips, chip_transforms, jitter_matrix
from faceforge.cli.main import app
from faceforge.errors import BundleError, ParameterError
from faceforge.heads import load_bundle, save_bundle
from faceforge.heads.regression import RidgeHead, apply_calibration, fit_calibration
from faceforge.heads.validate import check_classifier

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
def test_accurate_is_the_mirror_average(request, fast, accurate, photo):
    image = request.getfixturevalue(photo)
    faces, det = _found(fast, image)
    emb = load_attribute("age").pipeline.embedder
    chips = load_attribute("age").pipeline.chips(det, faces)
    want = (emb.embed(chips).astype(np.float64) + emb.embed(np.ascontiguousarray(chips[:, :, ::-1]))) / 2
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
    a = Analyzer(["emotion"], quality="accurate").analyze(astronaut).predictions["emotion"][0]
    f = Analyzer(["emotion"]).analyze(astronaut).predictions["emotion"][0]
    assert a == f


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


# -- the calibration ------------------------------------------------------------------------------

def _embedded_faces(astronaut, grace):
    """Real agegender embeddings: two people, 12 variants each, with made-up ages that a ridge
    shrinks towards the mean."""
    from conftest import variants

    clf = load_attribute("age")
    X, y = [], []
    for k, img in enumerate((astronaut, grace)):
        for i, v in enumerate(variants(img, 12)):
            X.append(clf.pipeline.embed(v, main_only=True).embedding[0])
            y.append(10.0 + 60 * k + 3 * i)
    return np.array(X), np.array(y)


@pytest.fixture(scope="module")
def calibrated(astronaut, grace):
    X, y = _embedded_faces(astronaut, grace)
    return RidgeHead(calibrate=True, normalize=False, alpha=100.0).fit(X, y), X, y


def test_calibration_is_monotone_and_stored_exactly(calibrated, tmp_path):
    head, X, y = calibrated
    kx, ky = head.arrays_["calib_x"], head.arrays_["calib_y"]
    assert len(kx) >= 2 and (np.diff(kx) > 0).all() and (np.diff(ky) >= 0).all()
    raw = RidgeHead(normalize=False, alpha=100.0).fit(X, y)
    np.testing.assert_allclose(raw.arrays_["coef"], head.arrays_["coef"])  # the linear part is unchanged
    grid = np.linspace(-50, 150, 401)
    assert (np.diff(apply_calibration(grid, kx, ky)) >= 0).all()
    # the map undoes the ridge's shrinkage: the spread of the predictions grows towards the labels'
    assert np.ptp(head.predict(X)) > np.ptp(raw.predict(X))
    params, arrays = head.to_arrays()
    path = save_bundle(tmp_path / "m.ffm", _manifest(params), {f"head.{k}": v for k, v in arrays.items()})
    manifest, back = load_bundle(path)
    check_classifier(manifest, back, str(path))
    for k in ("calib_x", "calib_y"):
        np.testing.assert_array_equal(back[f"head.{k}"], head.arrays_[k])
    from faceforge.heads.base import head_from_arrays

    again = head_from_arrays(manifest["head"], {k[5:]: v for k, v in back.items()})
    np.testing.assert_array_equal(again.predict(X), head.predict(X))


def _manifest(head_params):
    m, _ = load_bundle(load_attribute("age").path)
    return {**m, "head": head_params}


@pytest.mark.parametrize("broken, match", [
    ({"calib_x": np.array([1.0, 1.0, 2.0]), "calib_y": np.array([1.0, 2.0, 3.0])}, "strictly increasing"),
    ({"calib_x": np.array([1.0, 2.0, 3.0]), "calib_y": np.array([3.0, 2.0, 4.0])}, "non-decreasing"),
    ({"calib_x": np.array([1.0]), "calib_y": np.array([1.0])}, "at least 2 knots"),
    ({"calib_x": np.array([1.0, 2.0])}, "both arrays"),
    ({"calib_x": np.array([1.0, 2.0]), "calib_y": np.array([1.0, 2.0, 3.0])}, "shape"),
    ({"calib_x": np.array([1.0, np.nan]), "calib_y": np.array([1.0, 2.0])}, "NaN"),
])
def test_broken_calibration_arrays_are_refused(calibrated, broken, match):
    head, _, _ = calibrated
    params, arrays = head.to_arrays()
    arrays = {k: v for k, v in arrays.items() if not k.startswith("calib_")} | broken
    with pytest.raises(BundleError, match=match):
        check_classifier(_manifest(params), {f"head.{k}": v for k, v in arrays.items()}, "m.ffm")


@pytest.mark.parametrize("value", [1, "yes", None])
def test_bad_calibrate_parameter_is_refused(value):
    with pytest.raises(ParameterError, match="calibrate"):
        RidgeHead(calibrate=value).fit(np.eye(4), np.arange(4.0))


def test_calibration_onnx_nodes_match_numpy(calibrated):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from faceforge.export.graph import Graph
    from faceforge.heads.onnx_calibration import calibration_nodes

    head, _, _ = calibrated
    v = np.linspace(-40, 160, 101).astype(np.float32)
    for opset in (17, 21):
        g = Graph(opset)
        x = g.add_input("v", onnx.TensorProto.FLOAT, ["N"])
        g.add_output(calibration_nodes(g, head, x), "out", onnx.TensorProto.FLOAT, ["N"])
        out = ort.InferenceSession(g.model("c", "").SerializeToString()).run(None, {"v": v})[0]
        np.testing.assert_allclose(out, apply_calibration(v, head.arrays_["calib_x"], head.arrays_["calib_y"]),
                                   rtol=1e-5, atol=1e-4)
    g = Graph(17)
    assert calibration_nodes(g, RidgeHead().fit(np.eye(4), np.arange(4.0)), "v") == "v" and not g.nodes


def test_fit_calibration_removes_a_linear_shrinkage():
    rng = np.random.default_rng(0)
    y = rng.uniform(1, 90, 2000)
    pred = 40 + 0.7 * (y - 40) + rng.normal(0, 2, len(y))  # old underestimated, young overestimated
    kx, ky = fit_calibration(pred, y)
    fixed = apply_calibration(pred, kx, ky)
    assert np.mean(np.abs(fixed - y)) < 0.75 * np.mean(np.abs(pred - y))
    assert abs(np.mean((fixed - y)[y > 60])) < 2 < abs(np.mean((pred - y)[y > 60]))


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


# -- on UTKFace, when the development data is there -------------------------------------------------

def test_accurate_no_worse_on_utkface_sample():
    root = SHARED / "utkface"
    if not (root / "labels.csv").is_file():
        pytest.skip(f"needs {root} (the ../shared/data development set)")
    rows = list(csv.DictReader(open(root / "labels.csv")))
    rows = [r for r in rows if float(r["age"]) >= 60][::6][:25]
    fast, acc = Analyzer(["age"]), Analyzer(["age"], quality="accurate")
    err_f, err_a = [], []
    for r in rows:
        y = float(r["age"])
        err_f.append(abs(fast.analyze(root / "images" / r["file"]).predictions["age"][0].value - y))
        err_a.append(abs(acc.analyze(root / "images" / r["file"]).predictions["age"][0].value - y))
    assert np.mean(err_a) <= np.mean(err_f) + 0.5, (np.mean(err_a), np.mean(err_f))
