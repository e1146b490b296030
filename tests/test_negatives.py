"""The me / not-me rule applies only when asked: a class named ``not_smiling`` is an ordinary class."""

import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import shared_path, variants
from faceforge.cli.main import app
from faceforge.errors import ParameterError
from faceforge.train import load_classifier, train
from faceforge.train import steps
from faceforge.train.config import TrainConfig

runner = CliRunner()


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory, astronaut, grace):
    """Photos of the astronaut and of Grace Hopper, in folders ``astronaut`` and ``not_astronaut``."""
    root = tmp_path_factory.mktemp("neg")
    for name, img in (("astronaut", astronaut), ("not_astronaut", grace)):
        (root / name).mkdir()
        for i, v in enumerate(variants(img, 6)):
            Image.fromarray(v).save(root / name / f"{i}.jpg", quality=92)
    return root


def test_a_name_like_negatives_gets_a_hint_not_a_rule(two_faces, tmp_path):
    r = runner.invoke(app, ["train", str(two_faces), "-o", str(tmp_path / "a.ffm"), "--no-curve", "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "class 'not_astronaut' looks like 'anyone else'; pass --negatives not_astronaut if it is" in r.output
    u = load_classifier(tmp_path / "a.ffm").manifest["metrics"]["unknown"]
    assert u["rule"] in ("people", "attributes") and u["why"] and "negatives" not in u
    assert "not_astronaut" in u.get("known", ["not_astronaut"])  # an ordinary class, not "anyone else"
    # asked for: the me / not-me rule, and the CLI says which rule and why
    r = runner.invoke(app, ["train", str(two_faces), "-o", str(tmp_path / "b.ffm"), "--negatives", "not_astronaut",
                            "--no-curve", "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "rule: negatives (negatives=['not_astronaut'] given" in r.output and "looks like" not in r.output
    clf = load_classifier(tmp_path / "b.ffm")
    assert clf.known_classes == ["astronaut"] and clf.rejected_label == "not_astronaut"


def test_negatives_are_checked_before_embedding(two_faces):
    loaded = steps.load(two_faces, TrainConfig())
    with pytest.raises(ParameterError, match="bob"):
        steps.check(loaded, TrainConfig(negatives="bob"))
    with pytest.raises(ParameterError, match="no class to recognise"):
        steps.check(loaded, TrainConfig(negatives=["astronaut", "not_astronaut"]))
    with pytest.raises(ParameterError, match="both"):
        steps.check(loaded, TrainConfig(known=["astronaut"], negatives="astronaut"))
    plan = steps.check(loaded, TrainConfig(known=["astronaut"]))  # --known still implies the negatives
    assert plan.known == [0]
    plan = steps.check(loaded, TrainConfig())
    assert plan.known is None and "not_astronaut" in plan.hint
    with pytest.raises(ParameterError, match="negatives"):
        TrainConfig(negatives=3)  # type: ignore[arg-type]


def test_not_smiling_is_an_ordinary_class(tmp_path):
    """FER2013 happy / neutral as smiling / not_smiling: smiles come out ``smiling``, not ``not_smiling``."""
    root = shared_path("emotion", "fer2013")
    data = tmp_path / "data"
    for cls, src in (("smiling", "happy"), ("not_smiling", "neutral")):
        (data / cls).mkdir(parents=True)
        for f in sorted((root / "train" / src).iterdir())[:40]:
            (data / cls / f.name).symlink_to(f)
    res = train(data, tmp_path / "s.ffm", embedder="expression", crops="always", progress=False, workers=1,
                learning_curve=False)
    u = res.report["unknown"]
    # an attribute embedder: no unknown check (it would call smiles "unknown"), and the report says why
    assert u["rule"] == "attributes" and "negatives" not in u and "describes what a face looks like" in u["why"]
    assert any(p.kind == "negatives_hint" for p in res.problems)
    clf = load_classifier(tmp_path / "s.ffm")
    assert clf.known_classes == ["not_smiling", "smiling"]
    test = sorted((root / "public_test" / "happy").iterdir())[:20]
    labels = [clf.classify(f).predictions[clf.name][0].label for f in test]
    # the old folder-name rule called ~95% of smiles not_smiling; none is "unknown" now
    assert labels.count("not_smiling") <= 4 and labels.count("smiling") >= 16, (u["rule"], labels)
