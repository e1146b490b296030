"""Test-time augmentation of the gender and age models: the chip, its mirror image and small jitters.

The built-in gender and age heads read the ``agegender`` embedding of dlib's 64x64 5-point chip.
:func:`augmented_chips` cuts, per face, the chip and its variants: the mirror image (the chip
flipped left-right) and chips whose image-to-chip affine is perturbed by a small scale, shift or
rotation about the chip centre (as dlib's ``jitter_image`` perturbs a chip, but cut from the
image, so the border holds real pixels). :class:`AugmentedModel` averages the embeddings of the
variants and runs the model's head once on the mean (measured against averaging the heads'
outputs in ``benchmarks/bench_accurate_attributes.py``; docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from faceforge.errors import ParameterError
from faceforge.types import Faces, Prediction, embedding_key

#: One jitter: ``(scale, dx, dy, angle)``: the chip's content scaled by ``scale`` about the chip
#: centre, rotated by ``angle`` degrees and shifted by ``(dx, dy)`` as fractions of the chip side.
Jitter = tuple[float, float, float, float]
#: The identity jitter (the chip itself).
NO_JITTER: Jitter = (1.0, 0.0, 0.0, 0.0)


def jitter_matrix(size: int, jitter: Jitter) -> np.ndarray:
    """``(3, 3)`` chip-to-chip affine of ``jitter`` for a ``size`` x ``size`` chip."""
    s, dx, dy, angle = (float(v) for v in jitter)
    if not s > 0:
        raise ParameterError(f"a jitter's scale must be > 0, got {jitter!r}")
    c = (size - 1) / 2.0
    a = np.deg2rad(angle)
    rot = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    m = np.eye(3)
    m[:2, :2] = rot
    m[:2, 2] = np.array([c, c]) - rot @ np.array([c, c]) + np.array([dx, dy]) * size
    return m


def chip_transforms(image: np.ndarray, faces: Faces, alignment: dict[str, Any]) -> tuple[np.ndarray, int]:
    """The image-to-chip affines ``(n, 2, 3)`` and the chip side of ``alignment`` (an embedder's).

    Raises:
        ParameterError: an alignment template other than ``"dlib5"`` (the built-in attributes' chip).
    """
    if alignment.get("template") != "dlib5":
        raise ParameterError(f"test-time augmentation cuts dlib5 chips (the agegender embedder's), but the "
                             f"model's alignment is {alignment!r}; use quality='fast' for this model")
    from faceforge.align.dlib_chip import dlib5_transforms

    size = int(alignment.get("size") or 150)
    margin = alignment.get("margin")
    return dlib5_transforms(image, faces, size, 0.25 if margin is None else float(margin)), size


def augmented_chips(image: np.ndarray, matrices: np.ndarray, size: int, flip: bool = True,
                    jitters: Sequence[Jitter] = ()) -> np.ndarray:
    """Every face's chip variants, ``(n, v, size, size, 3) uint8``.

    Variant 0 is the chip itself (what ``quality="fast"`` embeds); then each jitter's chip; with
    ``flip``, the mirror image of each of those follows (``v = (1 + len(jitters)) * (1 + flip)``).

    Args:
        image: ``(H, W, 3) uint8`` RGB the affines map from.
        matrices: ``(n, 2, 3)`` image-to-chip affines (:func:`chip_transforms`).
        size: chip side.
        flip: add the mirror image of every chip.
        jitters: perturbations (:data:`Jitter`) of the affine, in chip coordinates.
    """
    from faceforge.align.core import warp_chips

    mats = np.asarray(matrices, np.float64).reshape(-1, 2, 3)
    n = len(mats)
    sets = [warp_chips(image, mats, size)]
    for j in jitters:
        p = jitter_matrix(size, j)
        full = np.concatenate([mats, np.tile([[[0.0, 0.0, 1.0]]], (n, 1, 1))], axis=1)
        sets.append(warp_chips(image, (p @ full)[:, :2], size))
    if flip:
        sets += [c[:, :, ::-1] for c in sets]
    return np.ascontiguousarray(np.stack(sets, axis=1))


#: What ``quality="accurate"`` averages for gender and age: the chip, its rotations by -5 and +5
#: degrees, and the mirror images of the three (6 chips). Chosen on development data
#: (out-of-fold heads on the 3,904 UTKFace training photos, benchmarks/bench_accurate_attributes.py):
#: age MAE 5.85 -> 5.62, gender 87.3% -> 87.8%, at about 2.5x the cost of gender + age per face;
#: the mirror alone gives 5.75 / 87.7% at 1.5x, all 8 jitters + mirror 5.58 / 87.9% at ~8x.
ACCURATE_FLIP = True
ACCURATE_JITTERS: tuple[Jitter, ...] = ((1.0, 0.0, 0.0, -5.0), (1.0, 0.0, 0.0, 5.0))


class AugmentedModel:
    """A face model on the ``agegender`` chip whose embedding is the mean over the chip's variants.

    Wraps a :class:`~faceforge.train.FaceClassifier` whose embedder cuts dlib5 chips (the built-in
    gender and age models): :meth:`embed` averages the embeddings of :func:`augmented_chips`'
    variants and the wrapped head reads the mean. Models wrapped with the same embedder and
    variants share one :attr:`embedding_key`, so gender and age embed the variants once.

    Args:
        model: the classifier.
        flip: add the mirror image.
        jitters: perturbations of the chip (:data:`Jitter`).
    """

    def __init__(self, model: Any, flip: bool = ACCURATE_FLIP, jitters: Sequence[Jitter] = ACCURATE_JITTERS) -> None:
        self.model = model
        self.flip = bool(flip)
        self.jitters: tuple[Jitter, ...] = tuple(tuple(float(v) for v in j) for j in jitters)  # type: ignore[misc]
        for j in self.jitters:
            jitter_matrix(8, j)  # validates now
        self.task = model.task
        self.name = getattr(model, "name", "model")
        pipe = model.pipeline
        self._alignment = {**pipe.embedder.alignment, **pipe.alignment}
        if self._alignment.get("template") != "dlib5":
            raise ParameterError(f"test-time augmentation cuts dlib5 chips, but {self.name!r} uses the alignment "
                                 f"{self._alignment!r}; run it with quality='fast'")

    @property
    def embedding_key(self) -> str:
        """The wrapped model's key with the variants appended (never shared with the fast embedding)."""
        m = self.model.manifest
        return (f"{embedding_key(m['embedder'], m.get('alignment'))}|tta:flip={int(self.flip)},"
                f"jitters={list(self.jitters)}")

    def embed(self, image: np.ndarray, faces: Faces) -> np.ndarray:
        """``(n, d)`` mean embedding of each face's chip variants (in RGB ``image``'s pixels)."""
        emb = self.model.pipeline.embedder
        if not len(faces):
            return np.zeros((0, emb.dim), np.float32)
        mats, size = chip_transforms(image, faces, self._alignment)
        chips = augmented_chips(image, mats, size, self.flip, self.jitters)
        n, v = chips.shape[:2]
        out = np.asarray(emb.embed(chips.reshape(n * v, size, size, 3)), np.float64)
        return out.reshape(n, v, -1).mean(axis=1).astype(np.float32)

    def predict_faces(self, image: np.ndarray, faces: Faces, top_k: int = 3) -> list[Prediction]:
        """Predictions of the wrapped head on the mean embedding (computed here unless the record has it)."""
        emb = faces.embeddings.get(self.embedding_key)
        if emb is None:
            emb = self.embed(image, faces)
        return self.model.predict_embeddings(emb, top_k)

    def __repr__(self) -> str:
        return f"AugmentedModel({self.model!r}, flip={self.flip}, jitters={list(self.jitters)})"
