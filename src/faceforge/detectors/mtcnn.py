"""MTCNN face detector (Zhang et al. 2016) with facenet-pytorch's weights, run on ONNX Runtime.

The three cascaded nets (P-Net proposals on an image pyramid, R-Net refinement on 24x24 crops,
O-Net scoring, box regression and five landmarks on 48x48 crops) ship as PyTorch state dicts in
``facenet-pytorch``. They are read without PyTorch (:mod:`faceforge.registry.torchfile`) and
rebuilt once as ONNX graphs (float NHWC RGB in 0-255; the ``(x - 127.5) / 128`` input scaling is
folded into the first convolution, which is exact because the nets never pad), then cached; the
graph building lives in :mod:`faceforge.detectors._mtcnn_nets`.

The pipeline follows facenet-pytorch's ``detect_face`` step for step: pyramid scales
``12 / min_face_size * factor**k``, P-Net at every scale, NMS per scale (IoU 0.5) and across
scales (0.7), box regression and squaring, R-Net (threshold, NMS 0.7, regression), O-Net
(threshold, landmarks, regression, NMS 0.7 by intersection over the smaller box). Every resize
(pyramid levels and crops) reproduces PyTorch's ``area`` interpolation exactly from one integral
image, so the detections match facenet-pytorch's to float rounding; crops are batched per stage.
Boxes are finally clipped to the image.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from faceforge.detectors._mtcnn_nets import SIDE, onnx_path
from faceforge.detectors._mtcnn_nets import build_onnx as build_onnx  # its home before the split
from faceforge.detectors.base import Detector, clip_faces
from faceforge.errors import ParameterError
from faceforge.types import Faces

# -- pipeline helpers (numpy, facenet-pytorch conventions) ----------------------------------------

def _nms_iou(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy IoU NMS (torchvision semantics: drop boxes overlapping a kept one by more than
    ``threshold``), in OpenCV's C++ for speed; returns kept indices, best first.

    OpenCV computes the overlap as ``1 - (1 - IoU)`` in float, so an IoU of exactly the threshold
    (common: P-Net boxes sit on an integer grid) can come out a hair above it; the 1e-5 slack
    keeps such boxes, as torchvision does.
    """
    import cv2

    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    xywh = np.empty((len(boxes), 4), np.float64)
    xywh[:, :2] = boxes[:, :2]
    xywh[:, 2:] = boxes[:, 2:4] - boxes[:, :2]
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), np.asarray(scores, np.float64).tolist(), 0.0, float(threshold) + 1e-5)
    return np.asarray(keep, np.int64).reshape(-1)


def _nms_min(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS by intersection over the smaller box, with MTCNN's inclusive (+1) areas."""
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores, kind="stable")[::-1]
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        overlap = w * h / np.minimum(area[i], area[rest])
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square of its longer side around the same centre (MTCNN ``rerec``)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Apply box regression with inclusive widths (MTCNN ``bbreg``)."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    return boxes + reg * np.stack([w, h, w, h], axis=1)


def _bins(start: ArrayLike, length: ArrayLike, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel ranges ``[lo, hi)`` of the ``n_out`` output cells of PyTorch's ``area`` resize
    (adaptive average pooling) along one axis, for segments ``[start, start + length)``."""
    i = np.arange(n_out, dtype=np.int64)
    n = np.asarray(length, np.int64)[..., None]
    s0 = np.asarray(start, np.int64)[..., None]
    return s0 + (i * n) // n_out, s0 - ((-(i + 1) * n) // n_out)


_Ranges = tuple[np.ndarray, np.ndarray]


def _area_resize(table: np.ndarray, y: _Ranges, x: _Ranges) -> np.ndarray:
    """Average the image over rectangles given by an integral image.

    Args:
        table: ``(H + 1, W + 1, 3) float64`` integral image (``cv2.integral``).
        y: ``(lo, hi)`` row ranges, each ``(n, oh)``.
        x: ``(lo, hi)`` column ranges, each ``(n, ow)``.

    Returns:
        ``(n, oh, ow, 3) float32`` cell means: exactly PyTorch's ``interpolate(mode="area")``,
        which facenet-pytorch uses for the pyramid and the crops.
    """
    channels = table.shape[2]
    stride = table.shape[1] * channels
    flat = table.reshape(-1)
    ch = np.arange(channels)
    r0, r1 = (y[0] * stride)[:, :, None, None], (y[1] * stride)[:, :, None, None]
    c0, c1 = (x[0] * channels)[:, None, :, None] + ch, (x[1] * channels)[:, None, :, None] + ch
    total = flat.take(r1 + c1) - flat.take(r0 + c1) - flat.take(r1 + c0) + flat.take(r0 + c0)
    count = ((y[1] - y[0])[:, :, None] * (x[1] - x[0])[:, None, :]).astype(np.float64)
    return (total / count[..., None]).astype(np.float32)


def _crops(table: np.ndarray, boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``boxes`` (clipped to the image, facenet-pytorch ``pad``) and area-resize to ``size``.

    Returns:
        ``(n, size, size, 3) float32`` crops and the indices of the boxes that had pixels.
    """
    h, w = table.shape[0] - 1, table.shape[1] - 1
    b = np.trunc(boxes).astype(np.int64)
    x0 = np.maximum(b[:, 0], 1) - 1
    y0 = np.maximum(b[:, 1], 1) - 1
    x1 = np.minimum(b[:, 2], w)
    y1 = np.minimum(b[:, 3], h)
    ok = np.flatnonzero((x1 > x0) & (y1 > y0))
    x0, x1, y0, y1 = x0[ok], x1[ok], y0[ok], y1[ok]
    out = np.empty((len(ok), size, size, 3), np.float32)
    for i in range(0, len(ok), 256):  # chunks bound the gather's memory
        sl = slice(i, i + 256)
        out[sl] = _area_resize(table, _bins(y0[sl], y1[sl] - y0[sl], size), _bins(x0[sl], x1[sl] - x0[sl], size))
    return out, ok


class MTCNNDetector(Detector, spec="mtcnn"):
    """MTCNN: the classic three-stage cascade (P-Net, R-Net, O-Net) with five landmarks.

    Slower than YuNet or BlazeFace on large photos: the cost grows with the image area over
    ``min_face_size`` squared, and with the number of face-like regions R-Net has to check.
    Detections match facenet-pytorch's ``MTCNN.detect`` (boxes then clipped to the image).

    Args:
        min_score: O-Net probability a face must reach (MTCNN's third threshold). Raising it
            drops doubtful faces; lowering it finds more faces and more junk. Default: the third
            entry of ``thresholds``.
        min_face_size: smallest face side in pixels that the pyramid looks for. Raising it
            (e.g. 40-80 on large photos of near faces) makes detection several times faster.
        thresholds: P-Net and R-Net (and default O-Net) probability thresholds.
        factor: pyramid scale step in (0, 1); closer to 1 is slower and finds a few more faces.
        threads: ONNX Runtime intra-op threads (default ``$FACEFORGE_THREADS`` or all cores).

    Example:
        >>> det = MTCNNDetector()  # doctest: +SKIP
        >>> faces = det(image)  # doctest: +SKIP
    """

    def __init__(self, min_score: float | None = None, min_face_size: float = 20,
                 thresholds: Sequence[float] = (0.6, 0.7, 0.7), factor: float = 0.709,
                 threads: int | None = None) -> None:
        thresholds = tuple(float(t) for t in thresholds)
        if len(thresholds) not in (2, 3) or not all(0.0 <= t <= 1.0 for t in thresholds):
            raise ParameterError(f"thresholds must be 2 or 3 probabilities in [0, 1], got {thresholds}")
        if min_score is None:
            min_score = thresholds[2] if len(thresholds) == 3 else 0.7
        super().__init__(min_score)
        if not float(min_face_size) >= 1:
            raise ParameterError(f"min_face_size must be >= 1 pixel, got {min_face_size}")
        if not 0.1 <= float(factor) < 0.95:
            raise ParameterError(f"factor must lie in [0.1, 0.95), got {factor}")
        from faceforge.registry import require

        require(self.name)  # fail now, with the install command, if a net's package is missing
        self.min_face_size = float(min_face_size)
        self.thresholds = thresholds[:2]
        self.factor = float(factor)
        self.threads = threads
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _session(self, net: str) -> Any:
        sess = self._sessions.get(net)
        if sess is None:
            with self._lock:
                sess = self._sessions.get(net)
                if sess is None:
                    from faceforge.registry.runtime import onnx_session

                    sess = self._sessions[net] = onnx_session(onnx_path(net), self.threads)
        return sess

    def scales(self, height: int, width: int) -> list[float]:
        """Pyramid scales for an image of this size (empty when it is smaller than a face)."""
        cell = SIDE["pnet"]
        m = cell / self.min_face_size
        minl = min(height, width) * m
        out: list[float] = []
        scale = m
        while minl >= cell:
            out.append(scale)
            scale *= self.factor
            minl *= self.factor
        return out

    def _stage1(self, table: np.ndarray) -> np.ndarray:
        """P-Net on the pyramid of the image whose integral image is ``table``.

        Returns:
            ``(n, 5)`` boxes and scores, regressed and squared.
        """
        h, w = table.shape[0] - 1, table.shape[1] - 1
        pnet = self._session("pnet")
        found = []
        for scale in self.scales(h, w):
            hs, ws = int(h * scale + 1), int(w * scale + 1)
            ylo, yhi = _bins(np.zeros(1), [h], hs)
            cols = _bins(np.zeros(1), [w], ws)
            im = np.empty((1, hs, ws, 3), np.float32)
            step = max(1, (1 << 18) // ws)  # row blocks bound the gather's temporaries
            for r in range(0, hs, step):
                im[:, r:r + step] = _area_resize(table, (ylo[:, r:r + step], yhi[:, r:r + step]), cols)
            prob, reg = pnet.run(["prob", "reg"], {"images": im})
            ys, xs = np.nonzero(prob[0, 0] >= self.thresholds[0])
            if not len(ys):
                continue
            score = prob[0, 0, ys, xs]
            cells = np.stack([xs, ys], axis=1).astype(np.float32)
            q1 = np.floor((2 * cells + 1) / scale)
            q2 = np.floor((2 * cells + SIDE["pnet"]) / scale)
            boxes = np.concatenate([q1, q2], axis=1)
            keep = _nms_iou(boxes, score, 0.5)
            found.append(np.concatenate([boxes[keep], score[keep, None], reg[0][:, ys[keep], xs[keep]].T], axis=1))
        if not found:
            return np.zeros((0, 5), np.float32)
        cand = np.concatenate(found)
        cand = cand[_nms_iou(cand[:, :4], cand[:, 4], 0.7)]
        bw = (cand[:, 2] - cand[:, 0])[:, None]
        bh = (cand[:, 3] - cand[:, 1])[:, None]
        boxes = cand[:, :4] + cand[:, 5:9] * np.concatenate([bw, bh, bw, bh], axis=1)
        return np.concatenate([_square(boxes), cand[:, 4:5]], axis=1)

    def _detect(self, img: np.ndarray) -> Faces:
        import cv2

        size = (img.shape[1], img.shape[0])
        empty = Faces.empty(size, self.name)
        table = cv2.integral(img, sdepth=cv2.CV_64F)  # every resize below is an area average
        boxes = self._stage1(table)
        if not len(boxes):
            return empty

        # Stage 2: R-Net on 24x24 crops (sides from the registry)
        crops, ok = _crops(table, boxes[:, :4], SIDE["rnet"])
        if not len(ok):
            return empty
        boxes = boxes[ok]
        prob, reg = self._session("rnet").run(["prob", "reg"], {"images": crops})
        keep = np.flatnonzero(prob[:, 0] > self.thresholds[1])
        boxes, score, reg = boxes[keep, :4], prob[keep, 0], reg[keep]
        if not len(boxes):
            return empty
        keep = _nms_iou(boxes, score, 0.7)
        boxes = _square(_regress(boxes[keep], reg[keep]))

        # Stage 3: O-Net on 48x48 crops
        crops, ok = _crops(table, boxes, SIDE["onet"])
        if not len(ok):
            return empty
        boxes = boxes[ok]
        prob, reg, pts = self._session("onet").run(["prob", "reg", "points"], {"images": crops})
        keep = np.flatnonzero(prob[:, 0] > self.min_score)
        if not len(keep):
            return empty
        boxes, score, reg, pts = boxes[keep], prob[keep, 0], reg[keep], pts[keep]
        bw = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        bh = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        landmarks = np.stack([bw * pts[:, :5] + boxes[:, 0:1] - 1, bh * pts[:, 5:] + boxes[:, 1:2] - 1], axis=2)
        boxes = _regress(boxes, reg)
        keep = _nms_min(boxes, score, 0.7)
        faces = Faces(boxes[keep], score[keep], landmarks[keep], size, self.name)
        return clip_faces(faces, *size)


class OnetLandmarks:
    """MTCNN's O-Net as a landmark refiner for boxes from another detector.

    YuNet's compiled-in landmarks barely follow in-plane rotation (measured: a face turned by
    30 degrees reads as about 5), which spoils alignment. O-Net, run on a square crop around
    each box and iterated once on its own regressed box, tracks rotation to within a few
    degrees at ~1 ms per face.

    Args:
        iterations: O-Net passes; each re-centres the crop on the previous pass's box.
        threads: ONNX Runtime intra-op threads.
    """

    def __init__(self, iterations: int = 2, threads: int | None = 1) -> None:
        from faceforge.registry import require

        require("mtcnn.onet")
        self.iterations = max(1, int(iterations))
        self.threads = threads
        self._sess: Any = None
        self._lock = threading.Lock()

    def _session(self) -> Any:
        if self._sess is None:
            with self._lock:
                if self._sess is None:
                    from faceforge.registry.runtime import onnx_session

                    self._sess = onnx_session(onnx_path("onet"), self.threads)
        return self._sess

    @staticmethod
    def _crop48(img: np.ndarray, box: np.ndarray) -> np.ndarray:
        import cv2

        side = SIDE["onet"]
        h, w = img.shape[:2]
        x0, y0 = int(np.floor(box[0])), int(np.floor(box[1]))
        x1, y1 = int(np.ceil(box[2])), int(np.ceil(box[3]))
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if cx1 <= cx0 or cy1 <= cy0:
            return np.zeros((side, side, 3), np.float32)
        crop = img[cy0:cy1, cx0:cx1]
        if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):  # zero padding, as MTCNN pads
            crop = cv2.copyMakeBorder(crop, cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1, cv2.BORDER_CONSTANT, value=0)
        return cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)

    def __call__(self, img: np.ndarray, faces: Faces) -> Faces:
        """Return ``faces`` with landmarks replaced by O-Net's (boxes and scores unchanged).

        Faces where O-Net's face probability is below 0.5 on the last pass keep their landmarks.
        """
        if not len(faces):
            return faces
        boxes = _square(faces.xyxy.astype(np.float64))
        sess = self._session()
        for _ in range(self.iterations):
            crops = np.stack([self._crop48(img, b) for b in boxes])
            prob, reg, pts = sess.run(["prob", "reg", "points"], {"images": crops})
            bw = (boxes[:, 2] - boxes[:, 0])[:, None]
            bh = (boxes[:, 3] - boxes[:, 1])[:, None]
            lm = np.stack([bw * pts[:, :5] + boxes[:, 0:1], bh * pts[:, 5:] + boxes[:, 1:2]], axis=2)
            boxes = _square(boxes + reg * np.concatenate([bw, bh, bw, bh], axis=1))
        ok = prob[:, 0] >= 0.5
        new = np.where(ok[:, None, None], lm, faces.landmarks).astype(np.float32)
        return Faces(faces.xyxy, faces.score, new, faces.image_size, faces.detector, faces.data)
