"""Verification: are the main faces of two images the same person?"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from faceforge.pipeline.core import FacePipeline, ImageLike
from faceforge.types import Faces


@dataclass(frozen=True)
class Verification:
    """The answer to "are these two faces the same person?".

    Attributes:
        same: ``distance <= threshold``.
        distance: distance between the two main faces' embeddings (embedder's metric).
        threshold: the decision threshold used. Lowering it makes "same" stricter (fewer false
            accepts, more false rejects).
        embedder: the embedder's name.
        faces: the main face found in each image.
    """

    same: bool
    distance: float
    threshold: float
    embedder: str
    faces: tuple[Faces, Faces]

    def to_dict(self) -> dict[str, Any]:
        return {"same": self.same, "distance": round(self.distance, 4), "threshold": self.threshold,
                "embedder": self.embedder,
                "faces": [self.faces[0].to_dicts()[0], self.faces[1].to_dicts()[0]]}


def verify(a: ImageLike, b: ImageLike, threshold: float | None = None,
           pipeline: FacePipeline | None = None) -> Verification:
    """Decide whether the main faces of two images are the same person.

    Args:
        a, b: images (paths, bytes or arrays).
        threshold: distance threshold (default: the embedder's, 0.6 for ``dlib-resnet``).
        pipeline: the pipeline to use (default yunet + dlib-resnet).

    Raises:
        ImageError: an image is unreadable or holds no face.
    """
    pipe = pipeline or FacePipeline()
    fa, ea = pipe.main_face(a, _name(a, "first image"))
    fb, eb = pipe.main_face(b, _name(b, "second image"))
    emb = pipe.embedder
    thr = float(threshold if threshold is not None else (emb.threshold or 0.6))
    d = float(emb.distance(ea[None], eb[None])[0])
    return Verification(d <= thr, d, thr, emb.name, (fa, fb))


def _name(x: Any, default: str) -> str:
    return str(x) if isinstance(x, (str, os.PathLike)) else default
