"""The feature search (``embedder="auto"`` / ``head="auto"``) on real faces."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import shared_path
from faceforge.cli.main import app
from faceforge.errors import ParameterError
from faceforge.registry import get_spec
from faceforge.train import TrainConfig, load_classifier, train
from faceforge.train.auto import CLASS_HEADS, MAX_PHOTOS, candidates, subsample

runner = CliRunner()


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """4 AT&T people, 6 photos each (real 92x112 grey face crops)."""
    src = shared_path("identity", "att_faces")
    root = tmp_path_factory.mktemp("people")
    for person in sorted(p for p in src.iterdir() if p.is_dir())[:4]:
        (root / person.name).mkdir()
        for f in sorted(person.iterdir())[:6]:
            (root / person.name / f.name).write_bytes(f.read_bytes())
    return root


def test_auto_search_on_people_picks_an_identity_embedder(people, tmp_path):
    res = train(people, tmp_path / "p.ffm", embedder="auto", progress=False, learning_curve=False)
    auto = res.report["auto"]
    board = auto["leaderboard"]
    singles = [r for r in board if "+" not in r["embedder"]]
    assert {r["embedder"] for r in singles} == set(candidates())
    assert {r["head"] for r in board} == set(CLASS_HEADS)
    assert len(singles) == len(candidates()) * len(CLASS_HEADS)
    pairs = {r["embedder"] for r in board} - set(candidates())  # the two best side by side, unless one is perfect
    assert len(pairs) <= 1 and all(len(p.split("+")) == 2 for p in pairs)
    scores = [r["score"] for r in board]
    assert scores == sorted(scores, reverse=True)
    for r in board:
        assert 0.0 <= r["ci95"][0] <= r["score"] <= r["ci95"][1] <= 1.0 and r["photos"] == 24
    chosen = auto["chosen"]
    assert get_spec(chosen["embedder"]).input.get("threshold") is not None  # an identity embedder
    assert chosen["score"] >= max(scores) - 0.005
    assert res.manifest["embedder"] == chosen["embedder"] and res.manifest["head"]["kind"] == chosen["head"]
    clf = load_classifier(res.model_path)
    assert clf.manifest["embedder"] == chosen["embedder"]
    saved = json.loads(res.report_path.read_text())
    assert saved["report"]["auto"]["chosen"] == chosen and auto["seconds"] > 0


def test_cli_train_searches_by_default_and_leads_with_what_users_get(people, tmp_path):
    r = runner.invoke(app, ["train", str(people), "-o", str(tmp_path / "m.ffm"), "--no-curve"])  # no --embedder
    assert r.exit_code == 0, r.output
    assert "leaderboard" in r.output and "chosen: --embedder" in r.output
    for name in candidates():
        assert name in r.output
    out = " ".join(r.output.split())
    # people: the unknown check is on, the headline counts its rejections as errors, the top-1 figure follows
    assert "what you get: balanced accuracy" in out and "counts as an error" in out
    assert out.index("what you get:") < out.index("without the unknown check (top-1): balanced accuracy")
    rep = json.loads((tmp_path / "m.report.json").read_text())["report"]
    h = rep["headline"]
    assert list(rep)[0] == "headline" and h["unknown_check"] and h["n"] == 24
    assert h["mean"] <= rep["validation"]["mean"] + 1e-9 and 0 <= h["known_rejected"] <= 1


def test_fold_by_fold_unknown_check_counts_rejected_known_faces(people, tmp_path):
    """A strict check (30% false-accept target... inverted: 0.1% lets few through) rejects known faces in
    validation; the headline falls below the top-1 figure by exactly the rejected right answers."""
    res = train(people, tmp_path / "s.ffm", embedder="dlib-resnet", target_far=0.001, progress=False,
                learning_curve=False)
    h, v = res.report["headline"], res.report["validation"]
    assert h["unknown_check"] and h["known_predictions"] == v["predictions"]
    assert h["accuracy"]["mean"] <= v["accuracy"]["mean"]
    # every prediction the check rejected was a known face (all classes are people), and is now wrong
    gap = v["accuracy"]["mean"] - h["accuracy"]["mean"]
    assert gap <= h["known_rejected"] + 1e-6
    strict = train(people, tmp_path / "s2.ffm", embedder="dlib-resnet", target_far=0.2, progress=False,
                   learning_curve=False).report["headline"]
    assert strict["known_rejected"] <= h["known_rejected"]  # a looser check rejects fewer known faces


def test_concatenated_embedder_trains_and_predicts_like_its_parts(people, tmp_path):
    from faceforge.embedders.base import get_embedder
    from faceforge.pipeline import FacePipeline

    name = "dlib-resnet+expression"
    res = train(people, tmp_path / "c.ffm", embedder=name, progress=False, learning_curve=False, val=0)
    assert res.manifest["embedder"] == name and res.manifest["embedding_dim"] == 128 + 263
    assert res.manifest["embedder_sha256"] == "+".join(get_spec(p).sha256 for p in name.split("+"))
    clf = load_classifier(res.model_path)
    photo = sorted(people.glob("*/*"))[0]
    faces = clf.classify(photo)
    assert len(faces) >= 1 and faces.predictions[clf.name][0].label == photo.parent.name
    # the model's embedding is the parts' embeddings of the same face, each L2-normalised, side by side
    from faceforge.sources import load_image

    img = load_image(photo)
    parts = [FacePipeline(finder=clf.pipeline.finder, embedder=p).embed(img).embedding for p in name.split("+")]
    parts[0] = parts[0] / np.linalg.norm(parts[0], axis=1, keepdims=True)  # dlib-resnet: normalised for heads
    assert np.allclose(faces.embedding, np.hstack(parts), atol=1e-5)
    assert get_embedder(name).dim == 128 + 263
    with pytest.raises(ParameterError, match="repeats"):
        train(people, tmp_path / "x.ffm", embedder="expression+expression", progress=False)


def test_the_pair_is_tried_after_the_singles_and_kept_only_when_it_clearly_helps():
    from faceforge.train.auto import PAIR_GAIN, pair_to_try, pick

    board = [{"embedder": "expression", "head": "svm", "score": 0.90},
             {"embedder": "effnet-lite0", "head": "logreg", "score": 0.80},
             {"embedder": "dlib-resnet", "head": "logreg", "score": 0.60}]
    assert pair_to_try(board, lower=False) == "expression+effnet-lite0"  # the two best, cheaper first
    assert pair_to_try(board[:1], lower=False) is None
    assert pair_to_try([{**board[0], "score": 1.0}, board[1]], lower=False) is None  # nothing left to gain
    heads = ("logreg", "svm", "knn")
    small = board + [{"embedder": "expression+effnet-lite0", "head": "svm", "score": 0.90 + PAIR_GAIN / 2}]
    assert pick(small, False, heads)["embedder"] == "expression"        # a small gain is not worth both
    big = board + [{"embedder": "expression+effnet-lite0", "head": "svm", "score": 0.90 + 3 * PAIR_GAIN}]
    assert pick(big, False, heads)["embedder"] == "expression+effnet-lite0"


def test_head_auto_keeps_the_named_embedder(people, tmp_path):
    res = train(people, tmp_path / "h.ffm", embedder="dlib-resnet", head="auto", progress=False,
                learning_curve=False)
    board = res.report["auto"]["leaderboard"]
    assert {r["embedder"] for r in board} == {"dlib-resnet"} and len(board) == len(CLASS_HEADS)
    assert res.manifest["embedder"] == "dlib-resnet"


def test_expression_task_picks_the_expression_embedder(tmp_path):
    src = shared_path("emotion", "fer2013", "train")
    for cls in ("happy", "neutral"):
        (tmp_path / "d" / cls).mkdir(parents=True)
        for f in sorted((src / cls).iterdir())[:30]:
            (tmp_path / "d" / cls / f.name).write_bytes(f.read_bytes())
    res = train(tmp_path / "d", tmp_path / "e.ffm", embedder="auto", crops=True, progress=False,
                learning_curve=False)
    chosen = res.report["auto"]["chosen"]["embedder"]
    assert "expression" in chosen.split("+"), res.report["auto"]["leaderboard"]  # alone, or with a clear gain
    assert res.manifest["embedder"] == chosen


def test_auto_settings_are_checked_and_big_sets_subsampled():
    assert TrainConfig(embedder="auto", head="auto").head == "auto"
    with pytest.raises(ParameterError, match="auto"):
        TrainConfig(head="best")
    from faceforge.data.dataset import Dataset, Sample

    ds = Dataset([Sample(f"/x/{i}.jpg", "a" if i % 4 else "b") for i in range(2000)], "classification",
                 ["a", "b"], "/x")
    sub = subsample(ds)
    labels = np.array([s.label for s in sub.samples])
    assert len(sub.samples) <= MAX_PHOTOS + 2 and abs(np.mean(labels == "b") - 0.25) < 0.01
    assert subsample(sub, limit=10_000) is sub
