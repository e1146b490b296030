"""The command line on real images: outputs, skipped files, errors, and untouched originals."""

import hashlib
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import shared_path, write_panning_video
from faceforge.cli.main import app

runner = CliRunner()


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def photos(tmp_path, astronaut, coffee):
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(astronaut).save(d / "astronaut.png")
    Image.fromarray(astronaut[:, ::-1]).save(d / "sub" / "mirror.jpg", quality=95)
    Image.fromarray(coffee).save(d / "coffee.jpg")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (d / "notes.txt").write_text("not a photo")
    return d


@pytest.mark.parametrize("workers", [1, 2])
def test_detect_folder_writes_jsonl_crops_annotations_and_skips_bad_files(photos, tmp_path, workers):
    before = _digest(photos)
    out = tmp_path / "out"
    r = runner.invoke(app, ["detect", str(photos), "--jsonl", str(out / "faces.jsonl"), "--save-crops",
                            str(out / "crops"), "--annotate", str(out / "ann"), "--workers", str(workers)])
    assert r.exit_code == 0, r.output
    recs = [json.loads(line) for line in (out / "faces.jsonl").read_text().splitlines()]
    by_name = {rec["file"].split("/")[-1]: rec for rec in recs}
    assert set(by_name) == {"astronaut.png", "mirror.jpg", "coffee.jpg"}
    assert len(by_name["astronaut.png"]["faces"]) == 1 and len(by_name["coffee.jpg"]["faces"]) == 0
    face = by_name["astronaut.png"]["faces"][0]
    assert set(face) == {"box", "score", "landmarks"} and face["score"] > 0.5
    assert "broken.jpg" in r.output and "skipped" in r.output
    crops = sorted(p.name for p in (out / "crops").iterdir())
    assert crops == ["astronaut_face0.png", "sub__mirror_face0.png"] or len(crops) == 2
    assert Image.open(out / "crops" / crops[0]).size == (112, 112)
    assert len(list((out / "ann").iterdir())) == 3
    assert _digest(photos) == before  # originals never touched


def test_detect_errors_are_clear(tmp_path, photos):
    r = runner.invoke(app, ["detect", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "no such file or folder" in r.output
    r = runner.invoke(app, ["detect", str(photos), "--detector", "yunett"])
    assert r.exit_code == 2 and "Did you mean 'yunet'" in r.output
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["detect", str(tmp_path / "empty")])
    assert r.exit_code == 2 and "No images or videos found" in r.output


def test_detect_refuses_to_overwrite_an_input(tmp_path, astronaut):
    Image.fromarray(astronaut).save(tmp_path / "astronaut.jpg")
    before = _digest(tmp_path)
    r = runner.invoke(app, ["detect", str(tmp_path / "astronaut.jpg"), "--annotate", str(tmp_path), "--workers", "1"])
    assert "Refusing to overwrite the input file" in r.output
    assert _digest(tmp_path) == before


def test_detect_video(tmp_path, astronaut):
    path = write_panning_video(tmp_path / "clip.avi", astronaut, frames=4, step=8)
    r = runner.invoke(app, ["detect", str(path), "--jsonl", str(tmp_path / "v.jsonl"), "--workers", "1"])
    assert r.exit_code == 0, r.output
    recs = [json.loads(x) for x in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert [x["frame"] for x in recs] == [0, 1, 2, 3]
    xs = [x["faces"][0]["box"][0] for x in recs]
    assert all(b > a for a, b in zip(xs, xs[1:]))  # the face moves right as the frames roll


def test_embed_npz_and_jsonl(photos, tmp_path):
    r = runner.invoke(app, ["embed", str(photos), "-o", str(tmp_path / "e.npz"), "--workers", "1"])
    assert r.exit_code == 0, r.output
    z = np.load(tmp_path / "e.npz")
    assert z["embeddings"].shape == (2, 128) and str(z["embedder"]) == "dlib-resnet"
    d = np.linalg.norm(z["embeddings"][0] - z["embeddings"][1])
    assert d < 0.45  # the astronaut and her mirror image: same person
    assert "coffee.jpg" in r.output  # reported: no face
    r = runner.invoke(app, ["embed", str(photos / "astronaut.png"), "-o", str(tmp_path / "e.jsonl")])
    assert r.exit_code == 0, r.output
    rec = json.loads((tmp_path / "e.jsonl").read_text())
    assert len(rec["embedding"]) == 128
    r = runner.invoke(app, ["embed", str(photos), "-o", str(tmp_path / "e.csv")])
    assert r.exit_code == 2 and ".npz or .jsonl" in r.output


def test_verify_same_and_no_face(photos):
    r = runner.invoke(app, ["verify", str(photos / "astronaut.png"), str(photos / "sub" / "mirror.jpg"), "--json"])
    assert r.exit_code == 0, r.output
    v = json.loads(r.output)
    assert v["same"] is True and v["distance"] < v["threshold"] == 0.6
    r = runner.invoke(app, ["verify", str(photos / "astronaut.png"), str(photos / "coffee.jpg")])
    assert r.exit_code == 2 and "coffee.jpg: no face found" in r.output


def test_verify_different_people():
    a = shared_path("identity", "knn_examples", "train", "biden")
    b = shared_path("identity", "knn_examples", "train", "obama")
    fa, fb = sorted(a.iterdir())[0], sorted(b.iterdir())[0]
    r = runner.invoke(app, ["verify", str(fa), str(fb), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["same"] is False


def test_classify_writes_labels_per_face_and_annotations(photos, tmp_path):
    from faceforge.attributes import MODELS_DIR

    out = tmp_path / "out"
    r = runner.invoke(app, ["classify", str(MODELS_DIR / "gender.ffm"), str(photos / "astronaut.png"),
                            str(photos / "sub"), "--jsonl", str(out / "c.jsonl"), "--annotate", str(out / "ann"),
                            "--workers", "1"])
    assert r.exit_code == 0, r.output
    recs = [json.loads(line) for line in (out / "c.jsonl").read_text().splitlines()]
    assert [rec["file"].split("/")[-1] for rec in recs] == ["astronaut.png", "mirror.jpg"]
    for rec in recs:
        assert set(rec) == {"file", "frame", "faces"}
        (face,) = rec["faces"]
        assert face["label"] == "female" and face["top_k"][0]["label"] == "female" and "detection_score" in face
    assert sorted(p.name for p in (out / "ann").iterdir()) == ["astronaut.jpg", "mirror.jpg"]
    assert "2 face(s) classified in 2 image(s)/frame(s); 0 skipped" in r.output


def test_one_error_handler_gives_exit_2_for_errors_and_130_for_ctrl_c():
    import typer

    from faceforge.cli.app import handle_errors
    from faceforge.errors import ParameterError

    @handle_errors
    def bad() -> None:
        raise ParameterError("expected a, got b; use a")

    @handle_errors
    def interrupted() -> None:
        raise KeyboardInterrupt

    for command, code in ((bad, 2), (interrupted, 130)):
        with pytest.raises(typer.Exit) as e:
            command()
        assert e.value.exit_code == code
