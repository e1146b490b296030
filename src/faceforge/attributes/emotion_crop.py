"""How the emotion networks' face chips are cut from a photo or a video frame.

The networks were trained on FER2013: 48x48 grey faces, upscaled to 64x64 (``cv2.INTER_LINEAR``).
A face cut from a real frame should look like one of those crops: the same framing of the face
(which differs between detectors: yunet's box is near FER2013's square, BlazeFace's box is
smaller and sits lower), the same resolution (48x48, so the chip is cut at 48 with area averaging
and then upscaled exactly as in training) and, optionally, eyes levelled by the landmarks and
the contrast normalised. :class:`CropRecipe` holds these choices; :func:`emotion_chips` applies them.
The defaults were chosen by measurement (``benchmarks/bench_emotion_video.py``; numbers in the
model card ``models/emotion.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

import numpy as np

from faceforge.registry import get_spec
from faceforge.types import Faces

#: FER2013's square as a function of each detector's box: side = margin x max(box side), centre
#: moved down by shift x box height. yunet's box is FER2013's square (on 600 public_test faces
#: re-rendered as video frames: side ratio 1.00, IQR 0.92-1.10, centre offset 0.01 box heights).
#: BlazeFace's square box is smaller and higher than yunet's on real faces (yunet side / BlazeFace
#: side: 1.15 on 76 photo faces, 0.97 on 54 street_1080p faces; 1.29 on the re-rendered FER2013
#: faces, whose chin and forehead are cut off, so that figure was not used): 1.1 and 0.03 higher
#: (measured: FER2013-as-video with the live detector 39.5% -> 40.1%, the hand-labelled photos
#: as video 93.3% -> 95.8%; on the astronaut the two detectors' chips correlate 0.75 -> 0.86).
#: The values live in the registry (``emotion``'s ``framing``), which the expression embedder's
#: chips also follow, so its class scores equal this model's on every detector's faces.
FRAMING: dict[str, tuple[float, float]] = {
    name: (float(m), float(shift)) for name, (m, shift) in get_spec("emotion").input["framing"].items()
}

#: Contrast normalisations: ``none``, ``hist`` (histogram equalisation), ``clahe`` (contrast-limited
#: adaptive equalisation), ``stretch`` (1st-99th percentile to 0-255).
NORMS = ("none", "hist", "clahe", "stretch")


@dataclass(frozen=True)
class CropRecipe:
    """How to cut a face chip for the emotion network.

    Args:
        margin: square side as a multiple of the detector's box, for detectors missing from
            ``framing``.
        shift: vertical move of the square's centre, as a fraction of the box height.
        framing: detector name -> ``(margin, shift)``, overriding the two above for that detector.
        rotate: level the eyes using the face's landmarks (when it has them).
        native: cut the face at FER2013's 48x48 with area averaging, then upscale to the network's
            input with ``INTER_LINEAR`` as the training images were; False cuts at the input
            size directly (bilinear, pre-blurred only beyond 2x).
        norm: contrast normalisation of the grey chip (one of :data:`NORMS`).
    """

    margin: float = 1.0
    shift: float = 0.0
    framing: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    rotate: bool = False
    native: bool = False
    norm: str = "none"

    def with_(self, **changes) -> "CropRecipe":
        """A copy with ``changes``."""
        return replace(self, **changes)

    def frame(self, detector: str) -> tuple[float, float]:
        """``(margin, shift)`` for faces from ``detector``."""
        return tuple(self.framing.get(detector, (self.margin, self.shift)))  # type: ignore[return-value]


def _matrix(box: np.ndarray, landmarks: np.ndarray | None, size: int, margin: float, shift: float,
            rotate: bool) -> np.ndarray:
    from faceforge.align.core import box_transform

    m = box_transform(box, size, margin, shift)
    if not rotate or landmarks is None or not np.all(np.isfinite(landmarks[:2])):
        return m
    (lx, ly), (rx, ry) = landmarks[0], landmarks[1]
    angle = float(np.degrees(np.arctan2(ry - ly, rx - lx)))
    if abs(angle) > 60:  # implausible eye line (a profile face): keep the upright box
        return m
    import cv2

    c = size / 2.0
    rot = cv2.getRotationMatrix2D((c, c), angle, 1.0)  # rotate the chip about its centre
    full = np.vstack([m, [0, 0, 1]])
    return rot @ full


def _normalise(grey: np.ndarray, norm: str) -> np.ndarray:
    import cv2

    if norm == "none":
        return grey
    if norm == "hist":
        return cv2.equalizeHist(grey)
    if norm == "clahe":
        return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4)).apply(grey)
    lo, hi = np.percentile(grey, (1, 99))
    if hi - lo < 8:
        return grey
    return np.clip((grey.astype(np.float32) - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)


def emotion_chips(image: np.ndarray, faces: Faces, size: int, recipe: CropRecipe, whole: bool = False) -> np.ndarray:
    """``(n, size, size) uint8`` grey chips of ``faces`` in RGB ``image``, cut by ``recipe``.

    Args:
        image: ``(H, W, 3) uint8`` RGB, the image the faces were detected in.
        faces: the faces.
        size: the network's input side (64).
        recipe: how to cut.
        whole: the face is the whole image (a photo that is already a face crop): no margin,
            no shift, no rotation.

    Returns:
        The grey chips.
    """
    import cv2

    from faceforge.align.core import warp_chips
    from faceforge.errors import ParameterError

    if recipe.norm not in NORMS:
        raise ParameterError(f"Unknown contrast normalisation {recipe.norm!r}; choose from {', '.join(NORMS)}.")
    if not len(faces):
        return np.zeros((0, size, size), np.uint8)
    cut = 48 if recipe.native else size
    margin, shift = (1.0, 0.0) if whole else recipe.frame(faces.detector)
    lms = faces.landmarks if faces.landmarks is not None else None
    mats = np.stack([_matrix(b, None if lms is None or whole else lms[i], cut, margin, shift, recipe.rotate)
                     for i, b in enumerate(faces.xyxy)])
    out = np.empty((len(faces), size, size), np.uint8)
    for i, chip in enumerate(warp_chips(image, mats, cut)):
        grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
        if cut != size:
            grey = cv2.resize(grey, (size, size), interpolation=cv2.INTER_LINEAR)
        out[i] = _normalise(grey, recipe.norm)
    return out
