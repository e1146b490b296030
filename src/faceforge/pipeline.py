"""The face pipeline: detect -> align -> embed, and the verbs built on it (verify)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceforge.align import align_faces
from faceforge.detectors import DEFAULT_PHOTO_DETECTOR, Detector, get_detector
from faceforge.embedders import DEFAULT_EMBEDDER, Embedder, get_embedder
from faceforge.errors import ImageError, ParameterError
from faceforge.sources import load_image
from faceforge.types import Faces

ImageLike = Any  # path, bytes, numpy array or PIL image


class FacePipeline:
    """Detect, align and embed faces with one object; models load on first use.

    Args:
        detector: a detector name (see :func:`faceforge.detectors.available_detectors`) or instance.
        embedder: an embedder name or instance (``None`` for detection only).
        min_face: ignore faces whose box is shorter than this many pixels.
        whole_image_fallback: when no face is found, treat the whole image as the face (for
            photos that are already tight face crops). Such faces get ``data["whole_image"]``.
        alignment: override the embedder's alignment: a template name (``"dlib5"``,
            ``"dlib150"``, ``"arcface112"``, ``"margin"``) or a dict with ``template``, ``size``
            and ``margin``. Default: what the embedder was trained with.
        detector_options: options passed to the detector (e.g. ``{"min_score": 0.7}``).

    Example:
        >>> from skimage import data
        >>> pipe = FacePipeline("yunet", "dlib-resnet")
        >>> faces = pipe.embed(data.astronaut())
        >>> faces.data["embedding"].shape
        (1, 128)
    """

    def __init__(self, detector: str | Detector = DEFAULT_PHOTO_DETECTOR,
                 embedder: str | Embedder | None = DEFAULT_EMBEDDER, min_face: float = 0.0,
                 whole_image_fallback: bool = False, detector_options: dict[str, Any] | None = None,
                 alignment: str | dict[str, Any] | None = None) -> None:
        self._detector_arg = detector
        self.alignment = {"template": alignment} if isinstance(alignment, str) else dict(alignment or {})
        self._detector_options = detector_options or {}
        self._embedder_arg = embedder
        self.min_face = float(min_face)
        self.whole_image_fallback = whole_image_fallback

    @property
    def detector(self) -> Detector:
        if isinstance(self._detector_arg, str):
            self._detector_arg = get_detector(self._detector_arg, **self._detector_options)
        return self._detector_arg

    @property
    def embedder(self) -> Embedder:
        if self._embedder_arg is None:
            raise ParameterError("This pipeline has no embedder; create it with embedder='dlib-resnet'.")
        if isinstance(self._embedder_arg, str):
            self._embedder_arg = get_embedder(self._embedder_arg)
        return self._embedder_arg

    def detect(self, image: ImageLike) -> Faces:
        """Detect faces in an image (path, bytes or array); best score first."""
        img = load_image(image)
        return self._detect(img)

    def _detect(self, img: np.ndarray) -> Faces:
        faces = self.detector(img)
        if self.min_face > 0 and len(faces):
            faces = faces[np.flatnonzero(np.minimum(faces.width, faces.height) >= self.min_face)]
        if not len(faces) and self.whole_image_fallback:
            h, w = img.shape[:2]
            faces = Faces(np.array([[0, 0, w, h]], np.float32), np.zeros(1, np.float32), None, (w, h),
                          "whole-image", {"whole_image": np.array([True])})
        return faces

    def chips(self, image: np.ndarray, faces: Faces) -> np.ndarray:
        """Aligned chips for ``faces`` as this pipeline's embedder expects them."""
        a = {**self.embedder.alignment, **self.alignment}
        return align_faces(image, faces, template=a.get("template", "arcface112"), size=a.get("size"),
                           margin=a.get("margin"))

    def embed(self, image: ImageLike, faces: Faces | None = None) -> Faces:
        """Detect (unless ``faces`` is given), align and embed every face.

        Returns:
            :class:`Faces` with ``data["embedding"]`` of shape ``(n, dim) float32``.
        """
        img = load_image(image)
        if faces is None:
            faces = self._detect(img)
        emb = self.embedder.embed(self.chips(img, faces)) if len(faces) else np.zeros((0, self.embedder.dim), np.float32)
        return faces.with_data(embedding=emb)

    __call__ = embed

    def main_face(self, image: ImageLike, name: str = "image") -> tuple[Faces, np.ndarray]:
        """The largest face of an image with its embedding.

        Raises:
            ImageError: no face found (the message names the image and what to try).
        """
        img = load_image(image)
        faces = self._detect(img)
        if not len(faces):
            raise ImageError(
                f"{name}: no face found by detector {self.detector.name!r}. Try another detector "
                f"(--detector mtcnn/blazeface.full), a larger image, or --whole-image if it is a face crop."
            )
        main = faces.sorted("area")[0]
        emb = self.embedder.embed(self.chips(img, main))[0]
        return main, emb


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


def detect(image: ImageLike, detector: str = DEFAULT_PHOTO_DETECTOR, **options: Any) -> Faces:
    """Detect faces in one image.

    Args:
        image: a path, encoded bytes, a numpy array or a PIL image.
        detector: detector name, or ``"photo"`` (default, yunet) / ``"live"`` (blazeface.full).
        **options: detector options, e.g. ``min_score=0.7``.

    Example:
        >>> from skimage import data
        >>> len(detect(data.astronaut()))
        1
    """
    return get_detector(detector, **options)(load_image(image))


def embed(image: ImageLike, detector: str = DEFAULT_PHOTO_DETECTOR, embedder: str = DEFAULT_EMBEDDER) -> Faces:
    """Detect and embed every face of one image; embeddings in ``faces.data["embedding"]``."""
    return FacePipeline(detector, embedder).embed(image)
