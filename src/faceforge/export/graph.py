"""A small ONNX graph builder: named nodes, constants, opset-aware reductions, and imported sub-graphs.

Every exported graph is built with one :class:`Graph`: the embedder's own ONNX graphs are copied
in with their names prefixed (:meth:`Graph.import_model`), and the preprocessing and the head are
added around them as plain nodes. Everything is float32 (ONNX Runtime Web runs float32 kernels
everywhere; doubles are not).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from faceforge.errors import ParameterError
from faceforge.registry.onnx_build import GraphBuilder

#: Opsets the exported graphs can be written in.
MIN_OPSET, MAX_OPSET = 17, 21


def check_opset(opset: Any) -> int:
    """``opset`` as an int in ``[MIN_OPSET, MAX_OPSET]``.

    Raises:
        ParameterError: another value.
    """
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= int(opset) <= MAX_OPSET:
        raise ParameterError(f"opset must be an integer from {MIN_OPSET} to {MAX_OPSET}, but got {opset!r}. "
                             f"Fix: leave the default (17), which ONNX Runtime 1.14+ and onnxruntime-web run.")
    return int(opset)


def model_opset(model: Any) -> int:
    """The default-domain opset a ``ModelProto`` declares."""
    return max((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), default=1)


def _same_semantics(node: Any, src: int, dst: int) -> bool:
    """Whether ``node`` means the same in opset ``src`` and ``dst`` (its schema did not change between them)."""
    from onnx import defs

    try:
        a = defs.get_schema(node.op_type, src, node.domain).since_version
        b = defs.get_schema(node.op_type, dst, node.domain).since_version
    except Exception:  # noqa: BLE001 - an op unknown to this onnx: let the converter decide
        return False
    if a == b:
        return True
    # Pad 18/19/21 add an optional 4th input (axes), mode "wrap" and more types: a Pad with 2-3
    # inputs and an older mode is the same op.
    return node.op_type == "Pad" and min(a, b) >= 13 and len(node.input) <= 3 and _pad_mode(node) != "wrap"


def _pad_mode(node: Any) -> str:
    from onnx import helper

    for a in node.attribute:
        if a.name == "mode":
            return helper.get_attribute_value(a).decode()
    return "constant"


def at_opset(model: Any, opset: int) -> Any:
    """``model`` declared at ``opset``: relabelled when no node changes meaning, else converted.

    Raises:
        ParameterError: the model cannot be expressed at that opset (the message names the lowest one that works).
    """
    src = model_opset(model)
    if src == opset:
        return model
    if all(_same_semantics(n, src, opset) for n in model.graph.node):
        import onnx

        m = onnx.ModelProto()
        m.CopyFrom(model)
        for o in m.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = opset
        return m
    from onnx import version_converter

    try:
        return version_converter.convert_version(model, opset)
    except Exception as e:  # noqa: BLE001 - onnx raises plain RuntimeError / internal errors
        raise ParameterError(f"the embedder graph {model.graph.name!r} is written in opset {src} and cannot be "
                             f"converted to opset {opset} ({e}). Fix: export with --opset {max(src, MIN_OPSET)} "
                             f"or higher.") from e


class Graph(GraphBuilder):
    """Collects nodes, initialisers, inputs and outputs of one ONNX graph at a fixed opset.

    Args:
        opset: the default-domain opset the graph is written in.
    """

    def __init__(self, opset: int) -> None:
        super().__init__()
        self.opset = int(opset)
        self.inputs: list[Any] = []
        self.outputs: list[Any] = []

    def reduce(self, op: str, x: str, axes: list[int], keepdims: bool) -> str:
        """``Reduce*`` over ``axes``: axes as an attribute before opset 18 (ReduceSum: 13), as an input from then on."""
        as_input = self.opset >= (13 if op == "ReduceSum" else 18)
        if as_input:
            return self.op(op, [x, self.ints(axes, "axes")], keepdims=int(keepdims))
        return self.op(op, [x], axes=list(axes), keepdims=int(keepdims))

    def l2_normalize(self, x: str) -> str:
        """Rows of ``x (N, d)`` divided by ``max(||row||, 1e-12)`` (faceforge's ``l2_normalize``)."""
        norm = self.reduce("ReduceL2", x, [1], True)
        return self.op("Div", [x, self.op("Max", [norm, self.const(1e-12, "eps")])], "l2n")

    def flip_average(self, chip: str, embed: Any) -> str:
        """``embed`` of ``chip (N, H, W, C)`` averaged with ``embed`` of its mirror image (columns
        reversed), in one run of the embedder on the ``2N`` chips: faceforge's ``tta="flip"``
        (:func:`faceforge.embedders.tta.flip_average`, the accurate preset)."""
        big = 2 ** 62
        mirrored = self.op("Slice", [chip, self.ints([-1]), self.ints([-big]), self.ints([2]), self.ints([-1])],
                           "mirror")
        e = embed(self.op("Concat", [chip, mirrored], "both", axis=0))
        n = self.op("Shape", [chip], "n", start=0, end=1)
        zero, axis0 = self.ints([0]), self.ints([0])
        first = self.op("Slice", [e, zero, n, axis0], "first")
        second = self.op("Slice", [e, n, self.ints([big]), axis0], "second")
        return self.op("Mul", [self.op("Add", [first, second]), self.const(0.5, "half")], "flipavg")

    def add_input(self, name: str, elem_type: int, shape: list[Any]) -> str:
        from onnx import helper

        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def add_output(self, tensor: str, name: str, elem_type: int, shape: list[Any]) -> None:
        """Expose ``tensor`` as graph output ``name`` (through an Identity node when the names differ)."""
        from onnx import helper

        if tensor != name:
            self.op("Identity", [tensor], out=name)
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))

    def import_model(self, model: Any, prefix: str, feed: dict[str, str]) -> None:
        """Copy ``model``'s nodes and initialisers in, every name prefixed with ``prefix``.

        Args:
            model: an ``onnx.ModelProto`` (converted to this graph's opset first).
            prefix: e.g. ``"dlib-resnet/"``; the imported tensor ``t`` is then ``prefix + t``.
            feed: the model's input name -> the tensor of this graph that feeds it.
        """
        from onnx import compose

        m = compose.add_prefix(at_opset(model, self.opset), prefix)
        for inp in model.graph.input:
            if inp.name in feed:
                self.op("Identity", [feed[inp.name]], out=prefix + inp.name)
        init_names = {i.name for i in m.graph.initializer}
        for inp in m.graph.input:
            if inp.name not in init_names and inp.name[len(prefix):] not in feed:
                raise ParameterError(f"internal: input {inp.name!r} of {model.graph.name!r} is not fed")
        self.nodes.extend(m.graph.node)
        self.inits.extend(m.graph.initializer)

    def model(self, name: str, doc: str) -> Any:
        """The checked ``onnx.ModelProto``."""
        import onnx
        from onnx import helper

        graph = helper.make_graph(self.nodes, name, self.inputs, self.outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                  producer_name="faceforge", doc_string=doc)
        model.ir_version = 8 if self.opset <= 17 else 9 if self.opset <= 20 else 10
        onnx.checker.check_model(model)
        return model
