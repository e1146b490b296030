"""Facial expression from the 7-class mini-Xception shipped in ``fer`` (MIT), run with LiteRT.

The network was trained on FER2013 (48x48 grey faces, upscaled to 64x64). ``fer`` feeds it the
Haar cascade's square box grown by 10 px a side, grey, resized to 64x64 and scaled to [-1, 1]; we
do the same from our detections (a square crop of :data:`MARGIN` times the box: yunet boxes are
already larger than the inner face). Whole-image faces
(photos that are already face crops, like FER2013's) are used as they are.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from faceforge.types import Faces

#: Square crop side = MARGIN x the detector's box. On 800 random FER2013 public_test faces
#: (upscaled, found by yunet): 1.0 -> 55.0% accuracy, 1.1 -> 53.3%, 1.2 -> 51.8%, 1.5 -> 44.4%;
#: the 48x48 crop used whole: 55.4%.
MARGIN = 1.0
CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


class EmotionModel:
    """``fer``'s emotion network as a face model: :meth:`predict_faces` gives a prediction per face."""

    name = "emotion"
    task = "classification"
    classes = CLASSES

    def __init__(self, margin: float = MARGIN) -> None:
        self.margin = float(margin)
        self._interp = None
        self._lock = threading.Lock()

    def _interpreter(self):
        if self._interp is None:
            from faceforge.registry import runtime, weight_path

            self._interp = runtime.tflite_interpreter(weight_path("fer-emotion"), threads=1)
            self._in = self._interp.get_input_details()[0]
            self._out = self._interp.get_output_details()[0]
        return self._interp

    def crops(self, image: np.ndarray, faces: Faces) -> np.ndarray:
        """``(n, 64, 64) float32`` network inputs in [-1, 1] for ``faces`` of RGB ``image``."""
        import cv2

        from faceforge.align import align_faces

        if not len(faces):
            return np.zeros((0, 64, 64), np.float32)
        # a whole-image face (a photo that is already a face crop) is always alone: use it as it is
        whole = bool(np.any(faces.data.get("whole_image", False)))
        chips = align_faces(image, faces, template="margin", size=64, margin=1.0 if whole else self.margin)
        grey = np.stack([cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) for c in chips])
        return (grey.astype(np.float32) / 255.0 - 0.5) * 2.0

    def predict_proba(self, crops: np.ndarray) -> np.ndarray:
        """``(n, 7)`` probabilities for crops from :meth:`crops`."""
        out = np.zeros((len(crops), len(CLASSES)), np.float32)
        with self._lock:  # one interpreter: not thread-safe
            interp = self._interpreter()
            for i, c in enumerate(crops):
                interp.set_tensor(self._in["index"], c[None, :, :, None].astype(self._in["dtype"]))
                interp.invoke()
                out[i] = interp.get_tensor(self._out["index"])[0]
        s = out.sum(axis=1, keepdims=True)
        return out / np.where(s > 0, s, 1)

    def predict_faces(self, image: np.ndarray, faces: Faces, top_k: int = 3, memo: dict | None = None) -> list[Any]:
        """One :class:`~faceforge.train.Prediction` per face of ``image``."""
        from faceforge.train.classifier import Prediction

        proba = self.predict_proba(self.crops(image, faces))
        k = max(1, min(int(top_k), len(CLASSES)))
        preds = []
        for p in proba:
            order = np.argsort(-p)[:k]
            tops = [(CLASSES[j], float(p[j])) for j in order]
            preds.append(Prediction(tops[0][0], tops[0][1], tops))
        return preds

    def __repr__(self) -> str:
        return f"EmotionModel(fer mini-Xception, margin={self.margin})"
