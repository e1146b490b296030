"""The three MTCNN nets as ONNX graphs, built from facenet-pytorch's state dicts.

:mod:`faceforge.detectors.mtcnn` runs them. The state dicts are read without PyTorch
(:mod:`faceforge.registry.torchfile`) and each net is rebuilt once as an ONNX graph (float NHWC RGB
in 0-255; the ``(x - 127.5) / 128`` input scaling is folded into the first convolution, which is
exact because the nets never pad), then cached by :func:`onnx_path`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from faceforge.errors import ModelIntegrityError

_CONVERTER_VERSION = "3"
_OPSET = 17

#: Layer list of each net: ("conv", name) | ("prelu", name) | ("pool", kernel, stride) |
#: ("flatten",) | ("dense", name); then the output heads.
_LAYERS: dict[str, list[tuple]] = {
    "pnet": [("conv", "conv1"), ("prelu", "prelu1"), ("pool", 2, 2), ("conv", "conv2"), ("prelu", "prelu2"),
             ("conv", "conv3"), ("prelu", "prelu3")],
    "rnet": [("conv", "conv1"), ("prelu", "prelu1"), ("pool", 3, 2), ("conv", "conv2"), ("prelu", "prelu2"),
             ("pool", 3, 2), ("conv", "conv3"), ("prelu", "prelu3"), ("flatten",), ("dense", "dense4"),
             ("prelu", "prelu4")],
    "onet": [("conv", "conv1"), ("prelu", "prelu1"), ("pool", 3, 2), ("conv", "conv2"), ("prelu", "prelu2"),
             ("pool", 3, 2), ("conv", "conv3"), ("prelu", "prelu3"), ("pool", 2, 2), ("conv", "conv4"),
             ("prelu", "prelu4"), ("flatten",), ("dense", "dense5"), ("prelu", "prelu5")],
}
#: Output heads: (layer, output name, softmax?).
_HEADS: dict[str, list[tuple[str, str, bool]]] = {
    "pnet": [("conv4_1", "prob", True), ("conv4_2", "reg", False)],
    "rnet": [("dense5_1", "prob", True), ("dense5_2", "reg", False)],
    "onet": [("dense6_1", "prob", True), ("dense6_2", "reg", False), ("dense6_3", "points", False)],
}
_NETS = ("pnet", "rnet", "onet")


def _input(net: str) -> dict[str, Any]:
    """The registry's input description of ``net`` (``mtcnn.pnet`` ...)."""
    from faceforge.registry import get_spec

    return dict(get_spec(f"mtcnn.{net}").input)


#: Input side of each net, from the registry (P-Net: its cell, the smallest input it takes).
SIDE = {net: int(_input(net)["size"][0]) for net in _NETS}


def build_onnx(net: str, weights: Path) -> bytes:
    """Build one MTCNN net as serialised ONNX from facenet-pytorch's state dict.

    Args:
        net: ``"pnet"``, ``"rnet"`` or ``"onet"``.
        weights: path of the matching ``.pt`` file.

    Returns:
        ONNX bytes. Input ``images``: ``(N, H, W, 3) float32`` RGB in 0-255 (P-Net: any size
        >= 12; R-Net 24x24; O-Net 48x48). Outputs ``prob`` (face probability, one channel),
        ``reg`` (box regression) and, for O-Net, ``points`` (5 x then 5 y, relative to the crop).

    Raises:
        ModelIntegrityError: the state dict does not match the facenet-pytorch layout.
    """
    from faceforge.registry.torchfile import load_state_dict

    sd = load_state_dict(weights)
    try:
        return _build(net, sd)
    except (KeyError, ValueError) as e:
        raise ModelIntegrityError(
            f"{weights}: not a facenet-pytorch MTCNN {net} state dict ({e}); reinstall with: "
            f"pip install --no-deps facenet-pytorch==2.6.0"
        ) from None


def _build(net: str, sd: dict[str, np.ndarray], split: Sequence[str] = ("prelu1",)) -> bytes:
    """Emit the ONNX graph of ``net``.

    The PReLUs named in ``split`` are computed without an element-wise PReLU node (slow in ONNX
    Runtime, and it stops the conv from being fused with its activation): as ``prelu(x) =
    relu(x) - a * relu(-x)``, the conv in front produces ``[x, -x]`` with a fused ReLU and the
    next linear layer takes the doubled channels with weights ``[W, -W * a]`` (before a max-pool,
    which is not linear, a 1x1 conv recombines the halves). Same function up to float rounding;
    measured faster only for the first PReLU of each net, so that is the default.
    """
    from onnx import TensorProto, checker, helper, numpy_helper

    nodes: list[Any] = []
    inits: list[Any] = []

    def const(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), name))
        return name

    def node(op: str, inputs: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    layers = _LAYERS[net]
    pending: np.ndarray | None = None  # PReLU slopes still to apply (split mode), per channel
    flat_side = 0  # side of the feature map that a dense layer after Flatten sees
    inp = _input(net)
    spatial = 0 if inp.get("any_size") else SIDE[net]
    if len(set(inp["mean"])) != 1 or len(set(inp["std"])) != 1:
        raise ValueError(f"the registry's mtcnn.{net} input has per-channel mean/std; the fold needs one value")
    mean, inv_std = float(inp["mean"][0]), 1.0 / float(inp["std"][0])

    def linear_weights(w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fold a pending split PReLU into the linear layer ``(w, b)`` that consumes it."""
        nonlocal pending
        if pending is None:
            return w, b
        a = pending
        pending = None
        if w.ndim == 4:  # conv: input channels on axis 1
            return np.concatenate([w, -w * a[None, :, None, None]], axis=1), b
        c = a.shape[0]  # dense: input is (C, S, S) flattened
        wv = w.reshape(w.shape[0], c, -1)
        return np.concatenate([wv, -wv * a[None, :, None]], axis=1).reshape(w.shape[0], -1), b

    def flush(x: str, tag: str) -> str:
        """Recombine a pending split PReLU explicitly (1x1 conv) before a non-linear layer."""
        nonlocal pending
        if pending is None:
            return x
        c = pending.shape[0]
        w = np.zeros((c, 2 * c, 1, 1), np.float64)
        w[np.arange(c), np.arange(c), 0, 0] = 1.0
        w[np.arange(c), c + np.arange(c), 0, 0] = -pending
        pending = None
        return node("Conv", [x, const(f"{tag}.w", w), const(f"{tag}.b", np.zeros(c))], tag, kernel_shape=[1, 1])

    x = node("Transpose", ["images"], "nchw", perm=[0, 3, 1, 2])
    first = True
    for i, layer in enumerate(layers):
        kind = layer[0]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if kind in ("conv", "dense"):
            name = layer[1]
            w = sd[f"{name}.weight"].astype(np.float64)
            b = sd[f"{name}.bias"].astype(np.float64)
            if kind == "conv" and first:  # fold (x - mean) / std into the first conv: exact, no padding
                b = b - mean * inv_std * w.sum(axis=(1, 2, 3))
                w = w * inv_std
            first = False
            if kind == "dense" and flat_side:
                # facenet-pytorch flattens in (W, H, C) order (x.permute(0, 3, 2, 1)); reorder the
                # columns to the (C, H, W) order of a plain Flatten.
                c = w.shape[1] // (flat_side * flat_side)
                if c * flat_side * flat_side != w.shape[1]:
                    raise ValueError(f"{name} expects {w.shape[1]} inputs, feature map is {flat_side}x{flat_side}")
                w = w.reshape(w.shape[0], flat_side, flat_side, c).transpose(0, 3, 2, 1).reshape(w.shape[0], -1)
                flat_side = 0
            w, b = linear_weights(w, b)
            do_split = nxt is not None and nxt[0] == "prelu" and nxt[1] in split
            if do_split:
                w, b = np.concatenate([w, -w]), np.concatenate([b, -b])
            if kind == "conv":
                k = w.shape[-1]
                x = node("Conv", [x, const(f"{name}.w", w), const(f"{name}.b", b)], name, kernel_shape=[k, k])
                spatial = spatial - k + 1 if spatial else 0
            else:
                x = node("Gemm", [x, const(f"{name}.w", w), const(f"{name}.b", b)], name, transB=1)
            if do_split:
                x = node("Relu", [x], name + "_relu")
        elif kind == "prelu":
            slope = sd[f"{layer[1]}.weight"].astype(np.float64)
            if layer[1] in split:
                pending = slope
            else:
                shape = (-1,) if x.startswith("dense") else (-1, 1, 1)
                x = node("PRelu", [x, const(f"{layer[1]}.slope", slope.reshape(shape))], layer[1])
        elif kind == "pool":
            x = flush(x, f"combine{i}")
            k, st = layer[1], layer[2]
            x = node("MaxPool", [x], f"pool{i}", kernel_shape=[k, k], strides=[st, st], ceil_mode=1)
            spatial = -(-(spatial - k) // st) + 1 if spatial else 0
        elif kind == "flatten":
            flat_side = spatial
            x = node("Flatten", [x], "flat", axis=1)
    tail = pending
    outputs = []
    for name, out, softmax in _HEADS[net]:
        w = sd[f"{name}.weight"].astype(np.float64)
        b = sd[f"{name}.bias"].astype(np.float64)
        if softmax:  # two-class softmax == sigmoid of the logit difference: one channel, fusable
            w, b = w[1:2] - w[0:1], b[1:2] - b[0:1]
        pending = tail
        w, b = linear_weights(w, b)
        y = name + "_logit" if softmax else out
        if net == "pnet":
            node("Conv", [x, const(f"{name}.w", w), const(f"{name}.b", b)], y, kernel_shape=[1, 1])
        else:
            node("Gemm", [x, const(f"{name}.w", w), const(f"{name}.b", b)], y, transB=1)
        if softmax:
            node("Sigmoid", [y], out)
        dims: list[Any] = ["N", w.shape[0], "h", "w"] if net == "pnet" else ["N", w.shape[0]]
        outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, dims))
    side: list[Any] = ["H", "W"] if inp.get("any_size") else [SIDE[net], SIDE[net]]
    graph = helper.make_graph(nodes, f"mtcnn_{net}",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", *side, 3])],
                              outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)], producer_name="faceforge")
    model.ir_version = 8
    checker.check_model(model)
    return model.SerializeToString()


def onnx_path(net: str) -> Path:
    """Path of the cached ONNX file of ``net`` (``"pnet"``, ``"rnet"``, ``"onet"``)."""
    from faceforge.registry import derived_file

    return derived_file(f"mtcnn.{net}", ".onnx", lambda p: build_onnx(net, p), _CONVERTER_VERSION)
