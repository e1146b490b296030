"""OpenCV's Viola-Jones frontal-face cascade: the classic tutorial baseline (no landmarks)."""

from __future__ import annotations

import cv2
import numpy as np

from faceforge.detectors.base import Detector
from faceforge.errors import ParameterError
from faceforge.registry import get_spec, weight_path
from faceforge.types import Faces

#: The cascade's default parameters (the original tutorials'), from the registry.
_DEFAULTS = get_spec("haar").options


class HaarDetector(Detector, spec="haar"):
    """Haar cascade with the original tutorials' parameters.

    Args:
        scale_factor: image-pyramid step (default from the registry: 1.3, as in the tutorials).
            Lowering it towards 1.05 finds more faces, slower.
        min_neighbors: overlapping hits needed to accept a face (default 5). Raising it gives
            fewer false positives and more misses.
        min_size: smallest face in pixels (default 20).

    The cascade gives no confidence; every face scores 1.0 and ``min_score`` is ignored.
    """

    def __init__(self, min_score: float = 0.5, scale_factor: float = _DEFAULTS["scale_factor"],
                 min_neighbors: int = _DEFAULTS["min_neighbors"], min_size: int = _DEFAULTS["min_size"]) -> None:
        super().__init__(min_score)
        if scale_factor <= 1.0:
            raise ParameterError(f"scale_factor must be > 1.0, got {scale_factor}")
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = int(min_size)
        path = weight_path(self.name)
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise ParameterError(f"OpenCV could not load the cascade at {path}")

    def _detect(self, image: np.ndarray) -> Faces:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        rects = self._cascade.detectMultiScale(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
        )
        if len(rects) == 0:
            return Faces.empty()
        r = np.asarray(rects, np.float32).reshape(-1, 4)
        xyxy = np.stack([r[:, 0], r[:, 1], r[:, 0] + r[:, 2], r[:, 1] + r[:, 3]], axis=1)
        return Faces(xyxy, np.ones(len(r), np.float32))
