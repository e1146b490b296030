"""train -> model file -> classify / evaluate, end to end on real faces."""

import hashlib
import json
import zipfile

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import shared_path
from faceforge.cli.main import app
from faceforge.errors import BundleError
from faceforge.train import UNKNOWN, load_classifier, train

runner = CliRunner()


def _digest(folder):
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def att_subset(tmp_path_factory):
    """6 AT&T people: 7 training and 3 test photos each (real 92x112 grey face crops)."""
    src = shared_path("identity", "att_faces")
    root = tmp_path_factory.mktemp("att")
    people = sorted(p for p in src.iterdir() if p.is_dir())[:6]
    for person in people:
        files = sorted(person.iterdir())
        for part, chunk in (("train", files[:7]), ("test", files[7:])):
            (root / part / person.name).mkdir(parents=True)
            for f in chunk:
                (root / part / person.name / f.name).write_bytes(f.read_bytes())
    return root


def test_train_classify_evaluate_on_real_identities(att_subset, tmp_path):
    before = _digest(att_subset)
    model = tmp_path / "att.ffm"
    res = train(att_subset / "train", model, val=0.25, seed=0, progress=False)
    assert model.is_file() and res.report_path.is_file() and all(p.is_file() for p in res.plots)
    assert {p.name for p in res.plots} == {"att.confusion.png", "att.learning.png"}
    curve = res.report["learning_curve"]
    assert len(curve["train_images"]) == 4 and curve["train_images"][0] < curve["train_images"][-1]
    assert curve["validation"][-1][0] >= curve["validation"][0][0]  # more photos do not hurt here
    assert res.report["accuracy"] >= 0.9
    manifest = json.loads(zipfile.ZipFile(model).read("manifest.json"))
    assert manifest["classes"] == sorted(p.name for p in (att_subset / "train").iterdir())
    assert manifest["embedder"] == "dlib-resnet" and manifest["embedder_sha256"]
    assert "unknown" in res.report

    # warm retrain: every embedding comes from the cache
    res2 = train(att_subset / "train", model, val=0.25, seed=0, progress=False)
    assert res2.timings["cache_misses"] == 0 and res2.timings["cache_hits"] >= 42
    assert res2.report["accuracy"] == res.report["accuracy"]  # seeded: reproducible

    rep = __import__("faceforge").evaluate(model, att_subset / "test", progress=False)
    assert rep["accuracy"] >= 0.9 and rep["images"] == 18
    assert rep["open_set"]["strangers"] == 0 and rep["open_set"]["known_rejected"] <= 0.2

    clf = load_classifier(model)
    person = sorted((att_subset / "test").iterdir())[0]
    faces = clf.classify(sorted(person.iterdir())[0], top_k=3)
    assert len(faces) == 1
    (pred,) = faces.predictions[clf.name]
    assert pred.label == person.name and len(pred.top_k) == 3
    assert pred.top_k[0][1] >= pred.top_k[1][1] >= pred.top_k[2][1]
    assert _digest(att_subset) == before  # the user's photos are never changed


def test_strangers_are_unknown(att_subset, tmp_path):
    model = tmp_path / "att.ffm"
    train(att_subset / "train", model, embedder="dlib-resnet", val=0.0, target_far=0.01, progress=False)
    clf = load_classifier(model)
    src = shared_path("identity", "att_faces")
    strangers = sorted(p for p in src.iterdir() if p.is_dir())[20:26]
    preds = [clf.classify(sorted(p.iterdir())[0]).predictions[clf.name][0] for p in strangers]
    assert sum(p.label == UNKNOWN for p in preds) >= 4  # at a 1% false-accept target
    knowns = [clf.classify(sorted(p.iterdir())[0]).predictions[clf.name][0]
              for p in sorted((att_subset / "test").iterdir())]
    assert sum(p.label != UNKNOWN for p in knowns) >= 5


def test_evaluate_counts_strangers_called_unknown(att_subset, tmp_path):
    model = tmp_path / "att.ffm"
    train(att_subset / "train", model, embedder="dlib-resnet", val=0.0, progress=False, learning_curve=False)
    test = tmp_path / "test"
    src = shared_path("identity", "att_faces")
    for d in sorted((att_subset / "test").iterdir()):
        (test / d.name).mkdir(parents=True)
        for f in d.iterdir():
            (test / d.name / f.name).symlink_to(f)
    for d in sorted(p for p in src.iterdir() if p.is_dir())[30:33]:  # 3 people the model never saw
        (test / d.name).mkdir()
        for f in sorted(d.iterdir())[:3]:
            (test / d.name / f.name).symlink_to(f)
    rep = __import__("faceforge").evaluate(model, test, progress=False)
    o = rep["open_set"]
    held_out = sorted(p for p in src.iterdir() if p.is_dir())[30:33]
    assert sorted(rep["unknown_classes"]) == sorted(p.name for p in held_out)
    assert o["strangers"] == 9 and o["known_faces"] == 18 and o["rejected_label"] == UNKNOWN
    assert o["strangers_rejected"] >= 0.6 and o["known_rejected"] <= 0.2 and o["accuracy"] >= 0.8


def test_me_not_me(att_subset, tmp_path):
    """Photos of "me" plus any other faces: strangers absent from not_me are still not me."""
    src = shared_path("identity", "att_faces")
    people = sorted(p for p in src.iterdir() if p.is_dir())
    me_dir = sorted((att_subset / "train").iterdir())[0]
    data = tmp_path / "data"
    (data / "me").mkdir(parents=True)
    (data / "not_me").mkdir()
    for f in me_dir.iterdir():
        (data / "me" / f.name).symlink_to(f)
    for other in sorted((att_subset / "train").iterdir())[1:]:
        for f in sorted(other.iterdir())[:4]:
            (data / "not_me" / f"{other.name}_{f.name}").symlink_to(f)
    model = tmp_path / "me.ffm"
    res = train(data, model, embedder="dlib-resnet", val=0.0, progress=False, target_far=0.01, negatives="not_me")
    u = res.report["unknown"]
    assert u["known"] == ["me"] and u["negatives"] == ["not_me"] and "not_me" in u["known_because"]
    assert u["rule"] == "negatives" and "not_me" in u["why"]
    clf = load_classifier(model)
    assert clf.rejected_label == "not_me"
    me_test = sorted((att_subset / "test" / me_dir.name).iterdir())
    assert sum(clf.classify(f).predictions[clf.name][0].label == "me" for f in me_test) >= 2
    strangers = [sorted(p.iterdir())[0] for p in people[20:30]]  # in neither folder
    labels = [clf.classify(f).predictions[clf.name][0].label for f in strangers]
    assert labels.count("not_me") >= 9, labels
    # the same with the classes named explicitly, through the CLI
    r = runner.invoke(app, ["train", str(data), "-o", str(tmp_path / "me2.ffm"), "--known", "me", "--val", "0",
                            "--no-curve", "--workers", "1", "-e", "dlib-resnet"])
    assert r.exit_code == 0, r.output
    assert "known: me; negatives: not_me" in r.output and "rule: negatives (known=['me'] given" in r.output
    # without --known / --negatives, not_me is an ordinary class: a hint, no re-interpretation
    r = runner.invoke(app, ["train", str(data), "-o", str(tmp_path / "me4.ffm"), "--val", "0", "--no-curve",
                            "--workers", "1", "-e", "dlib-resnet"])
    assert r.exit_code == 0, r.output
    assert "class 'not_me' looks like 'anyone else'; pass --negatives not_me if it is" in r.output
    assert "negatives: not_me" not in r.output and load_classifier(tmp_path / "me4.ffm").rejected_label != "not_me"
    r = runner.invoke(app, ["train", str(data), "-o", str(tmp_path / "me3.ffm"), "--known", "bob"])
    assert r.exit_code == 2 and "bob" in r.output


def test_attribute_classes_get_no_unknown(tmp_path):
    """Gender is not identity: every face resembles the other class, so no face is called unknown."""
    import csv

    root = shared_path("utkface")
    rows = list(csv.DictReader(open(root / "labels.csv")))
    pick = [r for r in rows if r["gender"] == "male"][:20] + [r for r in rows if r["gender"] == "female"][:20]
    (tmp_path / "g.csv").write_text("file,gender\n" + "".join(f"{r['file']},{r['gender']}\n" for r in pick))
    res = train(tmp_path / "g.csv", tmp_path / "g.ffm", image_root=root / "images", progress=False, val=0.25)
    assert "disabled" in res.report["unknown"] and "openset" not in res.manifest
    clf = load_classifier(tmp_path / "g.ffm")
    assert clf.openset is None
    labels = [clf.classify(root / "images" / r["file"]).predictions[clf.name][0].label for r in pick[:5] + pick[-5:]]
    assert UNKNOWN not in labels and set(labels) <= {"male", "female"}


def test_cli_train_classify_and_bad_inputs(att_subset, tmp_path, astronaut):
    model = tmp_path / "m.ffm"
    r = runner.invoke(app, ["train", str(att_subset / "train"), "-o", str(model), "--head", "knn", "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "model written" in r.output and "accuracy" in r.output
    img = tmp_path / "astro.png"
    Image.fromarray(astronaut).save(img)
    r = runner.invoke(app, ["classify", str(model), str(img), str(att_subset / "test"), "--top-k", "2",
                            "--jsonl", str(tmp_path / "c.jsonl"), "--annotate", str(tmp_path / "ann"),
                            "--workers", "1"])
    assert r.exit_code == 0, r.output
    recs = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert len(recs) == 19
    astro = next(x for x in recs if x["file"].endswith("astro.png"))
    assert len(astro["faces"]) == 1 and astro["faces"][0]["label"] == UNKNOWN  # not one of the AT&T people
    assert all(len(f["top_k"]) == 2 for x in recs for f in x["faces"])
    # errors are clear and the exit code says so
    (tmp_path / "notamodel.ffm").write_text("hello")
    r = runner.invoke(app, ["classify", str(tmp_path / "notamodel.ffm"), str(img)])
    assert r.exit_code == 2 and "not a faceforge model" in r.output
    r = runner.invoke(app, ["train", str(tmp_path / "missing"), "-o", str(tmp_path / "x.ffm")])
    assert r.exit_code == 2
    one = tmp_path / "one_class"
    (one / "alice").mkdir(parents=True)
    Image.fromarray(astronaut).save(one / "alice" / "a.png")
    r = runner.invoke(app, ["train", str(one), "-o", str(tmp_path / "y.ffm")])
    assert r.exit_code == 2 and "alice" in r.output


def test_model_from_a_newer_format_is_refused(att_subset, tmp_path):
    model = tmp_path / "m.ffm"
    train(att_subset / "train", model, embedder="dlib-resnet", val=0.0, target_far=None, progress=False)
    z = zipfile.ZipFile(model)
    manifest = json.loads(z.read("manifest.json"))
    manifest["format_version"] = 999
    newer = tmp_path / "newer.ffm"
    with zipfile.ZipFile(newer, "w") as out:
        out.writestr("manifest.json", json.dumps(manifest))
        out.writestr("arrays.npz", z.read("arrays.npz"))
    with pytest.raises(BundleError, match="newer"):
        load_classifier(newer)


def test_model_file_without_an_embedder_is_refused(tmp_path):
    """A bundle that is not a classifier (no embedder named) gives a BundleError, not a TypeError."""
    from faceforge.heads import save_bundle

    path = save_bundle(tmp_path / "other.ffm", {"task": "classification"}, {"x": np.zeros(3)})
    with pytest.raises(BundleError, match="names no embedder"):
        load_classifier(path)


def test_regression_from_csv(tmp_path, astronaut):
    """A numeric label from a CSV gives a regression model (age-style), reported with MAE."""
    from skimage import data

    faces = (data.lfw_subset()[:60] * 255).astype(np.uint8)
    rows = ["file,score"]
    for i, f in enumerate(faces):
        big = np.asarray(Image.fromarray(f).resize((150, 150)))
        Image.fromarray(big).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{20 + i % 40}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    res = train(tmp_path / "labels.csv", tmp_path / "age.ffm", embedder="effnet-lite0", crops=True,
                val=0.2, progress=False)
    assert res.manifest["task"] == "regression" and "mae" in res.report
    clf = load_classifier(tmp_path / "age.ffm")
    pred = clf.predict_embeddings(np.zeros((1, 1280), np.float32) + 0.01)[0]
    assert pred.value is not None and 0 < pred.value < 100


def test_train_config_checks_every_setting_in_one_place():
    from faceforge.errors import ParameterError
    from faceforge.train import TrainConfig

    cfg = TrainConfig()  # the feature search is the default (issue 13): embedder and head chosen on the photos
    assert cfg.embedder == "auto" and cfg.val is None and cfg.folds == 0 and cfg.repeats is None
    assert cfg.target_far == 0.01 and cfg.head is None
    assert TrainConfig.from_kwargs(cfg, head="svm", folds=3) == TrainConfig(head="svm", folds=3)
    for bad, match in [({"val": 0.95}, "val"), ({"target_far": 0.7}, "target_far"), ({"crops": "maybe"}, "crops"),
                       ({"head": "forest"}, "forest"), ({"task": "clustering"}, "task"), ({"folds": -1}, "folds"),
                       ({"workers": -1}, "workers"), ({"seed": "x"}, "seed"), ({"repeats": 0}, "repeats")]:
        with pytest.raises(ParameterError, match=match):
            TrainConfig(**bad)
    with pytest.raises(ParameterError, match="no setting"):
        train("anywhere", "m.ffm", heads="svm")              # a typo is refused before any work


def test_training_steps_run_one_by_one(att_subset, tmp_path):
    """The named steps, run by hand, give what train() gives; bad head parameters fail before embedding."""
    from faceforge.errors import ParameterError
    from faceforge.train import TrainConfig, steps

    cfg = TrainConfig(embedder="dlib-resnet", val=0.25, progress=False, learning_curve=False, workers=1)
    loaded = steps.load(att_subset / "train", cfg)
    assert loaded.dataset.task == "classification" and len(loaded.dataset.classes) == 6
    plan = steps.check(loaded, cfg)
    assert plan.head == "logreg" and plan.known is None
    with pytest.raises(ParameterError, match="C must be"):
        steps.check(loaded, TrainConfig(head_params={"C": -1}))
    with pytest.raises(ParameterError, match="bob"):
        steps.check(loaded, TrainConfig(known=["bob"]))
    emb = steps.embed(loaded, cfg)
    assert emb.X.shape == (42, 128) and not emb.augmented.any()
    splits = steps.split(emb, cfg)
    (tr, te), = splits.pairs
    assert not set(emb.groups[tr]) & set(emb.groups[te]) and len(te) >= 6
    calib = steps.calibrate(emb, plan, cfg)
    fitted = steps.fit(emb, splits, plan, cfg, calib)  # the unknown check is refitted in the fold too
    assert fitted.accepted is not None and len(fitted.accepted) == len(te)
    rep = steps.report(fitted, splits, calib, plan=plan)
    assert rep["headline"]["unknown_check"] and list(rep)[0] == "headline"
    res = steps.save(tmp_path / "by_hand", loaded, emb, plan, fitted, calib, rep, cfg)
    assert res.model_path.name == "by_hand.ffm" and res.model_path.is_file()
    again = train(att_subset / "train", tmp_path / "whole.ffm", config=cfg)
    assert again.report == rep and list(again.report) == list(rep)
    assert load_classifier(res.model_path).predict_embeddings(emb.X[:3])[0].label == \
        load_classifier(again.model_path).predict_embeddings(emb.X[:3])[0].label


def test_many_people_with_few_photos_train_without_warnings(tmp_path, recwarn):
    """40 AT&T people with 2-3 photos each: no scikit-learn warnings, the folds explained in plain words."""
    import warnings

    src = shared_path("identity", "att_faces")
    data = tmp_path / "data"
    for i, person in enumerate(sorted(p for p in src.iterdir() if p.is_dir())[:40]):
        (data / person.name).mkdir(parents=True)
        for f in sorted(person.iterdir())[:2 + i % 2]:
            (data / person.name / f.name).symlink_to(f)
    warnings.simplefilter("always")
    for head in ("logreg", "svm"):
        res = train(data, tmp_path / f"{head}.ffm", embedder="dlib-resnet", head=head, progress=False, workers=1,
                    learning_curve=head == "svm")
        assert not recwarn.list, [f"{w.category.__name__}: {w.message}" for w in recwarn.list]
    few = [p.message for p in res.problems if p.kind == "few_for_folds"]
    assert few and "has 2 photos: too few for 5-fold validation, using 2 folds" in few[0], few
