"""OpenCV's Viola-Jones frontal-face cascade: the classic tutorial baseline (no landmarks)."""

from __future__ import annotations

import cv2
import numpy as np

from faceforge.detectors.base import Detector
from faceforge.errors import ParameterError
from faceforge.registry import weight_path
from faceforge.types import Faces


class HaarDetector(Detector):
    """Haar cascade with the original tutorials' parameters.

    Args:
        scale_factor: image-pyramid step (1.3 as in the tutorials). Lowering it towards
            1.05 finds more faces, slower.
        min_neighbors: overlapping hits needed to accept a face (5). Raising it gives fewer
            false positives and more misses.
        min_size: smallest face in pixels.

    The cascade gives no confidence; every face scores 1.0 and ``min_score`` is ignored.
    """

    name = "haar"

    def __init__(self, min_score: float = 0.5, scale_factor: float = 1.3, min_neighbors: int = 5,
                 min_size: int = 20) -> None:
        super().__init__(min_score)
        if scale_factor <= 1.0:
            raise ParameterError(f"scale_factor must be > 1.0, got {scale_factor}")
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = int(min_size)
        self._cascade = cv2.CascadeClassifier(str(weight_path("haar")))
        if self._cascade.empty():
            raise ParameterError(f"OpenCV could not load the cascade at {weight_path('haar')}")

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
