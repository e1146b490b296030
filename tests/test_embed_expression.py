"""The expression embedder: faceforge's emotion network cut before its classifier, on real faces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import shared_path
from faceforge.attributes.emotion import MARGIN, EmotionModel
from faceforge.attributes.emotion_crop import FRAMING
from faceforge.embedders import get_embedder
from faceforge.embedders.expression import CLASSES, FEATURES, LAYOUT, ExpressionEmbedder, onnx_path
from faceforge.errors import ImageError
from faceforge.pipeline import FacePipeline
from faceforge.registry import get_spec

DIM = FEATURES + len(CLASSES)


@pytest.fixture(scope="module")
def emb() -> ExpressionEmbedder:
    e = get_embedder("expression")
    assert isinstance(e, ExpressionEmbedder)
    return e


@pytest.fixture(scope="module")
def pipe(emb) -> FacePipeline:
    return FacePipeline("photo", emb)


def _fer(split: str, cls: str, n: int) -> list[Path]:
    """The first ``n`` FER2013 photos of a class (sorted by name), or skip without ../shared/data."""
    return sorted(shared_path("emotion", "fer2013", split, cls).iterdir())[:n]


def test_registry_entry_and_attributes(emb):
    spec, net = get_spec("expression"), get_spec("faceforge-emotion")
    assert spec.task == "embed" and spec.package == "faceforge"
    assert (spec.module, spec.file, spec.sha256, spec.license) == (net.module, net.file, net.sha256, net.license)
    assert "research use" in spec.license
    assert (emb.name, emb.dim, emb.input_size) == ("expression", DIM, (64, 64)) and FEATURES == 256
    # the chips the emotion model cuts: a square crop of MARGIN x the detector's box, 64 px, framed
    # per detector as the emotion model frames it
    framing = {k: list(v) for k, v in FRAMING.items()}
    assert emb.alignment == {"template": "margin", "margin": MARGIN, "size": 64, "framing": framing}
    assert CLASSES == list(net.input["classes"]) and (spec.input["mean"], spec.input["std"]) == ([127.5], [127.5])
    assert emb.normalize_for_heads is False and emb.version == "1"
    assert LAYOUT["probs"] == slice(256, DIM)


def test_shape_dim_dtype_batching_on_the_astronaut(emb, pipe, astronaut):
    faces = pipe.embed(astronaut)
    assert faces.embedding.shape == (1, DIM) and faces.embedding.dtype == np.float32
    x = faces.embedding[0]
    assert np.isfinite(x).all() and (x[LAYOUT["features"]] >= 0).all()  # averaged ReLU activations
    assert x[LAYOUT["features"]].max() > 0.1
    assert x[LAYOUT["probs"]].sum() == pytest.approx(1.0, abs=1e-4)
    assert CLASSES[int(np.argmax(x[LAYOUT["probs"]]))] == "happy"  # she smiles
    chips = pipe.chips(astronaut, pipe.detect(astronaut))
    rng = np.random.default_rng(0)
    batch = np.concatenate([chips, rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)])
    out = emb(batch)
    assert out.shape == (3, DIM)
    np.testing.assert_allclose(np.concatenate([emb(c) for c in batch]), out, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out[0], x, rtol=1e-4, atol=1e-5)
    assert emb(np.zeros((0, 64, 64, 3), np.uint8)).shape == (0, DIM)
    with pytest.raises(ImageError, match=r"\(n, 64, 64, 3\) uint8"):
        emb(np.zeros((1, 150, 150, 3), np.uint8))


def test_mirror_invariance(emb, pipe, astronaut):
    chips = pipe.chips(astronaut, pipe.detect(astronaut))
    a, b = emb(chips), emb(np.ascontiguousarray(chips[:, :, ::-1]))
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # the same crop mirrored: the same features
    # the mirrored photo (detected again, so a slightly different box): nearly the same features
    m = pipe.embed(np.ascontiguousarray(astronaut[:, ::-1])).embedding[0]
    f = LAYOUT["features"]
    cos = float(a[0, f] @ m[f] / np.linalg.norm(a[0, f]) / np.linalg.norm(m[f]))
    assert cos > 0.98


def test_probabilities_are_the_shipped_networks_and_the_cut_feeds_its_classifier(emb, pipe, astronaut, grace):
    import onnx
    from onnx import numpy_helper

    model = EmotionModel(backend="faceforge")
    # the photo detector's faces and the live detector's (whose box is framed differently)
    for p in (pipe, FacePipeline("live", emb)):
        for img in (astronaut, grace):
            faces = p.detect(img)
            assert len(faces)
            chips = p.chips(img, faces)
            crops = model.crops(img, faces)
            np.testing.assert_array_equal(emb.net_input(chips), crops)  # the embedder sees the emotion model's input
            np.testing.assert_allclose(emb(chips)[:, LAYOUT["probs"]], model.predict_proba(crops), atol=1e-6)
    # a chip equal to its own mirror image: the averaged features are the classifier's input itself,
    # so the shipped classifier (Gemm + Softmax) on them gives the graph's probabilities
    g = onnx.load(str(onnx_path())).graph
    gemm = next(n for n in g.node if n.op_type == "Gemm")
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    cast = {n.output[0]: n.input[0] for n in g.node if n.op_type == "Cast"}
    w = inits[cast.get(gemm.input[1], gemm.input[1])].astype(np.float64)
    b = inits[cast.get(gemm.input[2], gemm.input[2])].astype(np.float64)
    half = pipe.chips(astronaut, pipe.detect(astronaut))[:, :, :32]
    sym = np.ascontiguousarray(np.concatenate([half, half[:, :, ::-1]], axis=2))
    feat, probs = emb.features_and_probs(sym)
    z = feat.astype(np.float64) @ w.T + b
    z = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(z / z.sum(axis=1, keepdims=True), probs, atol=1e-5)


def test_the_astronaut_is_closer_to_smiling_faces_than_to_neutral_ones(emb, pipe, astronaut):
    happy, neutral = _fer("public_test", "happy", 8), _fer("public_test", "neutral", 8)
    me = pipe.embed(astronaut).embedding[:1]

    def mean_distance(files: list[Path]) -> float:
        from faceforge.pipeline import FacePipeline

        crops = FacePipeline("photo", emb, crops="auto")
        x = np.concatenate([crops.embed(str(f), main_only=True).embedding for f in files])
        assert len(x) == len(files)
        return float(emb.distance(np.repeat(me, len(x), 0), x).mean())

    assert mean_distance(happy) < 0.8 * mean_distance(neutral)


def test_embed_command_with_the_expression_embedder(tmp_path, astronaut):
    from typer.testing import CliRunner

    from faceforge.cli.main import app

    Image.fromarray(astronaut).save(tmp_path / "astronaut.png")
    r = CliRunner().invoke(app, ["embed", str(tmp_path / "astronaut.png"), "-e", "expression",
                                 "-o", str(tmp_path / "e.jsonl")])
    assert r.exit_code == 0, r.output
    assert len(json.loads((tmp_path / "e.jsonl").read_text())["embedding"]) == DIM
    r = CliRunner().invoke(app, ["train", "--help"])
    assert "expression" in r.output


def test_train_a_smile_model_with_the_expression_embedder(tmp_path, astronaut):
    from typer.testing import CliRunner

    from faceforge.cli.main import app
    from faceforge.train import evaluate, load_classifier, train

    data, test = tmp_path / "train", tmp_path / "test"
    for cls in ("happy", "neutral"):
        for split, folder, n in (("train", data, 15), ("public_test", test, 20)):
            (folder / cls).mkdir(parents=True)
            for f in _fer(split, cls, n):
                (folder / cls / f.name).symlink_to(f)
    res = train(data, tmp_path / "smile.ffm", embedder="expression", val=0.0, progress=False)
    assert res.manifest["embedder"] == "expression" and str(res.manifest["embedder_version"]) == "1"
    clf = load_classifier(res.model_path)
    assert clf.classify(astronaut).predictions[clf.name][0].label == "happy"
    rep = evaluate(res.model_path, test, progress=False)
    assert rep["images"] == 40 and rep["balanced_accuracy"] >= 0.8
    # the command line: train --embedder expression, embed -e expression
    r = CliRunner().invoke(app, ["train", str(data), "-o", str(tmp_path / "cli.ffm"), "--embedder", "expression",
                                 "--val", "0", "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert load_classifier(tmp_path / "cli.ffm").manifest["embedder"] == "expression"
