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
    assert {r["embedder"] for r in board} == set(candidates())
    assert {r["head"] for r in board} == set(CLASS_HEADS)
    assert len(board) == len(candidates()) * len(CLASS_HEADS)
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


def test_cli_train_embedder_auto_prints_the_leaderboard(people, tmp_path):
    r = runner.invoke(app, ["train", str(people), "-o", str(tmp_path / "m.ffm"), "--embedder", "auto",
                            "--no-curve"])
    assert r.exit_code == 0, r.output
    assert "leaderboard" in r.output and "chosen: --embedder" in r.output
    for name in candidates():
        assert name in r.output


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
    assert res.report["auto"]["chosen"]["embedder"] == "expression", res.report["auto"]["leaderboard"]
    assert res.manifest["embedder"] == "expression"


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
