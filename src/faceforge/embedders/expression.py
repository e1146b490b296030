"""Facial-expression features from faceforge's own emotion network (``faceforge-emotion``), run on ONNX.

faceforge ships a compact CNN trained on FER2013's training split (model card
``faceforge/attributes/models/emotion.md``) that scores 7 expressions. Its last hidden layer, the
256-unit fully connected layer (after batch norm and ReLU) that feeds the 7-class classifier,
describes a face's expression far better than identity or ImageNet features do, so heads trained on
it learn smiles, surprise and other expression attributes from a few hundred photos.

The shipped graph is not changed; a derived copy is built once with the ``onnx`` package and cached
(:func:`faceforge.registry.derived_file`):

* the classifier (the ``Gemm`` that feeds the final ``Softmax``) is found by walking the graph, and
  its input, the penultimate activation, becomes an extra output;
* the shipped graph runs each face and its mirror image as one batch of ``2n`` and averages their
  scores; the derived graph averages the two halves of the penultimate activation the same way, so
  the ``features`` output is mirror-averaged like the ``probs`` output.

The embedding (:data:`LAYOUT`) is the 256 mirror-averaged features followed by the network's 7
class probabilities (FER2013's classes, :data:`CLASSES`). Measured with the default head
(benchmarks/bench_expression.py, mean of 5 training draws; docs/benchmarks.md): FER2013 happy vs
neutral from 100 + 100 photos 91.5% balanced with the features alone, 90.6% with the
probabilities alone, 91.5% with both; seed_emotion4 70.2%, 69.3%, 70.2%. The probabilities add
nothing measurable there but cost nothing and give a head the network's own answer, so both are
kept.

Chips are the emotion model's input: a square crop of the detector's box (registry
``alignment``: ``template="margin"``, the emotion model's ``MARGIN`` and its per-detector
``framing``, so the live detector's faces are cut as the emotion attribute cuts them), 64x64,
converted to grey here and scaled to [-1, 1] with the registry's ``mean`` / ``std``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from faceforge.registry.runtime import LazySession

from faceforge.embedders.base import Embedder
from faceforge.errors import ModelIntegrityError
from faceforge.registry import get_spec

#: Bump when the derived graph changes (``derived_file`` then builds a new cache file).
_CONVERTER_VERSION = "1"
_SPEC = "expression"
#: FER2013's 7 classes, in the order of the probabilities in the embedding (from the registry).
CLASSES: list[str] = list(get_spec(_SPEC).input["classes"])
#: Width of the penultimate layer.
FEATURES = int(get_spec(_SPEC).input["dim"]) - len(CLASSES)
#: name -> slice of the embedding.
LAYOUT: dict[str, slice] = {"features": slice(0, FEATURES), "probs": slice(FEATURES, FEATURES + len(CLASSES))}
_OUTPUTS = ["features", "probs"]


def _integrity(weights: Path, what: str) -> ModelIntegrityError:
    return ModelIntegrityError(
        f"{weights}: expected faceforge's emotion network ({what}), but the graph differs; "
        f"reinstall faceforge (pip install --force-reinstall faceforge) or correct the 'expression' "
        f"entry in faceforge/registry/catalog.py"
    )


def _producers(graph: Any) -> dict[str, Any]:
    return {out: node for node in graph.node for out in node.output}


def _initializer_shape(graph: Any, name: str) -> list[int] | None:
    """Shape of initialiser ``name``, also when the graph casts it from fp16 first (``Cast``)."""
    inits = {i.name: list(i.dims) for i in graph.initializer}
    if name in inits:
        return inits[name]
    node = _producers(graph).get(name)
    if node is not None and node.op_type == "Cast":
        return inits.get(node.input[0])
    return None


def _penultimate(graph: Any, weights: Path) -> str:
    """Name of the tensor that feeds the classifier before the graph's ``Softmax``."""
    from onnx import helper

    softmax = [n for n in graph.node if n.op_type == "Softmax"]
    if len(softmax) != 1:
        raise _integrity(weights, f"one Softmax, found {len(softmax)}")
    gemm = _producers(graph).get(softmax[0].input[0])
    if gemm is None or gemm.op_type != "Gemm":
        raise _integrity(weights, "a Gemm classifier before the Softmax")
    shape = _initializer_shape(graph, gemm.input[1])
    trans_b = next((helper.get_attribute_value(a) for a in gemm.attribute if a.name == "transB"), 0)
    width = None if shape is None or len(shape) != 2 else shape[1] if trans_b else shape[0]
    classes = None if shape is None or len(shape) != 2 else shape[0] if trans_b else shape[1]
    if (width, classes) != (FEATURES, len(CLASSES)):
        raise _integrity(weights, f"a {FEATURES} -> {len(CLASSES)} classifier, found {width} -> {classes}")
    return str(gemm.input[0])


def _check_mirror_batch(graph: Any, weights: Path) -> None:
    """The graph must run ``[faces; mirrored faces]`` as one batch (a ``Concat`` of its input on axis 0)."""
    from onnx import helper

    x = graph.input[0].name
    for node in graph.node:
        axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), None)
        if node.op_type == "Concat" and axis == 0 and len(node.input) == 2 and node.input[0] == x:
            mirror = _producers(graph).get(node.input[1])
            if mirror is not None and mirror.op_type == "Gather" and mirror.input[0] == x:
                return
    raise _integrity(weights, "the face and its mirror image batched together inside the graph")


def build_onnx(weights: Path) -> bytes:
    """Derive the feature graph from the shipped emotion network.

    Args:
        weights: path of ``faceforge/attributes/models/emotion.onnx``.

    Returns:
        Serialised ONNX: input as the shipped graph (``(n, 64, 64) float32`` grey in [-1, 1]);
        outputs ``features`` ``(n, 256)`` (the penultimate activation, averaged over each face and
        its mirror image) and ``probs`` ``(n, 7)`` (the shipped graph's output, unchanged).

    Raises:
        ModelIntegrityError: the graph does not have the structure described above.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(weights))
    graph = model.graph
    if [o.name for o in graph.output] != ["probs"] or len(graph.input) != 1:
        raise _integrity(weights, "one input and one output called 'probs'")
    feat2n = _penultimate(graph, weights)
    _check_mirror_batch(graph, weights)

    def const(name: str, values: list[int] | float) -> str:
        dtype = np.float32 if isinstance(values, float) else np.int64
        graph.initializer.append(numpy_helper.from_array(np.asarray(values, dtype), name))
        return name

    # n = batch of the input; features = (f[0:n] + f[n:2n]) / 2, as the graph does for the scores
    p = "faceforge_expression/"
    nodes = [
        helper.make_node("Shape", [graph.input[0].name], [p + "n"], name=p + "n", start=0, end=1),
        helper.make_node("Slice", [feat2n, const(p + "zero", [0]), p + "n", const(p + "axis", [0])],
                         [p + "face"], name=p + "face"),
        helper.make_node("Slice", [feat2n, p + "n", const(p + "end", [np.iinfo(np.int64).max]), p + "axis"],
                         [p + "mirror"], name=p + "mirror"),
        helper.make_node("Add", [p + "face", p + "mirror"], [p + "sum"], name=p + "sum"),
        helper.make_node("Mul", [p + "sum", const(p + "half", 0.5)], ["features"], name="features"),
    ]
    graph.node.extend(nodes)
    graph.output.insert(0, helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", FEATURES]))
    model.producer_name = "faceforge (expression features)"
    onnx.checker.check_model(model)
    return model.SerializeToString()


def onnx_path() -> Path:
    """Path of the cached feature graph, derived from the shipped emotion network on first use."""
    from faceforge.registry import derived_file

    return derived_file(_SPEC, ".onnx", build_onnx, _CONVERTER_VERSION)


class ExpressionEmbedder(Embedder, spec="expression"):
    """Expression features (263-D) of faceforge's emotion network; see the module docs.

    Not an identity embedding: two photos of one person smiling and frowning are far apart, two
    smiling strangers close. Suits trainable heads for smiles, surprise and other
    expression attributes. Chips: the box crop of the registry's ``alignment``, RGB uint8; they
    are converted to grey here.

    Args:
        threads: ONNX Runtime intra-op threads (default: ``$FACEFORGE_THREADS`` or all cores).

    Example:
        >>> emb = ExpressionEmbedder()  # doctest: +SKIP
        >>> emb(np.zeros((64, 64, 3), np.uint8)).shape  # doctest: +SKIP
        (1, 263)
    """

    version = "1"
    #: Heads standardise each column without L2-normalising the whole vector first (as for
    #: ``agegender``: it joins two kinds of output). Measured by benchmarks/bench_expression.py
    #: (default head, mean of 5 training draws): FER2013 happy vs neutral 91.5% without, 91.6%
    #: with; seed_emotion4 70.2% without, 69.8% with: no difference beyond noise either way.
    normalize_for_heads = False

    def __init__(self, threads: int | None = None) -> None:
        from faceforge.registry import require

        require(self.name)  # fail now, with the install command, if the network is missing
        inp = get_spec(self.name).input
        self._mean = np.float32(inp["mean"][0])
        self._std = np.float32(inp["std"][0])
        self.threads = threads
        self._session = LazySession(onnx_path, threads)

    @property
    def session(self) -> Any:
        """The ONNX Runtime session of the derived graph (built and loaded on first use)."""
        return self._session.get()

    def net_input(self, chips: np.ndarray) -> np.ndarray:
        """``(n, 64, 64) float32`` network input of RGB uint8 chips: grey, ``(pixel - mean) / std``."""
        import cv2

        grey = np.stack([cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) for c in chips])
        return np.ascontiguousarray((grey.astype(np.float32) - self._mean) / self._std)

    def features_and_probs(self, chips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``((n, 256), (n, 7))`` float32: the mirror-averaged features and class probabilities."""
        sess = self.session
        feat, probs = sess.run(_OUTPUTS, {sess.get_inputs()[0].name: self.net_input(chips)})
        return np.asarray(feat, np.float32), np.asarray(probs, np.float32)

    def _embed(self, chips: np.ndarray) -> np.ndarray:
        feat, probs = self.features_and_probs(chips)
        return np.concatenate([feat, probs], axis=1).astype(np.float32)
