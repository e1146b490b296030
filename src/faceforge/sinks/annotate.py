"""Drawing faces onto images (returns a new image; the input is never modified)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from faceforge.types import Faces

_COLOURS = [(0, 200, 0), (255, 128, 0), (0, 160, 255), (220, 0, 220), (255, 220, 0), (0, 220, 220)]
_LM_COLOURS = [(255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 0, 255), (0, 255, 255)]
#: colour of a coasting box (a live track whose face was not detected in this frame)
COASTING_COLOUR = (150, 150, 150)


def _dashed_rectangle(img: np.ndarray, p1: tuple[int, int], p2: tuple[int, int], colour: tuple[int, int, int],
                      thick: int) -> None:
    """A dashed rectangle (dashes about 4x the line width), drawn in place on ``img``."""
    (x1, y1), (x2, y2) = p1, p2
    dash = max(4, 4 * thick)
    for a, b, fixed, horizontal in ((x1, x2, y1, True), (x1, x2, y2, True), (y1, y2, x1, False), (y1, y2, x2, False)):
        for s in range(min(a, b), max(a, b), 2 * dash):
            e = min(s + dash, max(a, b))
            q1, q2 = ((s, fixed), (e, fixed)) if horizontal else ((fixed, s), (fixed, e))
            cv2.line(img, q1, q2, colour, thick, cv2.LINE_AA)


def annotate(image: np.ndarray, faces: Faces, labels: Sequence[str] | None = None,
             show_score: bool = True, landmarks: bool = True,
             coasting: Sequence[bool] | np.ndarray | None = None) -> np.ndarray:
    """Draw boxes, landmarks and labels.

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        faces: faces in ``image``'s coordinates.
        labels: optional text per face (e.g. ``"alice 0.93"``).
        show_score: append the detector score when no label is given.
        landmarks: draw the 5 landmarks.
        coasting: per face, whether it is a live track coasting (not detected in this frame):
            drawn dashed and grey, its label too. Default: ``faces.data["coasting"]`` when present.

    Returns:
        A new ``(H, W, 3) uint8`` RGB image.
    """
    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    thick = max(1, round(max(h, w) / 400))
    font = max(0.4, max(h, w) / 1400)
    if coasting is None:
        coasting = faces.data.get("coasting")
    lost = np.zeros(len(faces), bool) if coasting is None else np.asarray(coasting, bool)
    for i in range(len(faces)):
        colour = COASTING_COLOUR if lost[i] else _COLOURS[i % len(_COLOURS)]
        x1, y1, x2, y2 = [int(round(v)) for v in faces.xyxy[i]]
        if lost[i]:
            _dashed_rectangle(out, (x1, y1), (x2, y2), colour, thick)
        else:
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
