"""Cydral age / gender features (agegender embedder) on real faces."""

import numpy as np
import pytest

from faceforge.embedders import get_embedder
from faceforge.embedders.agegender import LAYOUT, expected_age, gender_proba
from faceforge.pipeline import FacePipeline


@pytest.fixture(scope="module")
def pipe():
    return FacePipeline("photo", "agegender")


def test_astronaut_is_an_adult_woman(pipe, astronaut):
    faces = pipe.embed(astronaut)
    assert len(faces) == 1
    e = faces.embedding
    assert e.shape == (1, 99) and e.dtype == np.float32
    assert gender_proba(e)[0, 0] > 0.8                  # female
    assert 25 <= expected_age(e)[0] <= 60                # Eileen Collins was about 40
    probs = e[0, LAYOUT["age_probs"]]
    assert abs(probs.sum() - 1) < 1e-3 and (probs >= 0).all()


def test_flip_gives_nearly_the_same_answer(pipe, astronaut):
    a = pipe.embed(astronaut).embedding
    b = pipe.embed(np.ascontiguousarray(astronaut[:, ::-1])).embedding
    assert abs(expected_age(a)[0] - expected_age(b)[0]) < 8
    assert np.argmax(gender_proba(a)) == np.argmax(gender_proba(b))


def test_bad_chips_are_refused():
    emb = get_embedder("agegender")
    with pytest.raises(Exception, match="64"):
        emb.embed(np.zeros((1, 32, 32, 3), np.uint8))
    assert emb.embed(np.zeros((0, 64, 64, 3), np.uint8)).shape == (0, 99)


def test_gendernet_is_the_small_fast_half(astronaut):

    full = FacePipeline("photo", "agegender").embed(astronaut).embedding
    small = FacePipeline("photo", "gendernet").embed(astronaut).embedding
    assert small.shape == (1, 18)
    # exactly the gender half of agegender (same chip, same network)
    assert np.allclose(small[0], full[0, :18], atol=1e-4)
    assert np.argmax(small[0, 16:18]) == 0  # female
