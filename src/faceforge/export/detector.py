"""BlazeFace as one ONNX graph: RGB image in, boxes, scores and faceforge's 5 landmarks out.

:func:`export_detector` converts the registry's ``.tflite`` model (``blazeface.short`` by
default) with :mod:`faceforge.export._tflite` and wraps it in the pre- and post-processing of
:class:`~faceforge.detectors.blazeface.BlazeFaceDetector` (``tile=False``), all as ONNX ops:
letterboxing (bilinear resize, centred, padded black), pixel scaling, SSD anchor decoding,
sigmoid scores, ``NonMaxSuppression`` followed by MediaPipe's score-weighted merging of each
cluster, the mapping back to image pixels, clipping, and the 5 landmarks. A browser page or a
30-line script only converts its frame to ``uint8 [H, W, 3]`` RGB and reads the outputs.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from faceforge.errors import OutputError, ParameterError

log = logging.getLogger(__name__)

#: ONNX opset of the graph (reductions take their axes as inputs; onnxruntime and onnxruntime-web run it).
OPSET = 18

#: The detector section's rule for the 5 landmarks, also applied inside the graph.
LANDMARK_RULE = (
    "BlazeFace's 6 keypoints are: the subject's right eye, left eye, nose tip, mouth centre, right ear "
    "tragion, left ear tragion. faceforge's 5 landmarks are [left_eye, right_eye, nose, mouth_left, "
    "mouth_right] in image terms: the two eyes ordered by x (image-left first), the nose tip, and the mouth "
    "corners estimated as mouth_centre -/+ {h} * (right_eye - left_eye) (the ArcFace template's "
    "mouth width / eye distance, halved). The graph's 'landmarks' output already applies this rule."
)


class _Builder:
    """Collects ONNX nodes and constants with unique names."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def const(self, value: Any, dtype: Any = np.float32) -> str:
        from onnx import numpy_helper

        self._n += 1
        n = f"k{self._n}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), n))
        return n

    def op(self, op: str, *ins: str, n_out: int = 1, **attrs: Any) -> Any:
        from onnx import helper

        self._n += 1
        outs = [f"v{self._n}_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, list(ins), outs, name=f"{op}_{self._n}", **attrs))
        return outs[0] if n_out == 1 else outs


def build_graph(kind: str = "short", min_score: float = 0.5, iou_threshold: float = 0.3,
                weighted: bool = True) -> Any:
    """The detector as an ``onnx.ModelProto`` (see the module docstring).

    Args:
        kind: ``"short"`` (128 px input, faces within ~2 m: webcams) or ``"full"`` (192 px, ~5 m).
        min_score: score threshold built into the graph (faces scoring at or below it are dropped).
        iou_threshold: merge overlap built into the graph.
        weighted: merge each cluster by score-weighted averaging (MediaPipe's rule, the
            detector's default) rather than keeping its best member.

    Returns:
        The checked ONNX model.

    Raises:
        ParameterError: an unknown ``kind`` or a threshold outside (0, 1].
        ModelIntegrityError: the ``.tflite`` file does not look like BlazeFace.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from faceforge import registry
    from faceforge.detectors.blazeface import MODELS, MOUTH_HALF_WIDTH, _config, _ssd_anchors
    from faceforge.export._tflite import convert

    if kind not in MODELS:
        raise ParameterError(f"detector kind must be one of {MODELS}, got {kind!r}; use 'short' for webcams")
    for label, v in (("min_score", min_score), ("iou_threshold", iou_threshold)):
        if not 0.0 < float(v) <= 1.0:
            raise ParameterError(f"{label} must lie in (0, 1], got {v}")
    opts = _config(kind)
    s = int(opts["size"][0])
    net = convert(registry.weight_path(f"blazeface.{kind}"))
    (reg_name, reg_shape), (cls_name, _) = sorted(net.outputs.values(), key=lambda o: -o[1][-1])
    n = int(reg_shape[1])
    anchors = _ssd_anchors(s, tuple(opts["strides"]), float(opts["interpolated"]))
    anchor16 = np.zeros((n, 16), np.float32)
    anchor16[:, 0::2] = anchors[:, :1] * s
    anchor16[:, 1::2] = anchors[:, 1:] * s
    anchor16[:, 2:4] = 0.0
    std = np.asarray(opts["std"], np.float64)
    scale = (1.0 / std).astype(np.float32).reshape(1, 3, 1, 1)
    shift = (-np.asarray(opts["mean"], np.float64) / std).astype(np.float32).reshape(1, 3, 1, 1)

    b = _Builder()
    i64 = np.int64
    # -- letterbox: scale = S / max(h, w); (nw, nh) = clip(round((w, h) * scale), 1, S), centred
    hw = b.op("Slice", b.op("Shape", "image"), b.const([0], i64), b.const([2], i64))  # [h, w] int64
    hwf = b.op("Cast", hw, to=TensorProto.FLOAT)
    sc = b.op("Div", b.const(float(s)), b.op("ReduceMax", hwf, keepdims=0))
    nhw = b.op("Cast", b.op("Clip", b.op("Round", b.op("Mul", hwf, sc)), b.const(1.0), b.const(float(s))),
               to=TensorProto.INT64)  # [nh, nw]
    pad0 = b.op("Div", b.op("Sub", b.const([s, s], i64), nhw), b.const([2, 2], i64))  # [py, px]
    pad1 = b.op("Sub", b.op("Sub", b.const([s, s], i64), nhw), pad0)
    x = b.op("Unsqueeze", b.op("Transpose", b.op("Cast", "image", to=TensorProto.FLOAT), perm=[2, 0, 1]),
             b.const([0], i64))
    sizes = b.op("Concat", b.const([1, 3], i64), nhw, axis=0)
    x = b.op("Resize", x, "", "", sizes, mode="linear", coordinate_transformation_mode="half_pixel")
    x = b.op("Add", b.op("Mul", x, b.const(scale)), b.const(shift))
    zz = b.const([0, 0], i64)
    pads = b.op("Concat", zz, pad0, zz, pad1, axis=0)
    x = b.op("Pad", x, pads, b.const(-1.0), mode="constant")  # black, as MediaPipe's letterbox
    b.nodes.append(helper.make_node("Identity", [x], [net.input], name="to_net"))
    b.nodes += net.nodes
    b.inits += net.initializers
    # -- decode: rows (n, 16) = regressors + anchor centres, in letterboxed-input pixels
    rows = b.op("Add", b.op("Squeeze", reg_name, b.const([0], i64)), b.const(anchor16))
    logits = b.op("Reshape", cls_name, b.const([n], i64))
    scores = b.op("Sigmoid", b.op("Clip", logits, b.const(-80.0), b.const(80.0)))
    # input pixels -> image pixels: (v - pad) * (size / new size) for x and y; the box size only scales
    yx = b.const([1, 0], i64)  # [h, w] -> [w, h]
    wh_img = b.op("Gather", hwf, yx, axis=0)
    sxy = b.op("Div", wh_img, b.op("Cast", b.op("Gather", nhw, yx, axis=0), to=TensorProto.FLOAT))  # [sx, sy]
    pxy = b.op("Cast", b.op("Gather", pad0, yx, axis=0), to=TensorProto.FLOAT)  # [px, py]
    mul = b.op("Tile", sxy, b.const([8], i64))
    not_size = np.ones(16, np.float32)
    not_size[2:4] = 0.0
    add = b.op("Mul", b.op("Tile", b.op("Neg", b.op("Mul", pxy, sxy)), b.const([8], i64)), b.const(not_size))
    rows = b.op("Add", b.op("Mul", rows, mul), add)
    c, wh, pts = b.op("Split", rows, b.const([2, 2, 12], i64), axis=1, n_out=3)
    half = b.op("Mul", wh, b.const(0.5))
    xy1, xy2 = b.op("Sub", c, half), b.op("Add", c, half)
    rows = b.op("Concat", xy1, xy2, pts, axis=1)  # (n, 16): xyxy box, 6 keypoints
    box = b.op("Concat", xy1, xy2, axis=1)
    valid = b.op("Cast", b.op("Greater", wh, b.const(0.0)), to=TensorProto.FLOAT)
    valid = b.op("ReduceMin", valid, b.const([1], i64), keepdims=0)  # w > 0 and h > 0
    scores = b.op("Mul", scores, valid)
    # -- NMS picks each cluster's best; the cluster of a kept box is every candidate whose first
    # kept box (best first) overlapping it by more than iou_threshold is this one (MediaPipe's greedy rule)
    keep = b.op("NonMaxSuppression", b.op("Unsqueeze", box, b.const([0], i64)),
                b.op("Reshape", scores, b.const([1, 1, n], i64)), b.const([n], i64), "iou_threshold", "min_score")
    idx = b.op("Squeeze", b.op("Slice", keep, b.const([2], i64), b.const([3], i64), b.const([1], i64)),
               b.const([1], i64))
    kscore = b.op("Gather", scores, idx, axis=0)
    if weighted:
        kbox = b.op("Gather", box, idx, axis=0)
        k1, k2 = b.op("Split", kbox, b.const([2, 2], i64), axis=1, n_out=2)  # (K, 2)
        a1, a2 = b.op("Unsqueeze", xy1, b.const([0], i64)), b.op("Unsqueeze", xy2, b.const([0], i64))  # (1, n, 2)
        k1, k2 = b.op("Unsqueeze", k1, b.const([1], i64)), b.op("Unsqueeze", k2, b.const([1], i64))  # (K, 1, 2)
        side = b.op("Relu", b.op("Sub", b.op("Min", a2, k2), b.op("Max", a1, k1)))
        inter = b.op("ReduceProd", side, b.const([2], i64), keepdims=0)  # (K, n)
        area_a = b.op("ReduceProd", b.op("Relu", b.op("Sub", xy2, xy1)), b.const([1], i64), keepdims=0)
        area_k = b.op("Gather", area_a, idx, axis=0)
        union = b.op("Sub", b.op("Add", b.op("Unsqueeze", area_k, b.const([1], i64)),
                                 b.op("Unsqueeze", area_a, b.const([0], i64))), inter)
        over = b.op("Greater", inter, b.op("Mul", "iou_threshold", b.op("Max", union, b.const(1e-9))))
        cand = b.op("Unsqueeze", b.op("Greater", scores, "min_score"), b.const([0], i64))
        member = b.op("Cast", b.op("And", over, cand), to=TensorProto.FLOAT)
        first = b.op("Mul", member, b.op("Cast", b.op("Equal", b.op("CumSum", member, b.const(0, i64)),
                                                      b.const(1.0)), to=TensorProto.FLOAT))
        weights = b.op("Mul", first, b.op("Unsqueeze", scores, b.const([0], i64)))
        total = b.op("Max", b.op("ReduceSum", weights, b.const([1], i64), keepdims=1), b.const(1e-12))
        krows = b.op("Div", b.op("MatMul", weights, rows), total)
    else:
        krows = b.op("Gather", rows, idx, axis=0)
    # -- clip boxes to the image, drop slivers (<= 1 px), 5 landmarks
    kb, kp = b.op("Split", krows, b.const([4, 12], i64), axis=1, n_out=2)
    kb = b.op("Min", b.op("Relu", kb), b.op("Tile", wh_img, b.const([2], i64)))
    b1, b2 = b.op("Split", kb, b.const([2, 2], i64), axis=1, n_out=2)
    ok = b.op("Cast", b.op("Greater", b.op("Sub", b2, b1), b.const(1.0)), to=TensorProto.FLOAT)
    ok = b.op("Cast", b.op("ReduceMin", ok, b.const([1], i64), keepdims=0), to=TensorProto.BOOL)
    kb = b.op("Compress", kb, ok, axis=0)
    kp = b.op("Compress", kp, ok, axis=0)
    kscore = b.op("Compress", kscore, ok, axis=0)
    count = b.op("Slice", b.op("Shape", kp), b.const([0], i64), b.const([1], i64))
    kp = b.op("Reshape", kp, b.op("Concat", count, b.const([6, 2], i64), axis=0))  # (K, 6, 2)
    e0, e1, nose, mouth, r0, r1 = b.op("Split", kp, b.const([1] * 6, i64), axis=1, n_out=6)  # (K, 1, 2) each
    ex0, ex1 = (b.op("Slice", e, b.const([0], i64), b.const([1], i64), b.const([2], i64)) for e in (e0, e1))
    swap = b.op("Greater", ex0, ex1)
    left, right = b.op("Where", swap, e1, e0), b.op("Where", swap, e0, e1)
    mhalf = b.op("Mul", b.op("Sub", right, left), b.const(MOUTH_HALF_WIDTH))
    b.nodes.append(helper.make_node("Concat", [left, right, nose, b.op("Sub", mouth, mhalf),
                                               b.op("Add", mouth, mhalf)], ["landmarks"], axis=1, name="landmarks"))
    b.nodes.append(helper.make_node("Identity", [kb], ["boxes"], name="boxes"))
    b.nodes.append(helper.make_node("Identity", [kscore], ["scores"], name="scores"))
    b.nodes.append(helper.make_node("Identity", [kp], ["keypoints"], name="keypoints"))
    thr = [numpy_helper.from_array(np.array([float(min_score)], np.float32), "min_score"),
           numpy_helper.from_array(np.array([float(iou_threshold)], np.float32), "iou_threshold")]
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        b.nodes, f"faceforge_blazeface_{kind}",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["height", "width", 3])],
        [helper.make_tensor_value_info("boxes", f, ["faces", 4]),
         helper.make_tensor_value_info("scores", f, ["faces"]),
         helper.make_tensor_value_info("landmarks", f, ["faces", 5, 2]),
         helper.make_tensor_value_info("keypoints", f, ["faces", 6, 2])],
        b.inits + thr)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="faceforge")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_detector(out_dir: Path, kind: str = "short", min_score: float = 0.5,
                    iou_threshold: float = 0.3) -> dict[str, Any]:
    """Write ``out_dir/detector.onnx`` and return the sidecar's ``"detector"`` section.

    Args:
        out_dir: the export folder (created if missing).
        kind: ``"short"`` (default; webcams, faces within ~2 m) or ``"full"`` (~5 m, 192 px input,
            3-4x slower).
        min_score: score threshold built into the graph.
        iou_threshold: merge overlap built into the graph.

    Returns:
        The section: file, model, licence, inputs, outputs, letterbox rule, landmark rule, defaults.

    Raises:
        ParameterError: an unknown ``kind`` or thresholds out of range.
        OutputError: ``out_dir`` cannot be written.
    """
    from faceforge.detectors.blazeface import MOUTH_HALF_WIDTH, _config
    from faceforge.registry import get_spec

    model = build_graph(kind, min_score, iou_threshold)
    out_dir = Path(out_dir)
    path = out_dir / "detector.onnx"
    tmp = out_dir / ".detector.onnx.tmp"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(model.SerializeToString())
        tmp.replace(path)
    except OSError as exc:
        if tmp.is_file():
            tmp.unlink()
        raise OutputError(f"could not write {path}: {exc.strerror or exc}; choose a writable output folder") from exc
    spec = get_spec(f"blazeface.{kind}")
    s = int(_config(kind)["size"][0])
    log.info("wrote %s (%d bytes)", path, path.stat().st_size)
    return {
        "file": path.name,
        "sha256": _sha256(path),
        "bytes": path.stat().st_size,
        "model": f"blazeface.{kind}",
        "licence": spec.license,
        "source": f"{spec.package} ({spec.file}), converted to ONNX by faceforge",
        "opset": OPSET,
        "input_size": s,
        "inputs": {
            "image": "uint8 [height, width, 3] RGB, any size, one image",
        },
        "min_score": float(min_score),
        "iou_threshold": float(iou_threshold),
        "thresholds": "built into the graph: faces scoring at or below min_score are dropped; detections "
                      "overlapping by more than iou_threshold are merged (score-weighted average, MediaPipe's rule)",
        "outputs": {
            "boxes": "float32 [faces, 4] x1, y1, x2, y2 in image pixels, clipped to the image; best first",
            "scores": "float32 [faces] in (0, 1]",
            "landmarks": "float32 [faces, 5, 2] faceforge's 5 points (x, y) in image pixels: left eye, right eye, "
                         "nose, mouth left, mouth right (image left/right); what the aligner takes",
            "keypoints": "float32 [faces, 6, 2] BlazeFace's raw keypoints in image pixels",
        },
        "letterbox": (f"inside the graph: the image is resized (bilinear, half-pixel centres, no antialias) by "
                      f"{s} / max(height, width) to round(width * scale) x round(height * scale), centred in a "
                      f"{s} x {s} input (offsets floor((S - new) / 2)) padded with black, and scaled to [-1, 1]; "
                      f"outputs are mapped back to the original image's pixels"),
        "landmark_rule": LANDMARK_RULE.format(h=MOUTH_HALF_WIDTH),
        "mouth_half_width": MOUTH_HALF_WIDTH,
        "same_as": f"faceforge.detectors.BlazeFaceDetector('{kind}', tile=False)",
    }
