"""Face alignment: a similarity transform from 5 landmarks to a canonical template, or a margin crop.

Templates are stored in unit coordinates (fractions of the chip side) so one template serves
any chip size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import cv2
import numpy as np

from faceforge.errors import ParameterError
from faceforge.types import Faces


@dataclass(frozen=True)
class Template:
    """Where the 5 landmarks should land in a square chip.

    Attributes:
        name: template name.
        points: ``(5, 2) float32`` landmark positions as fractions of the chip side, in the
            order of :data:`faceforge.types.LANDMARK_NAMES`.
        size: default chip side in pixels.
        fallback_margin: for faces without landmarks, the box is enlarged by this factor and
            cropped square (as ``template="margin"`` of :func:`align_faces` does).
        fallback_shift: vertical shift of that crop's centre, as a fraction of the box height.
    """

    name: str
    points: np.ndarray
    size: int
    fallback_margin: float = 1.0
    fallback_shift: float = 0.0


_ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    np.float32,
)

TEMPLATES: dict[str, Template] = {
    # InsightFace / ArcFace canonical template (112x112).
    "arcface112": Template("arcface112", _ARCFACE_112 / 112.0, 112, 1.0, 0.0),
    # Where dlib's get_face_chip(size=150, padding=0.25) puts these 5 points on average,
    # measured with fit_template on 113 real faces (yunet + O-Net landmarks vs dlib's 5-point chips;
    # benchmarks/fit_dlib_template.py).
    "dlib150": Template(
        "dlib150",
        np.array([[0.3132, 0.3017], [0.6767, 0.3015], [0.4929, 0.5184], [0.3258, 0.6809], [0.6681, 0.6769]],
                 np.float32),
        150, 1.25, 0.05,
    ),
}


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation) src -> dst.

    Args:
        src: ``(k, 2)`` points, ``k >= 2``.
        dst: ``(k, 2)`` points.

    Returns:
        ``(2, 3) float64`` affine matrix M with ``dst ~ M @ [x, y, 1]``.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum() / len(src)
    if var_s < 1e-12:
        raise ParameterError("landmarks are all at one point; cannot estimate an alignment")
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1
    r = u @ e @ vt
    scale = np.trace(np.diag(sig) @ e) / var_s
    t = mu_d - scale * r @ mu_s
    return np.hstack([scale * r, t[:, None]])


def get_template(template: str | Template) -> Template:
    """Return a :class:`Template` by name (or pass one through)."""
    if isinstance(template, Template):
        return template
    try:
        return TEMPLATES[template]
    except KeyError:
        raise ParameterError(
            f"Unknown alignment template {template!r}. Choose one of: {', '.join(sorted(TEMPLATES))}, "
            f"or use template='margin' for a plain enlarged crop."
        ) from None


def box_transform(box: np.ndarray, size: int, margin: float = 1.0, shift: float = 0.0) -> np.ndarray:
    """Affine ``(2, 3)`` mapping a square around ``box`` (enlarged by ``margin``) onto a chip.

    The square is centred on the box centre moved down by ``shift`` x box height, with side
    ``margin`` x max(box width, box height).
    """
    x1, y1, x2, y2 = [float(v) for v in box]
    side = max(x2 - x1, y2 - y1, 1.0) * margin
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 + shift * (y2 - y1)
    s = size / side
    return np.array([[s, 0, size / 2 - s * cx], [0, s, size / 2 - s * cy]], np.float64)


def face_transforms(faces: Faces, template: str | Template = "arcface112", size: int | None = None) -> np.ndarray:
    """Image-to-chip affine matrices for each face.

    Faces with >= 2 known landmarks (eyes at least) get a similarity transform to the template;
    the others a box-based square crop (the template's fallback margin).

    Returns:
        ``(n, 2, 3) float64`` matrices.
    """
    tpl = get_template(template)
    size = int(size or tpl.size)
    dst_all = tpl.points * size
    out = np.zeros((len(faces), 2, 3), np.float64)
    for i in range(len(faces)):
        lm = faces.landmarks[i]
        ok = ~np.isnan(lm).any(axis=1)
        if ok[:2].all() and ok.sum() >= 2 and np.ptp(lm[ok], axis=0).max() > 1e-3:
            out[i] = umeyama(lm[ok], dst_all[ok])
        else:
            out[i] = box_transform(faces.xyxy[i], size, tpl.fallback_margin, tpl.fallback_shift)
    return out


def warp_chips(image: np.ndarray, matrices: np.ndarray, size: int) -> np.ndarray:
    """Cut ``(n, size, size, 3) uint8`` chips from ``image`` with affine ``matrices (n, 2, 3)``.

    Pixels outside the image are filled by replicating the border (as dlib does), so faces at
    the image edge keep a plausible context.
    """
    chips = np.empty((len(matrices), size, size, 3), np.uint8)
    for i, m in enumerate(matrices):
        # Shrinking by more than 2x with bilinear sampling aliases: pre-blur via INTER_AREA.
        scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
        if scale < 0.5:
            chips[i] = _warp_downscaled(image, m, size, scale)
        else:
            chips[i] = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REPLICATE)
    return chips


def _warp_downscaled(image: np.ndarray, m: np.ndarray, size: int, scale: float) -> np.ndarray:
    # Crop the region the chip covers, shrink it with area averaging, then warp the rest.
    inv = cv2.invertAffineTransform(m)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64) @ inv.T
    h, w = image.shape[:2]
    x0 = int(np.clip(np.floor(corners[:, 0].min()) - 2, 0, w - 1))
    y0 = int(np.clip(np.floor(corners[:, 1].min()) - 2, 0, h - 1))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()) + 2, x0 + 1, w))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()) + 2, y0 + 1, h))
    crop = image[y0:y1, x0:x1]
    f = min(1.0, scale * 2)
    small = cv2.resize(crop, (max(1, round(crop.shape[1] * f)), max(1, round(crop.shape[0] * f))),
                       interpolation=cv2.INTER_AREA)
    fx, fy = small.shape[1] / crop.shape[1], small.shape[0] / crop.shape[0]
    # chip <- image:  m @ [x, y, 1];  image x = x0 + xs / fx
    m2 = m.copy()
    m2[:, 0] = m[:, 0] / fx
    m2[:, 1] = m[:, 1] / fy
    m2[:, 2] = m[:, 2] + m[:, 0] * x0 + m[:, 1] * y0
    return cv2.warpAffine(small, m2, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _framed(faces: Faces, margin: float, framing: Mapping[str, Sequence[float]] | None) -> tuple[float, float]:
    """``(margin, shift)`` of a box crop for ``faces``: their detector's entry in ``framing``, if any."""
    if not framing or faces.detector not in framing or bool(np.any(faces.data.get("whole_image", False))):
        return margin, 0.0
    m, shift = framing[faces.detector]
    return float(m), float(shift)


def align_faces(image: np.ndarray, faces: Faces, template: str | Template = "arcface112",
                size: int | None = None, margin: float | None = None,
                framing: Mapping[str, Sequence[float]] | None = None) -> np.ndarray:
    """Cut one aligned chip per face.

    Args:
        image: ``(H, W, 3) uint8`` RGB, the image the faces were detected in.
        faces: the detected faces.
        template: ``"arcface112"``, ``"dlib150"`` (dlib-like chip from our 5 landmarks),
            ``"dlib5"`` (dlib's own 5-point predictor and chip geometry, what the dlib ResNet
            was trained on; ``margin`` is then dlib's padding, default 0.25) or ``"margin"``
            (no rotation: the box enlarged by ``margin``, cropped square).
        size: chip side in pixels (default: the template's).
        margin: for ``"margin"`` only, the enlargement factor k (1.0 = the box itself).
        framing: for ``"margin"`` only, detector name -> ``(margin, shift)`` for faces from that
            detector (``shift``: the square's centre moved down by that fraction of the box
            height); faces from other detectors, and whole-image faces, use ``margin``.

    Returns:
        ``(n, size, size, 3) uint8`` chips.

    Example:
        >>> from skimage import data
        >>> from faceforge.detectors import get_detector
        >>> img = data.astronaut()
        >>> align_faces(img, get_detector("yunet")(img)).shape
        (1, 112, 112, 3)
    """
    if template == "dlib5":
        from faceforge.align.dlib_chip import dlib5_transforms

        size = int(size or 150)
        return warp_chips(image, dlib5_transforms(image, faces, size, 0.25 if margin is None else margin), size)
    if template == "margin":
        size = int(size or 224)
        k = 1.0 if margin is None else float(margin)
        if k <= 0:
            raise ParameterError(f"margin must be > 0, got {margin}")
        k, shift = _framed(faces, k, framing)
        mats = np.stack([box_transform(b, size, k, shift) for b in faces.xyxy]) if len(faces) else np.zeros((0, 2, 3))
    else:
        tpl = get_template(template)
        size = int(size or tpl.size)
        mats = face_transforms(faces, tpl, size)
    return warp_chips(image, mats, size)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` affine to ``(..., 2)`` points."""
    p = np.asarray(points, np.float64)
    return p @ matrix[:, :2].T + matrix[:, 2]


def fit_template(landmarks: np.ndarray, matrices: np.ndarray, size: int) -> np.ndarray:
    """Average where landmarks land under given image-to-chip transforms, in unit coordinates.

    Used to derive a template that reproduces another tool's crops (e.g. dlib's face chips).

    Args:
        landmarks: ``(n, 5, 2)``.
        matrices: ``(n, 2, 3)`` image-to-chip affines.
        size: chip side.

    Returns:
        ``(5, 2) float32``.
    """
    pts = np.stack([transform_points(lm, m) for lm, m in zip(landmarks, matrices)])
    return (np.median(pts, axis=0) / size).astype(np.float32)
