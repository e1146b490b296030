"""YuNet-style CNN from libfacedetection, compiled into the ``yuface`` wheel (5 landmarks)."""

from __future__ import annotations

import os
import threading

import cv2
import numpy as np

from faceforge.detectors.base import Detector, scale_faces
from faceforge.errors import ParameterError
from faceforge.registry import is_installed, require
from faceforge.types import Faces


class YuNetDetector(Detector, spec="yunet"):
    """libfacedetection's CNN (the photo default: best recall on small faces).

    Args:
        min_score: drop faces scoring below this (0-1). Raising it lowers false positives
            and recall.
        max_size: images whose longer side exceeds this are shrunk to it before detection
            (the network's cost grows with pixels; faces smaller than ~10 px after shrinking
            are lost). ``None`` never shrinks.
        landmarks: ``"onet"`` refines the 5 landmarks with MTCNN's O-Net (YuNet's own barely
            follow in-plane rotation; O-Net's do, for ~1 ms a face); ``"raw"`` keeps YuNet's.
            Falls back to ``"raw"`` when facenet-pytorch (O-Net's weights) is not installed.

    Example:
        >>> from skimage import data
        >>> faces = YuNetDetector()(data.astronaut())
        >>> len(faces)
        1
    """

    def __init__(self, min_score: float = 0.5, max_size: int | None = 1280, landmarks: str = "onet") -> None:
        super().__init__(min_score)
        if landmarks not in ("onet", "raw"):
            raise ParameterError(f"landmarks must be 'onet' or 'raw', got {landmarks!r}")
        self._refine = None
        if landmarks == "onet" and is_installed("mtcnn.onet"):
            from faceforge.detectors.mtcnn import OnetLandmarks

            self._refine = OnetLandmarks()
        self.landmarks = "onet" if self._refine is not None else "raw"
        if max_size is not None and max_size < 64:
            raise ParameterError(f"max_size must be >= 64 pixels or None, got {max_size}")
        self.max_size = max_size
        require("yunet")
        # yuface runs OpenMP threads; busy-waiting ones steal the cores from everything else
        # (measured 5-10x slower detection when other work shares the 2 cores). Must be set
        # before yuface's own libgomp initialises, i.e. before the first import.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import yuface

        self._c_detect = yuface.c_detect
        self._lock = threading.Lock()  # the C library keeps global buffers

    def _detect(self, image: np.ndarray) -> Faces:
        h, w = image.shape[:2]
        scale = 1.0
        if self.max_size and max(h, w) > self.max_size:
            scale = self.max_size / max(h, w)
            image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        with self._lock:
            raw = np.asarray(self._c_detect(bgr))
        if raw.size == 0:
            return Faces.empty()
        raw = raw.astype(np.float32)
        score = raw[:, 0] / 100.0
        keep = score >= self.min_score
        raw, score = raw[keep], score[keep]
        x, y, bw, bh = raw[:, 1], raw[:, 2], raw[:, 3], raw[:, 4]
        xyxy = np.stack([x, y, x + bw, y + bh], axis=1)
        lm = raw[:, 5:15].reshape(-1, 5, 2)
        faces = Faces(xyxy, score, lm)
        if self._refine is not None:
            faces = self._refine(image, faces)
        if scale != 1.0:
            faces = scale_faces(faces, 1 / scale, 1 / scale)
        return faces
