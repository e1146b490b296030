"""Built-in attributes (gender, age, emotion) and the analyzer, on real faces."""

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import shared_path, write_panning_video
from faceforge.attributes import Analyzer, EmotionModel, available_attributes, load_attribute
from faceforge.cli.main import app
from faceforge.errors import FaceforgeError

runner = CliRunner()


@pytest.fixture(scope="module")
def analyzer():
    return Analyzer()


def test_astronaut_is_a_smiling_adult_woman(analyzer, astronaut):
    res = analyzer.analyze(astronaut)
    assert len(res) == 1
    (face,) = res.rows()
    x0, y0, x1, y1 = face.box
    assert 150 < x0 < 230 and 50 < y0 < 120 and 230 < x1 < 300  # skimage's documented box
    assert face["gender"].label == "female" and face["gender"].score > 0.7
    assert 25 <= face["age"].value <= 60
    assert face["emotion"].label == "happy"
    d = face.to_dict()
    assert set(d) >= {"box", "detection_score", "landmarks", "gender", "age", "emotion"}
    assert [t["label"] for t in d["emotion"]["top_k"]][0] == "happy" and len(d["emotion"]["top_k"]) == 3
    json.dumps(d)


def test_no_face_gives_nothing_with_crops_off(astronaut, coffee):
    assert len(Analyzer(["emotion"], crops=False).analyze(coffee)) == 0


def test_built_in_and_own_models_mix(astronaut):
    own = load_attribute("gender")  # any FaceClassifier works as "your own" model
    an = Analyzer(["age"], models={"mine": own})
    face = next(an.analyze(astronaut).rows())
    assert set(face.predictions) == {"age", "mine"} and face["mine"].label == "female"
    with pytest.raises(FaceforgeError, match="Unknown attribute"):
        Analyzer(["beauty"])
    assert available_attributes() == ["gender", "age", "emotion"]


def test_emotion_on_face_crops_of_known_expression():
    """FER2013 test faces (48x48 crops): both networks get most happy and surprise right, and
    faceforge's own (the default) at least as many as fer's over four expressions."""
    root = shared_path("emotion", "fer2013", "public_test")
    assert EmotionModel().backend == "faceforge"
    right = {}
    for backend in ("faceforge", "fer"):
        an = Analyzer([], {"emotion": EmotionModel(backend=backend)})
        right[backend] = 0
        for cls in ("happy", "surprise", "angry", "sad"):
            files = sorted((root / cls).iterdir())[:20]
            labels = [an.analyze(f).predictions["emotion"][0].label for f in files]
            if cls in ("happy", "surprise"):
                assert labels.count(cls) >= 12, (backend, cls, labels)
            right[backend] += labels.count(cls)
    assert right["faceforge"] >= right["fer"], right


def test_emotion_backends(astronaut):
    from faceforge.detectors import get_detector

    faces = get_detector("photo")(astronaut)
    for backend in ("faceforge", "fer"):
        m = EmotionModel(backend=backend)
        p = m.predict_proba(m.crops(astronaut, faces))
        assert p.shape == (1, 7) and abs(p.sum() - 1) < 1e-3 and m.classes[int(p.argmax())] == "happy"
        assert m.predict_proba(m.crops(astronaut, faces[:0])).shape == (0, 7)
    with pytest.raises(FaceforgeError, match="Unknown emotion backend"):
        EmotionModel(backend="magic")


def test_cli_analyze_photo_and_video(tmp_path, astronaut):
    img = tmp_path / "astro.png"
    Image.fromarray(astronaut).save(img)
    clip = write_panning_video(tmp_path / "clip.avi", astronaut, frames=3, step=8)
    r = runner.invoke(app, ["analyze", str(img), str(clip), "--jsonl", str(tmp_path / "a.jsonl"),
                            "--annotate", str(tmp_path / "ann"), "--workers", "1"])
    assert r.exit_code == 0, r.output
    recs = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert len(recs) == 4 and all(len(x["faces"]) == 1 for x in recs)
    assert all(x["faces"][0]["gender"]["label"] == "female" for x in recs)
    assert len(list((tmp_path / "ann").iterdir())) == 4
    r = runner.invoke(app, ["analyze", str(img), "-a", "gender,beauty"])
    assert r.exit_code == 2 and "beauty" in r.output
