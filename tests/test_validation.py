"""Small-set validation (issue 13): repeated k-fold with a 95% interval, hold-out on large sets."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import ASTRONAUT_BOX, shared_path, variants
from faceforge.cli.main import app
from faceforge.heads.splits import auto_folds, merge_groups, repeated_kfold
from faceforge.train import TrainConfig, load_classifier, steps, train
from faceforge.train import validation as V

runner = CliRunner()


def _chip(image, box, size=150):
    x0, y0, x1, y1 = (int(v) for v in box)
    return np.asarray(Image.fromarray(image[y0:y1, x0:x1]).resize((size, size)))


@pytest.fixture(scope="module")
def faces_no_data(tmp_path_factory, astronaut, grace):
    """Three classes of real face crops: the astronaut, Grace Hopper (varied copies) and LFW faces.

    ``train`` holds 10 photos per class, ``test`` 6 more of the same classes."""
    from skimage import data

    root = tmp_path_factory.mktemp("faces")
    astro = variants(_chip(astronaut, ASTRONAUT_BOX), 16)
    g = grace.shape
    gr = variants(_chip(grace, (g[1] * 0.28, g[0] * 0.12, g[1] * 0.75, g[0] * 0.52)), 16)
    lfw = [np.asarray(Image.fromarray(f).resize((150, 150)))
           for f in (data.lfw_subset()[:16] * 255).astype(np.uint8)]
    for name, imgs in (("astronaut", astro), ("grace", gr), ("lfw", lfw)):
        for part, chunk in (("train", imgs[:10]), ("test", imgs[10:])):
            (root / part / name).mkdir(parents=True)
            for i, im in enumerate(chunk):
                Image.fromarray(im).convert("RGB").save(root / part / name / f"{part}{i}.png")
    return root


def test_splitters_repeat_stratify_and_keep_groups():
    y = np.repeat([0, 1, 2], [3, 6, 9])
    assert auto_folds(y) == 3 and auto_folds(np.repeat([0, 1], 20)) == 5 and auto_folds(np.array([0, 0, 1, 1])) == 2
    groups = np.array([f"p{i // 2}" for i in range(len(y))])  # pairs of rows: a photo and its copy
    reps = repeated_kfold(y, 3, 4, seed=0, groups=groups)
    assert len(reps) == 4 and all(len(r) == 3 for r in reps)
    for folds in reps:
        assert sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(len(y)))
        for tr, te in folds:
            assert not set(groups[tr]) & set(groups[te]) and set(y[tr]) == {0, 1, 2}
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(reps[0], reps[1]))  # each repeat reshuffles
    merged = merge_groups(np.array(["a", "b", "c", "d"]), [("b", "d"), ("d", "c"), ("x", "a")])
    assert merged.tolist() == ["a", "b", "b", "b"]


def test_scheme_by_number_of_photos_and_forced_choices():
    y = np.repeat([0, 1], [150, 150])
    g = np.arange(len(y))
    assert V.choose(y, g, 300, val=None, folds=0, repeats=None).method == "holdout"
    small = V.choose(y[:40], g[:40], 40, val=None, folds=0, repeats=None)
    assert (small.method, small.folds, small.repeats) == ("repeated_kfold", 5, 8) and "40 photos" in small.why
    y2 = np.repeat([0, 1, 2], [3, 10, 10])
    tight = V.choose(y2, np.arange(23), 23, val=None, folds=0, repeats=None)
    assert tight.folds == 3 and tight.folds * tight.repeats <= V.MAX_FITS and tight.repeats >= V.MIN_REPEATS
    assert V.choose(y[:40], g[:40], 40, val=0.25, folds=0, repeats=None).method == "holdout"
    assert V.choose(y[:40], g[:40], 40, val=0.0, folds=0, repeats=None).method == "none"
    k4 = V.choose(y, g, 300, val=None, folds=4, repeats=None)
    assert (k4.method, k4.folds, k4.repeats) == ("kfold", 4, 1)
    k43 = V.choose(y, g, 300, val=0.2, folds=4, repeats=3)
    assert (k43.method, k43.folds, k43.repeats) == ("repeated_kfold", 4, 3)


def test_small_set_interval_contains_held_out_accuracy(faces_no_data, tmp_path):
    """No shared data: 30 photos of 3 classes get 5-fold x 8 repeats; the interval holds the test accuracy."""
    res = train(faces_no_data / "train", tmp_path / "m.ffm", embedder="dlib-resnet", crops=True, target_far=None,
                progress=False, workers=1)
    v = res.report["validation"]
    assert (v["method"], v["folds"], v["repeats"], v["n"], v["photos"]) == ("repeated_kfold", 5, 8, 30, 30)
    assert v["predictions"] == 240 and v["metric"] == "balanced accuracy"
    lo, hi = v["ci95"]
    assert 0 <= lo <= v["mean"] <= hi <= 1 and lo <= v["accuracy"]["mean"] <= 1
    assert v["per_class_photos"] == {"astronaut": 10, "grace": 10, "lfw": 10}
    assert {m["support"] for m in res.report["per_class"].values()} == {10} and res.report["n"] == 30
    assert res.report["balanced_accuracy"] == pytest.approx(v["mean"], abs=1e-4)
    test = __import__("faceforge").evaluate(tmp_path / "m.ffm", faces_no_data / "test", progress=False, workers=1)
    assert test["images"] == 18
    assert lo - 1e-9 <= test["balanced_accuracy"] <= hi + 1e-9, (v, test["balanced_accuracy"])
    # the report on disk and the model's metrics carry the same entry
    saved = json.loads(res.report_path.read_text())["report"]["validation"]
    assert saved["ci95"] == v["ci95"] and saved["description"] == "5-fold x 8 repeats over all 30 photos"
    assert load_classifier(tmp_path / "m.ffm").manifest["metrics"]["validation"]["method"] == "repeated_kfold"
    # the learning curve comes from the same folds: one score per fold (the first 10 of 40)
    c = res.report["learning_curve"]
    assert c["folds"] == V.CURVE_FOLDS and all(len(s) == V.CURVE_FOLDS for s in c["validation"])
    assert c["train_images"][-1] == 24 and c["train_images"] == sorted(c["train_images"])


def test_learning_curve_and_headline_use_the_validation_folds(faces_no_data):
    cfg = TrainConfig(embedder="dlib-resnet", crops=True, target_far=None, progress=False, workers=1, folds=3,
                      repeats=2)
    loaded = steps.load(faces_no_data / "train", cfg)
    emb = steps.embed(loaded, cfg)
    splits = steps.split(emb, cfg)
    assert splits.scheme.method == "repeated_kfold" and len(splits.pairs) == 6 and splits.repeat == [0, 0, 0, 1, 1, 1]
    plan = steps.check(loaded, cfg)
    fitted = steps.fit(emb, splits, plan, cfg)
    assert fitted.curve["folds"] == 6 and fitted.repeats_run == 2
    # the curve at 100% is the validation fit of each fold, scored on that fold
    fold0 = splits.pairs[0][1]
    m = np.isin(fitted.rows, fold0) & (fitted.repeat == 0)
    from sklearn.metrics import balanced_accuracy_score

    assert fitted.curve["validation"][-1][0] == pytest.approx(
        balanced_accuracy_score(fitted.y_true[m], fitted.y_out[m].argmax(1)), abs=1e-4)
    rep = steps.report(fitted, splits, steps.calibrate(emb, plan, cfg))
    line = V.headline(rep["validation"])
    assert line.startswith("balanced accuracy ") and "(95% CI " in line and line.endswith(
        "over 30 photos, 3-fold x 2 repeats")


def test_tiny_noisy_set_warns_about_a_wide_interval(tmp_path):
    """12 LFW faces with arbitrary labels: the score is noise, the CLI and the report say so."""
    from skimage import data

    for i, f in enumerate((data.lfw_subset()[:12] * 255).astype(np.uint8)):
        d = tmp_path / "data" / ("a" if i % 2 else "b")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(f).resize((150, 150)).convert("RGB").save(d / f"{i}.png")
    r = runner.invoke(app, ["train", str(tmp_path / "data"), "-o", str(tmp_path / "n.ffm"), "--crops", "always",
                            "--target-far", "0", "--workers", "1"])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "n.report.json").read_text())
    v = rep["report"]["validation"]
    assert v["method"] == "repeated_kfold" and v["n"] == 12 and (v["ci95"][1] - v["ci95"][0]) / 2 > V.WIDE_CI
    assert "wider than +-10%" in v["warning"]
    assert any(p["kind"] == "wide_interval" and p["severity"] == "warning" for p in rep["problems"])
    out = " ".join(r.output.split())
    assert "(95% CI " in out and "over 12 photos, 5-fold x 8 repeats" in out and "wider than +-10%" in out


def test_near_duplicates_stay_in_one_fold(faces_no_data, tmp_path):
    """A re-saved copy of a photo lands in the same fold as the photo, in every repeat."""
    data = tmp_path / "data"
    for d in (faces_no_data / "train").iterdir():
        (data / d.name).mkdir(parents=True)
        for f in d.iterdir():
            (data / d.name / f.name).symlink_to(f)
    src = faces_no_data / "train" / "grace" / "train0.png"
    Image.open(src).convert("RGB").save(data / "grace" / "copy.jpg", quality=90)
    cfg = TrainConfig(embedder="dlib-resnet", crops=True, target_far=None, progress=False, workers=1,
                      learning_curve=False)
    emb = steps.embed(steps.load(data, cfg), cfg)
    assert any(p.kind == "near_duplicate" for p in emb.problems)
    splits = steps.split(emb, cfg)
    rows = [int(np.flatnonzero(emb.groups == str(data / "grace" / n))[0]) for n in ("train0.png", "copy.jpg")]
    for tr, te in splits.pairs:
        assert (rows[0] in te) == (rows[1] in te) and (rows[0] in tr) == (rows[1] in tr)


def test_att_small_set_interval_contains_held_out_accuracy(tmp_path):
    """AT&T: 3 photos of each of 12 people; the interval holds the accuracy on their other 7 photos."""
    src = shared_path("identity", "att_faces")
    for person in sorted(p for p in src.iterdir() if p.is_dir())[:12]:
        files = sorted(person.iterdir())
        for part, chunk in (("train", files[:3]), ("test", files[3:])):
            (tmp_path / part / person.name).mkdir(parents=True)
            for f in chunk:
                (tmp_path / part / person.name / f.name).symlink_to(f)
    res = train(tmp_path / "train", tmp_path / "att.ffm", embedder="dlib-resnet", target_far=None, progress=False,
                workers=1)
    v = res.report["validation"]
    assert (v["method"], v["folds"], v["n"]) == ("repeated_kfold", 3, 36) and v["repeats"] >= 2
    test = __import__("faceforge").evaluate(tmp_path / "att.ffm", tmp_path / "test", progress=False, workers=1)
    assert test["images"] == 84
    assert v["ci95"][0] <= test["balanced_accuracy"] <= v["ci95"][1] + 1e-9, (v, test["balanced_accuracy"])


def test_att_large_set_keeps_the_hold_out(tmp_path):
    """All 400 AT&T photos: enough for a 20% hold-out, which stays the default."""
    src = shared_path("identity", "att_faces")
    res = train(src, tmp_path / "all.ffm", embedder="dlib-resnet", target_far=None, progress=False,
                learning_curve=False)
    v = res.report["validation"]
    assert v["method"] == "holdout" and v["photos"] == 400 and v["val"] == 0.2 and v["repeats"] == 1
    assert 70 <= v["n"] <= 90 and v["ci95"][0] <= v["mean"] <= v["ci95"][1]
    assert "400 photos (>= 300)" in v["why"] and "hold-out" in V.headline(v)
