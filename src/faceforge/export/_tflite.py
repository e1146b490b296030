"""A small TFLite -> ONNX converter for the float ops the MediaPipe face detectors use.

BlazeFace (short- and full-range) is made of ``CONV_2D``, ``DEPTHWISE_CONV_2D``, ``RELU``,
``ADD``, ``PAD``, ``MAX_POOL_2D``, ``RESIZE_BILINEAR``, ``CONCATENATION``, ``RESHAPE`` and
``DEQUANTIZE`` (float16 weights). The flatbuffer is read with the pure-Python ``tflite``
package; 4-D activations are kept in ONNX's NCHW layout (TFLite is NHWC), so the graph's
input is ``(1, 3, S, S)`` float32 and a ``RESHAPE`` of a 4-D tensor first transposes it back
to NHWC, which keeps the element order TFLite's reshape sees. Any other op raises
:class:`~faceforge.errors.ModelIntegrityError` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceforge.errors import ModelIntegrityError, ModelNotFoundError

#: NHWC axis -> its position in NCHW
_NHWC_TO_NCHW_AXIS = (0, 2, 3, 1)


@dataclass
class Converted:
    """The converted network: ONNX nodes and initializers, and its input/output value names.

    ``input`` takes ``(1, 3, S, S)`` float32 (already normalised as the model expects);
    ``outputs`` maps each TFLite output's name to ``(onnx_name, shape)``.
    """

    nodes: list[Any]
    initializers: list[Any]
    input: str
    input_shape: tuple[int, ...]
    outputs: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)


def _tflite() -> Any:
    try:
        import tflite
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ModelNotFoundError(
            "exporting the detector needs the 'tflite' package (a flatbuffer reader, pure Python), "
            "which is not installed; fix: pip install 'tflite==2.18.0' (./run installs it)") from exc
    return tflite


def _same_pads(size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's SAME padding (the extra pixel goes at the end) for one spatial axis."""
    out = -(-size // stride)
    eff = (k - 1) * dilation + 1
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def convert(path: Path, prefix: str = "net/") -> Converted:
    """Convert a float TFLite model of the ops listed in the module docstring to ONNX pieces.

    Args:
        path: the ``.tflite`` file.
        prefix: prefix for every ONNX value and node name (so the pieces can sit in a larger graph).

    Returns:
        The nodes, initializers, input and outputs (see :class:`Converted`).

    Raises:
        ModelIntegrityError: the file uses an op, option or layout this converter does not handle.
    """
    tfl = _tflite()
    from onnx import helper, numpy_helper
    from tflite.BuiltinOperator import BuiltinOperator

    opnames = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
    buf = Path(path).read_bytes()
    model = tfl.Model.GetRootAsModel(buf, 0)
    if model.SubgraphsLength() != 1:
        raise ModelIntegrityError(f"{path}: expected one subgraph, found {model.SubgraphsLength()}")
    g = model.Subgraphs(0)

    def fail(msg: str) -> ModelIntegrityError:
        return ModelIntegrityError(f"{Path(path).name}: {msg}; this converter handles the BlazeFace ops only "
                                   "(faceforge/export/_tflite.py)")

    def shape(t: int) -> tuple[int, ...]:
        return tuple(int(v) for v in g.Tensors(t).ShapeAsNumpy())

    def const(t: int) -> np.ndarray | None:
        tensor = g.Tensors(t)
        data = model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(data, int) or data is None or len(data) == 0:
            return None
        dtype = {0: np.float32, 1: np.float16, 2: np.int32, 4: np.int64}.get(tensor.Type())
        if dtype is None:
            raise fail(f"tensor {tensor.Name()!r} has TFLite type {tensor.Type()}")
        return np.frombuffer(data.tobytes(), dtype=dtype).reshape(shape(t))

    consts: dict[int, np.ndarray] = {}
    for t in range(g.TensorsLength()):
        c = const(t)
        if c is not None:
            consts[t] = c
    nodes: list[Any] = []
    inits: list[Any] = []
    layout: dict[int, str] = {}  # tensor -> "nchw" (4-D, transposed) or "plain"

    def name(t: int) -> str:
        return f"{prefix}t{t}"

    def init(arr: np.ndarray, hint: str) -> str:
        n = f"{prefix}c{len(inits)}_{hint}"
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), n))
        return n

    def node(op: str, ins: list[str], outs: list[str], **attrs: Any) -> None:
        nodes.append(helper.make_node(op, ins, outs, name=f"{prefix}n{len(nodes)}_{op}", **attrs))

    def activation(fn: int, raw: str, out: str) -> None:
        if fn == 0:
            node("Identity", [raw], [out])
        elif fn == 1:
            node("Relu", [raw], [out])
        elif fn == 3:
            node("Clip", [raw, init(np.array(0, np.float32), "lo"), init(np.array(6, np.float32), "hi")], [out])
        else:
            raise fail(f"fused activation {fn}")

    def options(op: Any, cls: Any) -> Any:
        o = cls()
        tab = op.BuiltinOptions()
        o.Init(tab.Bytes, tab.Pos)
        return o

    (inp,) = [int(v) for v in g.InputsAsNumpy()]
    in_shape = shape(inp)
    if len(in_shape) != 4:
        raise fail(f"input of shape {in_shape}")
    layout[inp] = "nchw"
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        oc = model.OperatorCodes(op.OpcodeIndex())
        opname = opnames.get(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()), "?")
        ins = [int(v) for v in op.InputsAsNumpy()]
        outs = [int(v) for v in op.OutputsAsNumpy()]
        out = outs[0]
        if opname == "DEQUANTIZE":
            if ins[0] not in consts:
                raise fail("DEQUANTIZE of a non-constant tensor")
            consts[out] = consts[ins[0]].astype(np.float32)
            continue
        if opname in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            x, w = ins[0], ins[1]
            weight = consts[w]
            h_in, w_in = shape(x)[1:3]
            if opname == "CONV_2D":
                o = options(op, tfl.Conv2DOptions)
                kernel = weight.transpose(0, 3, 1, 2)  # OHWI -> OIHW
                group = 1
            else:
                o = options(op, tfl.DepthwiseConv2DOptions)
                kernel = weight.transpose(3, 0, 1, 2)  # 1HWC -> C1HW
                group = int(shape(x)[3])
                if kernel.shape[0] != group:
                    raise fail(f"depthwise multiplier {kernel.shape[0] // group}")
            kh, kw = kernel.shape[2:]
            sh, sw = o.StrideH(), o.StrideW()
            dh, dw = o.DilationHFactor(), o.DilationWFactor()
            if o.Padding() == 0:
                (t0, t1), (l0, l1) = _same_pads(h_in, kh, sh, dh), _same_pads(w_in, kw, sw, dw)
            else:
                t0 = t1 = l0 = l1 = 0
            conv_in = [name(x), init(kernel, "w")]
            if len(ins) > 2 and ins[2] >= 0:
                conv_in.append(init(consts[ins[2]].astype(np.float32), "b"))
            raw = name(out) + "_raw"
            node("Conv", conv_in, [raw], strides=[sh, sw], dilations=[dh, dw], pads=[t0, l0, t1, l1],
                 group=group, kernel_shape=[kh, kw])
            activation(o.FusedActivationFunction(), raw, name(out))
            layout[out] = "nchw"
        elif opname == "MAX_POOL_2D":
            o = options(op, tfl.Pool2DOptions)
            kh, kw, sh, sw = o.FilterHeight(), o.FilterWidth(), o.StrideH(), o.StrideW()
            h_in, w_in = shape(ins[0])[1:3]
            if o.Padding() == 0:
                (t0, t1), (l0, l1) = _same_pads(h_in, kh, sh), _same_pads(w_in, kw, sw)
            else:
                t0 = t1 = l0 = l1 = 0
            raw = name(out) + "_raw"
            node("MaxPool", [name(ins[0])], [raw], kernel_shape=[kh, kw], strides=[sh, sw], pads=[t0, l0, t1, l1])
            activation(o.FusedActivationFunction(), raw, name(out))
            layout[out] = "nchw"
        elif opname == "RELU":
            node("Relu", [name(ins[0])], [name(out)])
            layout[out] = layout[ins[0]]
        elif opname == "ADD":
            o = options(op, tfl.AddOptions)
            args = []
            for t in ins:
                if t in consts:
                    c = consts[t].astype(np.float32)
                    if c.ndim == 4:
                        c = c.transpose(0, 3, 1, 2)
                    args.append(init(c, "add"))
                else:
                    args.append(name(t))
            if len({layout.get(t, "const") for t in ins} - {"const"}) > 1:
                raise fail("ADD of tensors in different layouts")
            raw = name(out) + "_raw"
            node("Add", args, [raw])
            activation(o.FusedActivationFunction(), raw, name(out))
            layout[out] = next(layout[t] for t in ins if t in layout)
        elif opname == "PAD":
            pads = consts[ins[1]].astype(np.int64)
            if layout[ins[0]] == "nchw":
                pads = pads[[0, 3, 1, 2]]
            node("Pad", [name(ins[0]), init(np.concatenate([pads[:, 0], pads[:, 1]]), "pads")], [name(out)],
                 mode="constant")
            layout[out] = layout[ins[0]]
        elif opname == "RESIZE_BILINEAR":
            o = options(op, tfl.ResizeBilinearOptions)
            mode = ("align_corners" if o.AlignCorners() else
                    "half_pixel" if o.HalfPixelCenters() else "asymmetric")
            nb, _, _, ch = shape(ins[0])
            oh, ow = (int(v) for v in consts[ins[1]])
            node("Resize", [name(ins[0]), "", "", init(np.array([nb, ch, oh, ow], np.int64), "sizes")], [name(out)],
                 mode="linear", coordinate_transformation_mode=mode)
            layout[out] = "nchw"
        elif opname == "CONCATENATION":
            o = options(op, tfl.ConcatenationOptions)
            axis = o.Axis()
            rank = len(shape(out))
            axis = axis % rank
            if layout[ins[0]] == "nchw":
                axis = _NHWC_TO_NCHW_AXIS[axis]
            raw = name(out) + "_raw"
            node("Concat", [name(t) for t in ins], [raw], axis=axis)
            activation(o.FusedActivationFunction(), raw, name(out))
            layout[out] = layout[ins[0]]
        elif opname == "RESHAPE":
            src = name(ins[0])
            if layout[ins[0]] == "nchw":
                src = name(ins[0]) + "_nhwc"
                node("Transpose", [name(ins[0])], [src], perm=[0, 2, 3, 1])
            node("Reshape", [src, init(np.array(shape(out), np.int64), "shape")], [name(out)])
            layout[out] = "nchw" if len(shape(out)) == 4 else "plain"
            if layout[out] == "nchw":
                raise fail("RESHAPE to a 4-D tensor")
        else:
            raise fail(f"op {opname}")
    result = Converted(nodes, inits, name(inp), (in_shape[0], in_shape[3], in_shape[1], in_shape[2]))
    for t in (int(v) for v in g.OutputsAsNumpy()):
        if layout.get(t) != "plain":
            raise fail(f"output {g.Tensors(t).Name()!r} is not a flat tensor")
        result.outputs[g.Tensors(t).Name().decode()] = (name(t), shape(t))
    return result
