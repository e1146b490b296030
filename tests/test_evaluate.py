"""evaluate leads with what users get: final labels after the unknown check, with denominators."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_path

from faceforge.train import evaluate, train


@pytest.fixture(scope="module")
def att(tmp_path_factory):
    """5 AT&T people to train on (6 photos each), their other 4 photos, and 2 strangers (4 photos)."""
    src = shared_path("identity", "att_faces")
    root = tmp_path_factory.mktemp("att_eval")
    people = sorted(p for p in src.iterdir() if p.is_dir())
    for person in people[:5]:
        files = sorted(person.iterdir())
        for part, chunk in (("train", files[:6]), ("test", files[6:])):
            (root / part / person.name).mkdir(parents=True)
            for f in chunk:
                (root / part / person.name / f.name).write_bytes(f.read_bytes())
    for person in people[20:22]:
        (root / "test" / person.name).mkdir(parents=True)
        for f in sorted(person.iterdir())[:4]:
            (root / "test" / person.name / f.name).write_bytes(f.read_bytes())
    model = root / "att.ffm"
    train(root / "train", model, embedder="dlib-resnet", progress=False, learning_curve=False)
    return root, model


def test_headline_counts_every_photo_and_unknown_as_error(att):
    root, model = att
    rep = evaluate(model, root / "test", progress=False)
    h = rep["headline"]
    assert h["images"] == 5 * 4 + 2 * 4 == rep["images"] and h["classes"] == 7 and h["unknown_check"]
    # the headline is the open-set accuracy over every photo (strangers right only when rejected) ...
    assert h["accuracy"] == pytest.approx(rep["open_set"]["accuracy"])
    assert h["correct"] == round(h["accuracy"] * h["images"])
    assert h["balanced_accuracy"] == pytest.approx(np.mean(list(h["per_class"].values())))
    # ... and a known face is right in the headline only when top-1 (which ignores the unknown check
    # and the strangers) is right too: the headline gains nothing the user would not see
    top1_right = round(rep["accuracy"] * 20)
    assert h["correct"] <= top1_right + 8
    assert sum(round(h["per_class"][c] * 4) for c in rep["per_class"]) <= top1_right
    assert f"of {h['images']} test photos" in h["text"] and "counts as an error" in h["text"]


def test_cli_evaluate_leads_with_the_headline(att, tmp_path):
    import json

    from typer.testing import CliRunner

    from faceforge.cli.main import app

    root, model = att
    r = CliRunner().invoke(app, ["evaluate", str(model), str(root / "test"), "--report", str(tmp_path / "r.json"),
                                 "--workers", "1"])
    assert r.exit_code == 0, r.output
    h = json.loads((tmp_path / "r.json").read_text())["headline"]
    first = r.output.index(f"of {h['images']} test photos get the right label")
    assert first < r.output.index("top-1 on the known classes, without the unknown check")
