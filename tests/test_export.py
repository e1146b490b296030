"""faceforge export: the ONNX graph matches faceforge on real faces for every embedder and head; sidecar; refusals."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import variants
from faceforge.cli.main import app
from faceforge.errors import BundleError, FaceforgeError, OutputError, ParameterError

onnxruntime = pytest.importorskip("onnxruntime")

from faceforge.export import export_model  # noqa: E402
from faceforge.export.parity import chips_from_image, reference, run, synthetic_chips  # noqa: E402
from faceforge.train import load_classifier, train  # noqa: E402

TOL = 1e-4
runner = CliRunner()


@pytest.fixture(scope="module")
def people(astronaut, grace):
    """Three real people: the astronaut, Grace Hopper and skimage's cameraman."""
    from skimage import data

    camera = np.ascontiguousarray(np.repeat(data.camera()[:, :, None], 3, axis=2))
    return {"astronaut": astronaut, "grace": grace, "camera": camera}


@pytest.fixture(scope="module")
def photos(tmp_path_factory, people):
    """A folder per person, 4 photos each (shifted, mirrored, brightened, rotated), and a CSV of ages."""
    root = tmp_path_factory.mktemp("export_photos")
    rows = ["file,label"]
    for k, (name, img) in enumerate(people.items()):
        (root / "classes" / name).mkdir(parents=True)
        for i, v in enumerate(variants(img, 4)):
            p = root / "classes" / name / f"{i}.jpg"
            Image.fromarray(v).save(p, quality=92)
            rows.append(f"{p},{30 + 20 * k + i}")
    (root / "ages.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def models(photos, tmp_path_factory):
    """``get(embedder, head, classes)`` -> a trained model file, trained once per module.

    ``classes``: ``"three"`` people, ``"two"`` (astronaut and Grace: binary heads), or ``"me"``
    (the two, with ``known=["astronaut"]``: Grace is the negatives class a stranger is called).
    """
    out = tmp_path_factory.mktemp("export_models")
    two = photos / "two"
    if not two.exists():
        for name in ("astronaut", "grace"):
            (two / name).mkdir(parents=True)
            for f in (photos / "classes" / name).iterdir():
                (two / name / f.name).write_bytes(f.read_bytes())
    cache: dict = {}

    def get(embedder: str, head: str, classes: str = "three", quality: str = "fast"):
        key = (embedder, head, classes, quality)
        if key not in cache:
            path = out / f"{embedder}_{head}_{classes}_{quality}.ffm"
            kw = dict(embedder=embedder, val=0.0, learning_curve=False, workers=1, progress=False, quality=quality)
            if head == "ridge":
                train(photos / "ages.csv", path, head="ridge", task="regression", **kw)
            elif classes == "three":
                train(photos / "classes", path, head=head, **kw)
            else:
                train(two, path, head=head, known=["astronaut"] if classes == "me" else None, **kw)
            cache[key] = path
        return cache[key]

    return get


def _chips(clf, res, people):
    """Chips cut by faceforge's own aligner from every real photo (original and a variant), and 3 synthetic chips."""
    per = [chips_from_image(clf, img, res.sidecar["inputs"]) for p in people.values() for img in (p, variants(p, 2)[1])]
    syn = synthetic_chips(res.sidecar["inputs"], n=3)
    return {k: np.concatenate([c[k] for c in per] + [syn[k]]) for k in syn}


CASES = [
    # every embedder with the default head
    ("dlib-resnet", "logreg"), ("effnet-lite0", "logreg"), ("expression", "logreg"), ("agegender", "logreg"),
    ("gendernet", "logreg"), ("gendernet+expression", "logreg"),
    # every head on the default embedder (identity: with the unknown check)
    ("dlib-resnet", "svm"), ("dlib-resnet", "knn"), ("dlib-resnet", "mlp"), ("dlib-resnet", "ridge"),
    # a non-linear head on a concatenation whose parts cut different chips
    ("gendernet+expression", "mlp"),
    # binary heads (scikit-learn's one-column layouts), and "me / not me" (a named rejected label)
    ("gendernet", "mlp", "two"), ("dlib-resnet", "svm", "two"), ("dlib-resnet", "logreg", "me"),
    # a model trained with the accurate preset: the graph averages each chip with its mirror image
    ("dlib-resnet", "logreg", "three", "accurate"), ("gendernet+expression", "logreg", "three", "accurate"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(c))
def test_exported_graph_matches_faceforge_on_real_faces(models, people, tmp_path, case):
    embedder, head = case[:2]
    clf = load_classifier(models(*case))
    people = {k: v for k, v in people.items() if k in clf.classes} if clf.task == "classification" else people
    res = export_model(clf, tmp_path / "out")
    chips = _chips(clf, res, people)
    got = run(res.classifier, chips, threads=1)
    ref = reference(clf, chips, res.sidecar["inputs"])
    if head == "ridge":
        assert set(got) == {"value"} and got["value"].shape == (len(ref["value"]),)
        np.testing.assert_allclose(got["value"], ref["value"], atol=TOL, rtol=0)
        return
    P = got["probabilities"]
    assert P.dtype == np.float32 and P.shape == (len(ref["probabilities"]), len(clf.classes))
    np.testing.assert_allclose(P, ref["probabilities"], atol=TOL, rtol=0)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-5)
    real = 2 * len(people)
    assert list(np.argmax(P[:real], axis=1)) == [clf.classes.index(n) for n in people for _ in range(2)]
    if clf.openset is not None:
        np.testing.assert_allclose(got["unknown_score"], ref["unknown_score"], atol=TOL, rtol=0)
        assert got["accepted"].dtype == bool and np.array_equal(got["accepted"], ref["accepted"])
        known = [n in clf.known_classes for n in people for _ in range(2)]
        assert list(got["accepted"][:real]) == known and not got["accepted"][real:].all()  # noise: strangers
        # the label rule of FaceClassifier.predict_embeddings, from the graph's outputs alone
        preds = clf.predict_embeddings(ref["embedding"], top_k=1)
        labels = [clf.classes[int(np.argmax(p))] if a else res.sidecar["rejected_label"]
                  for p, a in zip(P, got["accepted"])]
        assert labels == [p.label for p in preds]
        assert res.sidecar["rejected_label"] == clf.rejected_label == ("grace" if case[2:] == ("me",) else "unknown")
    else:
        assert set(got) == {"probabilities"}
    if embedder.startswith("dlib"):
        assert clf.openset is not None  # identity embedder: the unknown check is exported and tested
    assert res.sidecar["model"]["quality"] == clf.quality == (case[3] if len(case) > 3 else "fast")


def test_sidecar_holds_what_a_reader_needs(models, tmp_path):
    path = models("dlib-resnet", "logreg")
    clf = load_classifier(path)
    res = export_model(path, tmp_path / "out")
    side = json.loads((tmp_path / "out" / "model.json").read_text())
    assert side == res.sidecar
    assert side["format"] == "faceforge-onnx" and side["faceforge_version"] and side["opset"] == 17 == res.opset
    assert side["task"] == "classification" and side["labels"] == clf.classes
    assert side["rejected_label"] == "unknown" and side["threshold"] == pytest.approx(clf.openset.threshold)
    assert side["known_labels"] == clf.classes and side["unknown_check"] is True
    (inp,) = side["inputs"]
    assert inp["name"] == "chip" and inp["shape"] == ["N", 150, 150, 3] and inp["dtype"] == "uint8"
    assert inp["layout"] == "NHWC" and inp["colour"] == "RGB" and side["chip_size"] == 150
    al = side["alignment"]
    assert al["method"] == "similarity" and al["template"] == "dlib150" and al["size"] == 150
    assert al["landmarks"] == ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"]
    assert np.asarray(al["reference_points"]).shape == (5, 2)
    assert al["warp"]["interpolation"] == "linear" and al["warp"]["border"] == "replicate"
    assert al["fallback"]["method"] == "box" and al["fallback"]["margin"] == 1.25
    assert set(side["outputs"]) == {"probabilities", "unknown_score", "accepted"} == set(res.outputs)
    assert side["outputs"]["probabilities"]["shape"] == ["N", 3]
    assert {"model": "dlib-resnet", "licence": "CC0-1.0"}.items() <= side["licences"][0].items()
    assert side["licences"][-1]["model"] == "logreg"
    assert side["trained_with"]["detector"] == clf.manifest["detector"]
    assert side["head"]["kind"] == "logreg" and "metrics" in side and "headline" in side
    assert "detector" not in side and str(path.parent) not in json.dumps(side)  # no paths of the user's data
    for name, info in side["files"].items():
        blob = (tmp_path / "out" / name).read_bytes()
        assert info == {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
    assert set(side["files"]) == {"classifier.onnx"} and set(res.files) == {"classifier.onnx", "model.json"}
    # the graph's own input / outputs are the sidecar's
    sess = onnxruntime.InferenceSession(str(res.classifier), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["chip"] and sess.get_inputs()[0].type == "tensor(uint8)"
    assert [o.name for o in sess.get_outputs()] == ["probabilities", "unknown_score", "accepted"]


def test_sidecar_of_other_chips(models, tmp_path):
    """A pair whose parts cut different chips has one input per part; dlib5 chips say how to approximate them."""
    res = export_model(models("gendernet+expression", "logreg"), tmp_path / "pair")
    ins = res.sidecar["inputs"]
    assert [i["name"] for i in ins] == ["chip_0", "chip_1"] == res.inputs
    assert [i["embedder"] for i in ins] == ["gendernet", "expression"] and res.opset == 18
    g, e = ins[0]["alignment"], ins[1]["alignment"]
    assert g["method"] == "dlib5" and g["padding"] == 0.2 and np.asarray(g["reference_points"]).shape == (5, 2)
    assert e == {**e, "method": "box", "size": 64, "margin": 1.0, "shift": 0.0}
    assert {x["model"] for x in res.sidecar["licences"]} >= {"gendernet", "agegender.gender", "expression"}
    assert res.sidecar["rejected_label"] is None and res.sidecar["threshold"] is None
    reg = export_model(models("dlib-resnet", "ridge"), tmp_path / "reg").sidecar
    assert reg["task"] == "regression" and set(reg["outputs"]) == {"value"} and reg["labels"] == []


def test_a_large_knn_reference_set_is_refused(models, tmp_path, monkeypatch):
    from faceforge.export import heads_onnx

    clf = load_classifier(models("dlib-resnet", "knn"))
    size = heads_onnx.knn_bytes(clf.head)
    assert size == len(clf.head.arrays_["gallery"]) * 128 * 4
    monkeypatch.setattr(heads_onnx, "MAX_KNN_BYTES", size - 1)
    with pytest.raises(ParameterError, match=r"kNN head holds \d+ reference embeddings.*--head logreg"):
        export_model(clf, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything is written


def _not_a_model(tmp_path):
    p = tmp_path / "notes.ffm"
    p.write_text("not a model")
    return p


@pytest.mark.parametrize("make,error,match", [
    (lambda t: t / "missing.ffm", BundleError, "no such model file"),
    (_not_a_model, BundleError, "notes.ffm"),
    (lambda t: 42, ParameterError, "path to a .ffm file or a loaded FaceClassifier"),
])
def test_bad_models_are_refused(tmp_path, make, error, match):
    with pytest.raises(error, match=match):
        export_model(make(tmp_path), tmp_path / "out")


@pytest.mark.parametrize("opset", [12, 22, "17", True, 17.0])
def test_bad_opsets_are_refused(models, tmp_path, opset):
    with pytest.raises(ParameterError, match="opset must be an integer from 17 to 21"):
        export_model(models("dlib-resnet", "logreg"), tmp_path / "out", opset=opset)


def test_outputs_that_clash_are_refused(models, tmp_path):
    path = models("dlib-resnet", "logreg")
    with pytest.raises(OutputError):
        export_model(path, path)  # the model file itself
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(OutputError, match="existing file, not a folder"):
        export_model(path, f)
    assert f.read_text() == "x"


def test_an_unknown_embedder_is_refused(models, tmp_path):
    from faceforge.train.classifier import FaceClassifier

    clf = load_classifier(models("dlib-resnet", "logreg"))
    fake = FaceClassifier({**clf.manifest, "embedder": "facenet"}, clf.head, clf.openset, "")
    with pytest.raises(FaceforgeError, match="facenet"):
        export_model(fake, tmp_path / "out")


def test_opset_18_is_written_when_asked(models, tmp_path):
    res = export_model(models("expression", "logreg"), tmp_path / "o18", opset=18)
    assert res.opset == 18 == res.sidecar["opset"]


def test_with_detector_needs_the_detector_exporter(models, tmp_path):
    try:
        import faceforge.export.detector  # noqa: F401
    except ImportError:
        with pytest.raises(ParameterError, match="--with-detector needs faceforge.export.detector"):
            export_model(models("dlib-resnet", "logreg"), tmp_path / "out", with_detector=True)
    else:
        res = export_model(models("dlib-resnet", "logreg"), tmp_path / "out", with_detector=True)
        assert (tmp_path / "out" / "detector.onnx").is_file() and "detector" in res.sidecar
        assert set(res.sidecar["files"]) == {"classifier.onnx", "detector.onnx"}


def test_cli_export_prints_files_sizes_and_parity(models, tmp_path, people):
    path = models("dlib-resnet", "logreg")
    photo = tmp_path / "grace.jpg"
    Image.fromarray(people["grace"]).save(photo)
    r = runner.invoke(app, ["export", str(path), "-o", str(tmp_path / "cli"), "--format", "onnx",
                            "--check-image", str(photo)])
    assert r.exit_code == 0, r.output
    assert "classifier.onnx" in r.output and "model.json" in r.output and "MB" in r.output
    assert "parity" in r.output and "max |diff|" in r.output and "labels agree" in r.output
    assert (tmp_path / "cli" / "classifier.onnx").is_file()


@pytest.mark.parametrize("args,match", [
    (["MISSING.ffm", "-o", "OUT"], "missing.ffm: no such model file"),
    (["MODEL", "-o", "OUT", "--format", "tflite"], "tflite"),
])
def test_cli_export_bad_input(models, tmp_path, args, match):
    args = [a.replace("MISSING", str(tmp_path / "missing")).replace("MODEL", str(models("dlib-resnet", "logreg")))
            .replace("OUT", str(tmp_path / "o")) for a in args]
    r = runner.invoke(app, ["export", *args])
    assert r.exit_code != 0 and match in r.output
