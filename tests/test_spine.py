"""One face finder under every entry point: the same photos give the same faces everywhere.

Photos: the astronaut (one face), 25x25 LFW face crops that the bare detector misses (the face
finder upscales small images), and a group photo made of three real portraits where a bigger face
sits at the edge and the subject in the centre (the main-face rule).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from faceforge.pipeline import FaceFinder, FacePipeline


def _group(astronaut: np.ndarray, grace: np.ndarray) -> np.ndarray:
    """A 1400x800 group photo: Grace's face, the biggest, cut by the left edge; the astronaut centred
    (the subject); a small astronaut top right."""
    import cv2

    canvas = np.full((800, 1400, 3), 200, np.uint8)
    canvas[100:710, 0:400] = cv2.resize(grace, (520, 610))[:, 120:]
    canvas[200:600, 500:900] = cv2.resize(astronaut[20:340, 100:420], (400, 400))
    canvas[40:200, 1200:1360] = cv2.resize(astronaut[40:300, 120:380], (160, 160))
    return canvas


@pytest.fixture(scope="module")
def photos(astronaut, grace, tmp_path_factory):
    from skimage import data

    from faceforge.detectors import get_detector
    from faceforge.sinks import save_image

    det = get_detector("yunet")
    lfw = (data.lfw_subset()[:60] * 255).astype(np.uint8)
    tiny = [np.stack([im] * 3, -1) for im in lfw if not len(det(np.stack([im] * 3, -1)))][:2]
    assert len(tiny) == 2, "scikit-image's LFW subset should hold crops that yunet misses at 25x25"
    imgs = {"astronaut": astronaut, "tiny0": tiny[0], "tiny1": tiny[1], "group": _group(astronaut, grace)}
    root = tmp_path_factory.mktemp("spine")
    paths = {}
    for name, im in imgs.items():
        paths[name] = root / f"{name}.png"
        save_image(paths[name], im)
    return imgs, paths


@pytest.fixture(scope="module")
def expected(photos):
    imgs, _ = photos
    return {name: FaceFinder("photo").find(im) for name, im in imgs.items()}


def _same(a: np.ndarray, b: np.ndarray, what: str) -> None:
    a, b = np.asarray(a, np.float32).reshape(-1, 4), np.asarray(b, np.float32).reshape(-1, 4)
    assert a.shape == b.shape, f"{what}: {len(a)} faces, the face finder found {len(b)}"
    np.testing.assert_allclose(a, b, atol=0.6, err_msg=what)


def test_the_finder_finds_tiny_crops_and_puts_the_centred_subject_first(expected):
    assert all(len(expected[n]) == 1 for n in ("astronaut", "tiny0", "tiny1"))
    group = expected["group"]
    assert len(group) == 3
    cx = (group.xyxy[:, 0] + group.xyxy[:, 2]) / 2
    assert 500 < cx[0] < 900  # the main face is the centred astronaut ...
    biggest = int(np.argmax(group.area))
    assert biggest != 0 and cx[biggest] < 400 and group.area[biggest] > 2 * group.area[0]  # ... not Grace


def test_every_entry_point_finds_the_same_faces(photos, expected, tmp_path):
    from faceforge import detect
    from faceforge.attributes import Analyzer, load_attribute
    from faceforge.bootstrap import embed_faces_of
    from faceforge.data.embed import embed_image
    from faceforge.gallery import Gallery
    from faceforge.live import LiveAnalyzer

    imgs, paths = photos
    pipe = FacePipeline("photo", "dlib-resnet")
    gallery = Gallery(tmp_path / "g.db", embedder="dlib-resnet")
    gallery.enrol("eileen", [imgs["astronaut"]])
    gender = load_attribute("gender")  # a model file made by `train`, as a user's would be
    analyzer = Analyzer(["gender"], {"who": gallery})
    clustered = embed_faces_of([str(p) for p in paths.values()], workers=1, progress=False)

    for name, img in imgs.items():
        want = expected[name]
        _same(detect(img).xyxy, want.xyxy, f"faceforge.detect on {name}")
        _same(pipe.embed(img).xyxy, want.xyxy, f"embed on {name}")
        _same(pipe.main_face(img)[0].xyxy, want.xyxy[:1], f"verify's main face on {name}")
        _same(embed_image(img, pipe).box, want.xyxy[:1], f"train's main face on {name}")
        _same(gender.classify(img).xyxy, want.xyxy, f"classify on {name}")
        _same(analyzer.analyze(img).xyxy, want.xyxy, f"analyze on {name}")
        _same(gallery.identify(img).xyxy, want.xyxy, f"gallery identify on {name}")
        got = [f.box for f in clustered if f.source == str(paths[name])]
        _same(got, want.xyxy, f"cluster on {name}")
        with LiveAnalyzer({}, detector="photo", workers=0) as live:
            for i in range(3):  # a still shown for three frames: tracks confirmed, boxes the detections
                shown = live.process(img, i)
        live_boxes = shown.xyxy[np.lexsort((shown.xyxy[:, 1], shown.xyxy[:, 0]))]
        want_boxes = want.xyxy[np.lexsort((want.xyxy[:, 1], want.xyxy[:, 0]))]
        _same(live_boxes, want_boxes, f"live on {name}")


def test_the_cli_and_the_service_find_the_same_faces(photos, expected, tmp_path):
    from fastapi.testclient import TestClient

    from faceforge.cli.main import app
    from faceforge.service import create_app

    imgs, paths = photos
    out = tmp_path / "det.jsonl"
    r = CliRunner().invoke(app, ["detect", *map(str, paths.values()), "--jsonl", str(out), "--workers", "1"])
    assert r.exit_code == 0, r.output
    rows = {json.loads(line)["file"]: json.loads(line) for line in out.read_text().splitlines()}
    with TestClient(create_app(home=tmp_path / "home", run_jobs=False)) as client:
        for name, p in paths.items():
            _same([f["box"] for f in rows[str(p)]["faces"]], expected[name].xyxy, f"CLI detect on {name}")
            res = client.post("/api/detect", files={"file": (p.name, p.read_bytes(), "image/png")})
            assert res.status_code == 200, res.text
            _same([f["box"] for f in res.json()["faces"]], expected[name].xyxy, f"service detect on {name}")
            res = client.post("/api/analyze", data={"attributes": "gender"},
                              files={"file": (p.name, p.read_bytes(), "image/png")})
            assert res.status_code == 200, res.text
            _same([f["box"] for f in res.json()["faces"]], expected[name].xyxy, f"service analyze on {name}")


def test_every_face_model_follows_the_protocol_and_shares_embeddings(astronaut, tmp_path):
    """Classifiers, galleries and attributes are FaceModels; models of one embedder embed once."""
    from faceforge.attributes import load_attribute
    from faceforge.gallery import Gallery
    from faceforge.pipeline import run_models
    from faceforge.types import FaceModel

    gallery = Gallery(tmp_path / "g.db")
    gallery.enrol("eileen", [astronaut])
    gender, age, emotion = (load_attribute(a) for a in ("gender", "age", "emotion"))
    models = {"gender": gender, "age": age, "emotion": emotion, "who": gallery}
    assert all(isinstance(m, FaceModel) for m in models.values())
    assert gender.embedding_key == age.embedding_key == "agegender" and gallery.embedding_key == "dlib-resnet"
    assert emotion.embedding_key is None

    faces = FaceFinder("photo").find(astronaut)
    out = run_models(astronaut, faces, models)
    assert set(out.embeddings) == {"agegender", "dlib-resnet"}  # two embedders, four models
    assert set(out.predictions) == set(models) and out.predictions["who"][0].label == "eileen"
    # a model reads the shared embedding: the same answer as embedding on its own
    alone = gender.predict_faces(astronaut, faces)[0]
    assert out.predictions["gender"][0].label == alone.label
    assert abs(out.predictions["gender"][0].score - alone.score) < 1e-6
