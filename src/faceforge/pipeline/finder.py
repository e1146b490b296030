"""The one face finder: every entry point that looks for faces in a photo or a frame uses it.

detect -> upscale small images -> crops mode (whole-image fallback) -> minimum face size ->
main face first. Training, classification, analysis, galleries, ``embed``, ``verify``,
``cluster``, live video and the HTTP service all find faces here, so a photo is seen the same
way by every command.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from faceforge._quality import DEFAULT_QUALITY, check_quality
from faceforge.detectors import DEFAULT_PHOTO_DETECTOR, Detector, detector_for
from faceforge.errors import ParameterError
from faceforge.types import Faces

#: Images whose shorter side is below this many pixels are upscaled to it (bicubic) before
#: detection. Measured with yunet on 300 random images of each set (benchmark in the report of
#: issue 3): FER2013 48x48 faces found 82% -> 96%; AT&T 92x112 and UTKFace 200x200 100% either way;
#: 25x25 LFW crops 1 in 40 -> 40 in 40 (issue 12).
UPSCALE = 160

#: Crop modes: ``"auto"`` (no face found -> the whole image is the face, for photos that are
#: face crops), ``True`` (always the whole image), ``False`` (no face -> no faces).
CROPS = ("auto", True, False)


def check_crops(crops: Any) -> str | bool:
    """``crops`` normalised (``"always"``/``"never"`` accepted), or :class:`ParameterError`."""
    crops = {"always": True, "never": False}.get(crops, crops) if isinstance(crops, str) else crops
    if not (crops is True or crops is False or crops == "auto"):
        raise ParameterError(f"crops must be 'auto', True (always the whole image) or False (drop images "
                             f"without a face), got {crops!r}")
    return crops


class FaceFinder:
    """Find the faces of an image with the rules every faceforge command shares.

    Args:
        detector: detector name (``"photo"``: yunet, ``"live"``: blazeface.full, or any of
            :func:`faceforge.detectors.available_detectors`) or a detector instance.
        crops: ``"auto"``, True or False (see :data:`CROPS`).
        min_face: drop faces whose box is shorter than this many pixels (of the original image).
            Raising it ignores small background faces; lowering it keeps them.
        upscale: images whose shorter side is below this are upscaled to it before detection
            (small face crops are found far more often); None never upscales.
        detector_options: options for :func:`faceforge.detectors.get_detector` (``min_score``...).
        quality: ``"fast"`` (default) or ``"accurate"``: the photo detector (yunet) runs on the
            photo and the photo enlarged (the registry's views), fused, with a threshold chosen for the
            fast default's false-positive rate (:mod:`faceforge.detectors.tta`); more small faces
            found for several times the detection time. Detectors without accurate views in the
            registry are used as they are. A detector instance is used as it is.

    Example:
        >>> from skimage import data
        >>> faces = FaceFinder().find(data.astronaut())
        >>> len(faces), faces.landmarks.shape
        (1, (1, 5, 2))
    """

    def __init__(self, detector: str | Detector = DEFAULT_PHOTO_DETECTOR, *, crops: Any = False,
                 min_face: float = 0.0, upscale: int | None = UPSCALE,
                 detector_options: dict[str, Any] | None = None, quality: str = DEFAULT_QUALITY) -> None:
        self.quality = check_quality(quality)
        if upscale is not None and (isinstance(upscale, bool) or not isinstance(upscale, int) or upscale < 1):
            raise ParameterError(f"upscale must be a positive number of pixels or None, got {upscale!r}")
        if float(min_face) < 0:
            raise ParameterError(f"min_face must be >= 0 pixels, got {min_face}")
        self._detector_arg = detector
        self._detector_options = dict(detector_options or {})
        self.crops = check_crops(crops)
        self.min_face = float(min_face)
        self.upscale = upscale

    @property
    def detector(self) -> Detector:
        """The detector (built on first use, shared within the process)."""
        if isinstance(self._detector_arg, str):
            self._detector_arg = detector_for(self._detector_arg, self.quality, **self._detector_options)
        return self._detector_arg

    @property
    def detector_name(self) -> str:
        """The detector's resolved name (``"photo"`` -> ``"yunet"``) without building it."""
        if isinstance(self._detector_arg, str):
            from faceforge.detectors import resolve_detector_name

            return resolve_detector_name(self._detector_arg)
        return self._detector_arg.name

    name = detector_name

    def find_scaled(self, image: np.ndarray) -> tuple[Faces, np.ndarray, float]:
        """Faces in the pixels of the image detection ran on (for cutting chips at full detail).

        Args:
            image: ``(H, W, 3) uint8`` RGB.

        Returns:
            ``(faces, det_image, scale)``: ``det_image`` is ``image`` scaled by ``scale`` (upscaled
            when small); faces are in its pixels, main face first (:func:`faceforge.types.main_face_order`),
            with ``data["whole_image"]`` and ``data["faces_found"]``.
        """
        from faceforge.sources import to_rgb_uint8

        img = to_rgb_uint8(image)
        h, w = img.shape[:2]
        if self.crops is not True:
            s, det_img = 1.0, img
            if self.upscale and min(h, w) < self.upscale:
                import cv2

                s = self.upscale / min(h, w)
                det_img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))),
                                     interpolation=cv2.INTER_CUBIC)
            faces = self.detector(det_img)
            if self.min_face > 0 and len(faces):
                faces = faces[np.flatnonzero(np.minimum(faces.width, faces.height) >= self.min_face * s)]
            if len(faces) or self.crops is False:
                n = len(faces)
                return (faces.sorted("main").with_data(whole_image=np.zeros(n, bool), faces_found=np.full(n, n)),
                        det_img, s)
        whole = Faces(np.array([[0, 0, w, h]], np.float32), np.zeros(1, np.float32), None, (w, h), "whole-image",
                      {"whole_image": np.array([True]), "faces_found": np.zeros(1, int)})
        return whole, img, 1.0

    def find(self, image: np.ndarray) -> Faces:
        """Every face of ``image`` (an RGB array; grey, RGBA and PIL images are converted) in its own
        pixels, main face first (see :meth:`find_scaled`)."""
        from faceforge.sources import to_rgb_uint8

        img = to_rgb_uint8(image)
        faces, _, s = self.find_scaled(img)
        return rescale_faces(faces, s, (img.shape[1], img.shape[0]))

    __call__ = find

    def __repr__(self) -> str:
        return (f"FaceFinder(detector={self.detector_name!r}, crops={self.crops!r}, min_face={self.min_face}, "
                f"upscale={self.upscale}" + ("" if self.quality == DEFAULT_QUALITY else f", quality={self.quality!r}")
                + ")")


def rescale_faces(faces: Faces, scale: float, image_size: tuple[int, int]) -> Faces:
    """``faces`` found on an image scaled by ``scale``, in the original image's pixels."""
    if scale == 1.0:
        return faces.replace(image_size=image_size)
    return faces.replace(xyxy=faces.xyxy / scale, landmarks=faces.landmarks / scale, image_size=image_size)
