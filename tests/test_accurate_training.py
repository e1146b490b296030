"""Training with the accurate preset (issue 19, point 4): ``train(quality="accurate")`` / ``train --accurate``
embeds every photo flip-averaged, the model records it, and classify / evaluate / live / retrain embed the
same way; a fast model's file is what it always was."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import jpeg, variants
from faceforge.errors import BundleError, ParameterError


@pytest.fixture(scope="module")
def data(tmp_path_factory, astronaut, grace):
    root = tmp_path_factory.mktemp("acc_train")
    for who, img in (("eileen", astronaut), ("grace", grace)):
        (root / "ds" / who).mkdir(parents=True)
        for i, x in enumerate(variants(img, 4)):
            Image.fromarray(x).save(root / "ds" / who / f"{i}.jpg")
    return root


@pytest.fixture(scope="module")
def models(data):
    from faceforge.train import load_classifier, train

    out = {}
    for q in ("fast", "accurate"):
        train(data / "ds", data / f"{q}.ffm", embedder="dlib-resnet", val=0.0, learning_curve=False, workers=1,
              progress=False, quality=q)
        out[q] = load_classifier(data / f"{q}.ffm")
    return out


def test_the_model_records_its_preset_and_a_fast_one_is_as_of_old(models):
    fast, acc = models["fast"], models["accurate"]
    assert "quality" not in fast.manifest and fast.quality == "fast" and fast.embedding_key == "dlib-resnet"
    assert acc.manifest["quality"] == "accurate" and acc.quality == "accurate"
    assert acc.embedding_key == 'dlib-resnet{"quality":"accurate"}' and acc.pipeline.quality == "accurate"
    # trained on different embeddings: the heads' weights differ
    fa, aa = fast.head.to_arrays()[1], acc.head.to_arrays()[1]
    assert fa.keys() == aa.keys() and any(not np.allclose(fa[k], aa[k]) for k in fa)


def test_classify_embeds_as_the_model_was_trained(models, astronaut):
    from faceforge.pipeline import FacePipeline

    photo = np.roll(astronaut, 25, axis=1)
    acc = models["accurate"]
    faces = acc.classify(photo, top_k=2)
    expect = FacePipeline("yunet", "dlib-resnet", quality="accurate").embed(photo).embedding
    np.testing.assert_allclose(faces.embeddings[acc.embedding_key], expect, atol=1e-5)
    want = acc.predict_embeddings(expect, top_k=2)[0]
    got = faces.predictions[acc.name][0]
    assert got.label == want.label == "eileen" and got.top_k[0][1] == pytest.approx(want.top_k[0][1], abs=1e-5)
    fast_emb = FacePipeline("yunet", "dlib-resnet").embed(photo).embedding
    assert float(np.linalg.norm(fast_emb - expect)) > 0.02  # the fast embedding would be another input


def test_evaluate_embeds_with_the_models_preset(models, data, monkeypatch):
    import faceforge.data as D
    from faceforge.train import evaluate

    seen = []
    real = D.embed_dataset
    monkeypatch.setattr(D, "embed_dataset", lambda *a, **k: seen.append(k.get("quality")) or real(*a, **k))
    for q in ("accurate", "fast"):
        rep = evaluate(models[q].path, data / "ds", progress=False, workers=1)
        assert rep["accuracy"] == 1.0 and rep["images"] == 8
    assert seen == ["accurate", "fast"]


def test_a_bad_preset_in_a_model_file_is_refused(models, tmp_path):
    from faceforge.heads.bundle import load_bundle, save_bundle
    from faceforge.train import load_classifier

    m, arrays = load_bundle(models["accurate"].path)
    save_bundle(tmp_path / "bad.ffm", {**m, "quality": "turbo"}, arrays)
    with pytest.raises(BundleError, match="'quality' must be one of"):
        load_classifier(tmp_path / "bad.ffm")
    from faceforge.train import train

    with pytest.raises(ParameterError, match="quality must be one of"):
        train(tmp_path, tmp_path / "x.ffm", quality="best")


def test_retrain_keeps_the_preset(models):
    from faceforge.collect.versions import KEPT
    from faceforge.collect.versions_store import settings_of

    assert "quality" in KEPT
    assert settings_of(models["accurate"].manifest)["quality"] == "accurate"
    assert settings_of(models["fast"].manifest)["quality"] == "fast"


def test_live_identity_threshold_is_the_presets(models):
    from faceforge.live.identity import identity_embedders

    thr = {k: v.threshold for k, v in identity_embedders({"f": models["fast"], "a": models["accurate"]}).items()}
    assert thr == {"dlib-resnet": 0.6, 'dlib-resnet{"quality":"accurate"}': 0.59}  # registry: 1% FAR per preset


def test_cli_train_accurate(data, tmp_path):
    from typer.testing import CliRunner

    from faceforge.cli.main import app

    r = CliRunner().invoke(app, ["train", str(data / "ds"), "-o", str(tmp_path / "m.ffm"), "-e", "dlib-resnet",
                                 "--val", "0", "--no-curve", "--workers", "1", "--accurate"])
    assert r.exit_code == 0, r.output
    from faceforge.heads.bundle import load_bundle

    assert load_bundle(tmp_path / "m.ffm")[0]["quality"] == "accurate"
    r = CliRunner().invoke(app, ["classify", str(tmp_path / "m.ffm"), str(data / "ds" / "grace" / "1.jpg"),
                                 "--jsonl", str(tmp_path / "out.jsonl"), "--workers", "1"])
    assert r.exit_code == 0, r.output
    rec = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])
    assert "grace" in json.dumps(rec)


def test_api_training_job_takes_the_preset(tmp_path, astronaut, grace):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from faceforge.service import create_app

    with TestClient(create_app(home=tmp_path, run_jobs=False)) as c:
        files, labels = [], []
        for who, img in (("eileen", astronaut), ("grace", grace)):
            for i, x in enumerate(variants(img, 2)):
                files.append(("files", (f"{who}{i}.jpg", jpeg(x), "image/jpeg")))
                labels.append(("labels", who))
        r = c.post("/api/training", files=files, data={"name": "m", "embedder": "dlib-resnet", "quality": "accurate",
                                                       "labels": [x[1] for x in labels]})
        assert r.status_code == 202, r.text
        job = c.get(f"/api/jobs/{r.json()['id']}").json()
        assert job["params"]["quality"] == "accurate"
        r = c.post("/api/training", files=files, data={"name": "m2", "quality": "best",
                                                       "labels": [x[1] for x in labels]})
        assert r.status_code == 422
