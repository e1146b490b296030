"""The emotion network without its mirror pass: half the cost per face.

The shipped ``emotion.onnx`` runs every face and its mirror image as one batch and averages the
two softmaxes. :func:`single_pass_onnx` derives, once (cached by :func:`faceforge.registry.derived_file`),
the graph that runs the face alone: its ``Softmax`` output becomes the graph's output ``probs``
and the mirror batch is cut off. No PyTorch is needed; the ``onnx`` package does the surgery.
"""

from __future__ import annotations

from pathlib import Path

#: Bump when the derived graph changes.
_VERSION = "1"


def _integrity(weights: Path, what: str):
    from faceforge.errors import ModelIntegrityError

    return ModelIntegrityError(
        f"{weights}: expected faceforge's emotion network ({what}), but the graph differs; reinstall "
        f"faceforge or use EmotionModel(mirror=True), which runs the shipped graph as it is")


def single_pass_onnx(weights: Path) -> bytes:
    """Serialised ONNX: the shipped graph's input, ``probs`` of the face alone (no mirror average).

    Raises:
        ModelIntegrityError: the graph is not the mirror-batched network described above.
    """
    import onnx
    from onnx import helper

    model = onnx.load(str(weights))
    g = model.graph
    x = g.input[0].name
    concat = [n for n in g.node if n.op_type == "Concat" and len(n.input) == 2 and n.input[0] == x
              and next((helper.get_attribute_value(a) for a in n.attribute if a.name == "axis"), None) == 0]
    softmax = [n for n in g.node if n.op_type == "Softmax"]
    if len(concat) != 1 or len(softmax) != 1:
        raise _integrity(weights, "one Concat of the input with its mirror and one Softmax")
    batched = concat[0].output[0]
    for n in g.node:  # the network reads the input, not [input; mirror]
        for i, name in enumerate(n.input):
            if name == batched:
                n.input[i] = x
    for n in g.node:  # the old output (the mirror average) is dropped below
        for i, name in enumerate(n.output):
            if name == "probs":
                n.output[i] = "probs_mirror_average"
    softmax[0].output[0] = "probs"
    # keep only what "probs" needs
    producers = {o: n for n in g.node for o in n.output}
    needed, todo = set(), ["probs"]
    while todo:
        n = producers.get(todo.pop())
        if n is None or id(n) in needed:
            continue
        needed.add(id(n))
        todo.extend(n.input)
    kept = [n for n in g.node if id(n) in needed]
    del g.node[:]
    g.node.extend(kept)
    used = {i for n in kept for i in n.input}
    inits = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(inits)
    model.producer_name = "faceforge (emotion, single pass)"
    onnx.checker.check_model(model)
    return model.SerializeToString()


def single_pass_path(spec_name: str) -> Path:
    """Path of the cached single-pass graph of registry entry ``spec_name``."""
    from faceforge.registry import derived_file

    return derived_file(spec_name, ".single.onnx", single_pass_onnx, _VERSION)
