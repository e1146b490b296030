"""The public facade: detect -> align -> embed and verify on real images."""

import numpy as np
import pytest

import faceforge
from conftest import shared_path
from faceforge.errors import ImageError
from faceforge.pipeline import FacePipeline


def test_facade_detect_embed_verify(astronaut, tmp_path):
    from PIL import Image

    faces = faceforge.detect(astronaut)
    assert len(faces) == 1 and faces.has_landmarks.all()
    emb = faceforge.embed(astronaut)
    assert emb.embedding.shape == (1, 128) and emb.embedding.dtype == np.float32
    Image.fromarray(astronaut[:, ::-1]).save(tmp_path / "mirror.jpg")
    v = faceforge.verify(astronaut, tmp_path / "mirror.jpg")
    assert v.same and v.distance < 0.4 and v.threshold == 0.6 and v.embedder == "dlib-resnet"


def test_alignment_override_changes_chips_not_identity(astronaut):
    a = FacePipeline("yunet", "dlib-resnet", alignment="dlib5").embed(astronaut).embedding
    b = FacePipeline("yunet", "dlib-resnet", alignment="dlib150").embed(astronaut).embedding
    c = FacePipeline("yunet", "dlib-resnet", alignment="arcface112").embed(astronaut).embedding
    assert not np.allclose(a, b)
    # dlib150 (our landmarks) approximates dlib's own chip; arcface112 framing is what the
    # network was not trained on, so it moves the embedding much further.
    assert np.linalg.norm(a - b) < 0.3 < np.linalg.norm(a - c)


def test_whole_image_fallback_for_tight_crops(coffee):
    from skimage import data

    det = faceforge.get_detector("yunet")
    lfw = (data.lfw_subset()[:100] * 255).astype(np.uint8)  # 25x25 face crops shipped in scikit-image
    crop = next(im for im in lfw if not len(det(im)))  # one the detector cannot find at 25x25 ...
    pipe = FacePipeline("yunet", "dlib-resnet", whole_image_fallback=True)
    faces = pipe.embed(crop)  # ... but the face finder does: small images are upscaled first
    assert len(faces) == 1 and faces.detector == "yunet" and not faces.whole_image.any()
    assert (faces.xyxy[0, 2:] <= 26).all() and faces.image_size == (25, 25)  # boxes in the crop's pixels
    faces = pipe.embed(coffee)  # no face at all: the whole image is the face
    assert len(faces) == 1 and faces.detector == "whole-image" and faces.whole_image.all()
    with pytest.raises(ImageError, match="no face found"):
        FacePipeline("yunet", "dlib-resnet").main_face(coffee, "coffee.jpg")


def test_effnet_pipeline_margin_chips(astronaut):
    faces = FacePipeline("yunet", "effnet-lite0").embed(astronaut)
    assert faces.embedding.shape == (1, 1280)


def test_identities_separate_on_real_people():
    root = shared_path("identity", "knn_examples", "train")
    pipe = FacePipeline()
    embs = {}
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(person.iterdir())[:2]:
            embs.setdefault(person.name, []).append(pipe.main_face(f, str(f))[1])
    names = list(embs)
    same = [np.linalg.norm(v[0] - v[1]) for v in embs.values() if len(v) == 2]
    diff = [np.linalg.norm(embs[a][0] - embs[b][0]) for i, a in enumerate(names) for b in names[i + 1:]]
    assert same and max(same) < 0.6 < min(diff)
