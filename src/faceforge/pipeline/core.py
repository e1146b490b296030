"""The face pipeline: find -> align -> embed, and face models run on the faces found."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from faceforge._quality import DEFAULT_QUALITY, check_quality
from faceforge.align import align_faces
from faceforge.detectors import DEFAULT_PHOTO_DETECTOR, Detector
from faceforge.embedders import DEFAULT_EMBEDDER, Embedder, get_embedder
from faceforge.embedders.tta import tta_for
from faceforge.errors import ImageError, ParameterError
from faceforge.pipeline.finder import UPSCALE, FaceFinder, rescale_faces
from faceforge.sources import load_image
from faceforge.types import FaceModel, Faces, embedding_key

ImageLike = Any  # path, bytes, numpy array or PIL image


class FacePipeline:
    """Find, align and embed faces with one object; models load on first use.

    Args:
        detector: a detector name (see :func:`faceforge.detectors.available_detectors`) or instance.
        embedder: an embedder name or instance (``None`` for detection only).
        min_face: ignore faces whose box is shorter than this many pixels.
        whole_image_fallback: when no face is found, treat the whole image as the face (for
            photos that are already tight face crops); such faces have ``data["whole_image"]``
            True. Same as ``crops="auto"``.
        detector_options: options passed to the detector (e.g. ``{"min_score": 0.7}``).
        alignment: override the embedder's alignment: a template name (``"dlib5"``,
            ``"dlib150"``, ``"arcface112"``, ``"margin"``) or a dict with ``template``, ``size``
            and ``margin``. Default: what the embedder was trained with.
        crops: the finder's crop mode (``"auto"``, True, False); overrides ``whole_image_fallback``.
        upscale: see :class:`~faceforge.pipeline.finder.FaceFinder`.
        finder: a ready :class:`FaceFinder` (then ``detector``, ``min_face``, ``crops`` and
            ``upscale`` are ignored).
        quality: ``"fast"`` (default: one embedding per chip) or ``"accurate"``: the finder's
            accurate detection (see :class:`~faceforge.pipeline.finder.FaceFinder`), and each chip and its
            mirror image are embedded and averaged (:mod:`faceforge.embedders.tta`), about twice
            the embedding time (~1.35x per face with detection), for more same-person pairs
            accepted at a given false-accept rate (docs/benchmarks.md, "Accurate identity
            (issue 19)"). Accurate embeddings are a different embedding: they have their own
            :attr:`embedding_key`, and never mix with fast ones in caches, galleries or models.

    Raises:
        ParameterError: an unknown ``quality``.

    Example:
        >>> from skimage import data
        >>> pipe = FacePipeline("yunet", "dlib-resnet")
        >>> faces = pipe.embed(data.astronaut())
        >>> faces.embedding.shape
        (1, 128)
    """

    def __init__(self, detector: str | Detector = DEFAULT_PHOTO_DETECTOR,
                 embedder: str | Embedder | None = DEFAULT_EMBEDDER, min_face: float = 0.0,
                 whole_image_fallback: bool = False, detector_options: dict[str, Any] | None = None,
                 alignment: str | dict[str, Any] | None = None, *, crops: Any = None,
                 upscale: int | None = UPSCALE, finder: FaceFinder | None = None,
                 quality: str = DEFAULT_QUALITY) -> None:
        self.quality = check_quality(quality)
        if crops is None:
            crops = "auto" if whole_image_fallback else False
        self.finder = finder or FaceFinder(detector, crops=crops, min_face=min_face, upscale=upscale,
                                           detector_options=detector_options, quality=self.quality)
        self.alignment = {"template": alignment} if isinstance(alignment, str) else dict(alignment or {})
        self._embedder_arg = embedder

    @property
    def detector(self) -> Detector:
        return self.finder.detector

    @property
    def embedder(self) -> Embedder:
        if self._embedder_arg is None:
            raise ParameterError("This pipeline has no embedder; create it with embedder='dlib-resnet'.")
        if isinstance(self._embedder_arg, str):
            self._embedder_arg = get_embedder(self._embedder_arg)
        return self._embedder_arg

    @property
    def embedding_key(self) -> str:
        """Key of this pipeline's embeddings in :attr:`Faces.embeddings`.

        See :func:`~faceforge.types.embedding_key`.
        """
        name = self._embedder_arg if isinstance(self._embedder_arg, str) else self.embedder.name
        return quality_key(name, self.alignment, self.quality)

    def detect(self, image: ImageLike) -> Faces:
        """Find the faces of an image (path, bytes or array), main face first."""
        return self.finder.find(load_image(image))

    def chips(self, image: np.ndarray, faces: Faces, embedder: Any = None) -> np.ndarray:
        """Aligned chips for ``faces`` as this pipeline's embedder (or ``embedder``) expects them."""
        a = {**(embedder or self.embedder).alignment, **self.alignment}
        return align_faces(image, faces, template=a.get("template", "arcface112"), size=a.get("size"),
                           margin=a.get("margin"), framing=a.get("framing"))

    def embed_chips(self, image: np.ndarray, faces: Faces) -> np.ndarray:
        """``(n, dim) float32`` embeddings of ``faces`` (in ``image``'s pixels).

        A concatenation (:class:`~faceforge.embedders.concat.ConcatEmbedder`) cuts each part's
        chip with that part's alignment and joins the parts' embeddings.
        """
        emb: Any = self.embedder
        if not len(faces):
            return np.zeros((0, emb.dim), np.float32)
        # fast: exactly the call of old (no tta argument), so embedders outside faceforge keep working
        extra = {} if self.quality == "fast" else {"tta": tta_for(self.quality)}
        parts = getattr(emb, "parts", None)
        if parts is not None:
            return emb.combine([np.asarray(p.embed(self.chips(image, faces, p), **extra), np.float32)
                                for p in parts])
        return np.asarray(emb.embed(self.chips(image, faces), **extra), np.float32)

    def embed(self, image: ImageLike, faces: Faces | None = None, main_only: bool = False) -> Faces:
        """Find (unless ``faces`` is given), align and embed every face (or only the main one).

        Chips are cut from the image detection ran on (small images upscaled), so small face
        crops keep their detail; the returned boxes are in the original image's pixels.

        Returns:
            :class:`Faces` with ``embeddings[self.embedding_key]`` (also ``faces.embedding``) of
            shape ``(n, dim) float32``.
        """
        img = load_image(image)
        if faces is not None:
            return faces.with_embeddings(self.embedding_key, self.embed_chips(img, faces))
        found, det_img, s = self.finder.find_scaled(img)
        if main_only:
            found = found[:1]
        found = found.with_embeddings(self.embedding_key, self.embed_chips(det_img, found))
        return rescale_faces(found, s, (img.shape[1], img.shape[0]))

    __call__ = embed

    def main_face(self, image: ImageLike, name: str = "image") -> tuple[Faces, np.ndarray]:
        """The main face of an image (:func:`~faceforge.types.main_face_order`) with its embedding.

        Raises:
            ImageError: no face found (the message names the image and what to try).
        """
        faces = self.embed(image, main_only=True)
        if not len(faces):
            raise ImageError(
                f"{name}: no face found by detector {self.finder.detector_name!r}. Try another detector "
                f"(--detector mtcnn/blazeface.full), a larger image, or --whole-image if it is a face crop."
            )
        return faces, faces.embedding[0]

    # -- as a face model's embedding provider ------------------------------------------------------
    def __repr__(self) -> str:
        return f"FacePipeline({self.finder!r}, embedder={self.embedding_key!r}, quality={self.quality!r})"


def quality_key(embedder: str, alignment: Mapping[str, Any] | str | None = None,
                quality: str = DEFAULT_QUALITY) -> str:
    """The :func:`~faceforge.types.embedding_key` of ``embedder``'s embeddings at quality ``quality``.

    ``"fast"`` gives exactly the key of old (``"dlib-resnet"``); another preset adds itself to the
    key (``'dlib-resnet{"quality":"accurate"}'``), so models and galleries of one preset never read
    the other's embeddings.

    Raises:
        ParameterError: an unknown ``quality``.
    """
    if check_quality(quality) == DEFAULT_QUALITY:
        return embedding_key(embedder, alignment)
    a = {"template": alignment} if isinstance(alignment, str) else dict(alignment or {})
    return embedding_key(embedder, {**a, "quality": quality})


def run_models(image: np.ndarray, faces: Faces, models: Mapping[str, FaceModel], top_k: int = 3) -> Faces:
    """Run several face models on faces already found; each embedding is computed once.

    Models whose :attr:`~faceforge.types.FaceModel.embedding_key` is the same share one
    embedding per face (kept in the returned record's ``embeddings``).

    Args:
        image: ``(H, W, 3) uint8`` RGB; ``faces`` are in its pixels.
        faces: the faces.
        models: name -> face model; each model's predictions go under its name.
        top_k: labels kept per classification model.

    Returns:
        A new :class:`Faces` with ``predictions[name]`` for every model.
    """
    for name, m in models.items():
        key = getattr(m, "embedding_key", None)
        if key and key not in faces.embeddings:
            faces = faces.with_embeddings(key, m.embed(image, faces))
        faces = faces.with_predictions(name, m.predict_faces(image, faces, top_k) if len(faces) else [])
    return faces


def detect(image: ImageLike, detector: str = DEFAULT_PHOTO_DETECTOR, **options: Any) -> Faces:
    """Detect faces in one image with the shared face finder (small images upscaled; main face first).

    Args:
        image: a path, encoded bytes, a numpy array or a PIL image.
        detector: detector name, or ``"photo"`` (default, yunet) / ``"live"`` (blazeface.full).
        **options: detector options, e.g. ``min_score=0.7``.

    Example:
        >>> from skimage import data
        >>> len(detect(data.astronaut()))
        1
    """
    return FaceFinder(detector, detector_options=options).find(load_image(image))


def embed(image: ImageLike, detector: str = DEFAULT_PHOTO_DETECTOR, embedder: str = DEFAULT_EMBEDDER,
          quality: str = DEFAULT_QUALITY) -> Faces:
    """Find and embed every face of one image; embeddings in ``faces.embedding`` (``quality``: see
    :class:`FacePipeline`)."""
    return FacePipeline(detector, embedder, quality=quality).embed(image)
