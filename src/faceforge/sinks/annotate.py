"""Drawing faces onto images (returns a new image; the input is never modified)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from faceforge.types import Faces

_COLOURS = [(0, 200, 0), (255, 128, 0), (0, 160, 255), (220, 0, 220), (255, 220, 0), (0, 220, 220)]
_LM_COLOURS = [(255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 0, 255), (0, 255, 255)]


def annotate(image: np.ndarray, faces: Faces, labels: Sequence[str] | None = None,
             show_score: bool = True, landmarks: bool = True) -> np.ndarray:
    """Draw boxes, landmarks and labels.

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        faces: faces in ``image``'s coordinates.
        labels: optional text per face (e.g. ``"alice 0.93"``).
        show_score: append the detector score when no label is given.
        landmarks: draw the 5 landmarks.

    Returns:
        A new ``(H, W, 3) uint8`` RGB image.
    """
    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    thick = max(1, round(max(h, w) / 400))
    font = max(0.4, max(h, w) / 1400)
    for i in range(len(faces)):
        colour = _COLOURS[i % len(_COLOURS)]
        x1, y1, x2, y2 = [int(round(v)) for v in faces.xyxy[i]]
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick, cv2.LINE_AA)
        if landmarks and faces.has_landmarks[i]:
            r = max(1, thick + 1)
            for (px, py), c in zip(faces.landmarks[i], _LM_COLOURS):
                cv2.circle(out, (int(round(px)), int(round(py))), r, c, -1, cv2.LINE_AA)
        text = labels[i] if labels is not None else (f"{faces.score[i]:.2f}" if show_score else "")
        if text:
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, max(1, thick))
            ty = y1 - 4 if y1 - th - 6 >= 0 else min(h - 1, y2 + th + 4)
            cv2.rectangle(out, (x1, ty - th - base), (x1 + tw + 4, ty + base // 2), colour, -1)
            cv2.putText(out, text, (x1 + 2, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255),
                        max(1, thick), cv2.LINE_AA)
    return out
