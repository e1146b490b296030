"""Each head, and the open-set ("unknown") check, as ONNX nodes on the embedding ``(N, d)`` float32.

The rules are those of :mod:`faceforge.heads` (read them there); here they are written as graph
nodes with every constant folded in:

* preprocessing: L2 normalisation (``head._normalizes()``), then standardisation folded into
  the first weights: ``((z - mean) / scale) @ W + b == z @ (W / scale) + (b - (mean / scale) @ W)``;
* ``logreg``: ``softmax(z @ W + b)``; ``svm``: the inverse temperature ``a`` folded in as well
  (``softmax(z @ aW + ab)``);
* ``mlp``: one hidden layer, then softmax, or for two classes scikit-learn's logistic output
  ``[1 - p, p]`` with ``p = sigmoid(clip(o, -500, 500))``;
* ``knn``: the reference set is a constant; the ``k`` nearest by cosine (``1 - q.g``) or euclidean
  distance (``TopK``), votes ``class_weight / (distance + 1e-6)``, normalised, mixed with
  ``smoothing`` of the uniform distribution. Refused above :data:`MAX_KNN_BYTES`;
* ``ridge``: ``value = z @ coef + intercept``;
* classes with no training sample: probability 0 (a 0/1 matrix spreads the compact columns);
* open set: the highest cosine similarity to the class centroids (or nearest training
  embeddings; ``euclidean``: minus the smallest distance) of the raw embedding, and
  ``accepted = score >= threshold`` (what :meth:`FaceClassifier.predict_embeddings` applies:
  ``score < threshold`` gets the rejected label).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from faceforge.errors import ParameterError
from faceforge.export.graph import Graph

#: The largest kNN reference set (float32 bytes) written into a graph: 32 MiB, e.g. 65,536 dlib-resnet
#: (128-D) or 6,553 effnet-lite0 (1280-D) training embeddings. Above it the graph grows past what a
#: browser downloads comfortably, and each face costs one distance per reference row (see the report
#: of ``benchmarks/bench_export.py`` for the measured latency).
MAX_KNN_BYTES = 32 << 20

_ACTIVATIONS = {"relu": "Relu", "tanh": "Tanh", "logistic": "Sigmoid", "identity": "Identity"}


def _fold_standardize(head: Any, W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``W``, ``b`` of a layer on standardised features, rewritten to act on the unstandardised ones."""
    W, b = np.asarray(W, np.float64), np.asarray(b, np.float64)
    if not head._standardizes():
        return W, b
    mean = np.asarray(head.arrays_["mean"], np.float64)
    scale = np.asarray(head.arrays_["scale"], np.float64)
    return W / scale[:, None], b - (mean / scale) @ W


def _prepared(g: Graph, head: Any, x: str) -> str:
    return g.l2_normalize(x) if head._normalizes() else x


def _spread(g: Graph, head: Any, p: str) -> str:
    """Compact probabilities ``(N, m)`` as ``(N, K)`` over every class (absent classes get 0)."""
    present = np.asarray(head.arrays_["present"], np.int64)
    k = len(head.classes_)
    if len(present) == k and np.array_equal(present, np.arange(k)):
        return p
    S = np.zeros((len(present), k), np.float32)
    S[np.arange(len(present)), present] = 1.0
    return g.op("MatMul", [p, g.const(S, "spread")], "probabilities_full")


def _linear(g: Graph, head: Any, z: str) -> str:
    W, b = _fold_standardize(head, head.arrays_["W"], head.arrays_["b"])
    if head.kind == "svm":
        a = float(head.arrays_["temperature"][0])
        W, b = a * W, a * b
    logits = g.op("Add", [g.op("MatMul", [z, g.const(W, "W")]), g.const(b, "b")], "logits")
    return g.op("Softmax", [logits], "softmax", axis=-1)


def _mlp(g: Graph, head: Any, z: str) -> str:
    s = head.arrays_
    W1, b1 = _fold_standardize(head, s["W1"], s["b1"])
    h = g.op("Add", [g.op("MatMul", [z, g.const(W1, "W1")]), g.const(b1, "b1")])
    h = g.op(_ACTIVATIONS[head.activation], [h], "hidden")
    o = g.op("Add", [g.op("MatMul", [h, g.const(s["W2"], "W2")]), g.const(s["b2"], "b2")], "out")
    if np.asarray(s["W2"]).shape[1] != 1:
        return g.op("Softmax", [o], "softmax", axis=-1)
    p1 = g.op("Sigmoid", [g.op("Clip", [o, g.const(-500.0, "lo"), g.const(500.0, "hi")])], "p1")
    return g.op("Concat", [g.op("Sub", [g.const(np.ones((1, 1)), "one"), p1]), p1], "binary", axis=1)


def knn_bytes(head: Any) -> int:
    """Bytes of the kNN reference set as a float32 constant."""
    G = head.arrays_["gallery"]
    return int(np.prod(G.shape)) * 4


def _knn(g: Graph, head: Any, z: str) -> str:
    G = np.asarray(head.arrays_["gallery"], np.float64)
    if knn_bytes(head) > MAX_KNN_BYTES:
        raise ParameterError(
            f"this kNN head holds {len(G)} reference embeddings of {G.shape[1]} values ({knn_bytes(head) / 2**20:.0f} "
            f"MiB as float32), more than the {MAX_KNN_BYTES >> 20} MiB faceforge writes into an ONNX graph. "
            f"Fix: retrain with --head logreg (the default; a few KB), or on fewer photos.")
    gy = np.asarray(head.arrays_["gallery_y"], np.int64)
    cw = np.asarray(head.arrays_["class_weight"], np.float64)
    m = len(head.arrays_["present"])
    k = int(min(int(head.arrays_["n_neighbors"][0]), len(G)))
    sims = g.op("MatMul", [z, g.const(G.T, "gallery_t")], "sims")
    if head.metric == "cosine":
        dist = g.op("Sub", [g.const(1.0, "one"), sims], "dist")
    else:
        qq = g.reduce("ReduceSum", g.op("Mul", [z, z]), [1], True)
        sq = g.op("Sub", [g.op("Add", [qq, g.const((G**2).sum(axis=1)[None, :], "gg")]),
                          g.op("Mul", [g.const(2.0, "two"), sims])])
        dist = g.op("Sqrt", [g.op("Max", [sq, g.const(0.0, "zero")])], "dist")
    from onnx import helper

    d_k, i_k = g.name("knn_d"), g.name("knn_i")
    g.nodes.append(helper.make_node("TopK", [dist, g.ints([k], "k")], [d_k, i_k], name=d_k, largest=0, sorted=1))
    onehot = np.zeros((len(G), m), np.float32)
    onehot[np.arange(len(G)), gy] = 1.0
    wrow = g.op("Gather", [g.const(cw[gy], "row_weight"), i_k], axis=0)                    # (N, k)
    wts = g.op("Div", [wrow, g.op("Add", [g.op("Max", [d_k, g.const(0.0, "zero")]), g.const(1e-6, "eps")])])
    votes = g.op("Mul", [g.op("Gather", [g.const(onehot, "onehot"), i_k], axis=0),             # (N, k, m)
                         g.op("Unsqueeze", [wts, g.ints([2], "ax")])])
    votes = g.reduce("ReduceSum", votes, [1], False)                                         # (N, m)
    total = g.reduce("ReduceSum", votes, [1], True)
    P = g.op("Where", [g.op("Greater", [total, g.const(0.0, "zero")]),
                       g.op("Div", [votes, g.op("Max", [total, g.const(1e-30, "tiny")])]),
                       g.const(np.full((1, m), 1.0 / m), "uniform")])
    s = float(head.smoothing)
    return g.op("Add", [g.op("Mul", [P, g.const(1.0 - s, "keep")]), g.const(s / m, "smooth")], "knn")


_CLASSIFIERS = {"logreg": _linear, "svm": _linear, "mlp": _mlp, "knn": _knn}


def head_nodes(g: Graph, head: Any, x: str) -> str:
    """Add the head's nodes on embedding tensor ``x``.

    Returns:
        The ``(N, K)`` probabilities tensor (classification) or the ``(N,)`` value tensor (regression).

    Raises:
        ParameterError: a head kind this faceforge cannot export, or a kNN reference set too large.
    """
    z = _prepared(g, head, x)
    if head.task == "regression":
        if head.kind != "ridge":
            raise ParameterError(f"regression head {head.kind!r} cannot be exported; exportable: ridge.")
        coef, icpt = _fold_standardize(head, np.asarray(head.arrays_["coef"])[:, None], head.arrays_["intercept"])
        v = g.op("Add", [g.op("MatMul", [z, g.const(coef, "coef")]), g.const(icpt, "intercept")])
        return g.op("Squeeze", [v, g.ints([1], "axis")], "value")
    build = _CLASSIFIERS.get(head.kind)
    if build is None:
        raise ParameterError(f"head {head.kind!r} cannot be exported; exportable: {', '.join(_CLASSIFIERS)}, ridge.")
    return _spread(g, head, build(g, head, z))


def openset_nodes(g: Graph, openset: Any, x: str) -> tuple[str, str]:
    """Add the unknown check on the raw embedding ``x``: returns ``(score (N,), accepted (N,) bool)``."""
    G, _, thr = openset._fitted()
    G = np.asarray(G, np.float64)
    if openset.metric == "cosine":
        score = g.reduce("ReduceMax", g.op("MatMul", [g.l2_normalize(x), g.const(G.T, "centroids_t")]), [1], False)
    else:
        sims = g.op("MatMul", [x, g.const(G.T, "centroids_t")])
        qq = g.reduce("ReduceSum", g.op("Mul", [x, x]), [1], True)
        sq = g.op("Sub", [g.op("Add", [qq, g.const((G**2).sum(axis=1)[None, :], "gg")]),
                          g.op("Mul", [g.const(2.0, "two"), sims])])
        nearest = g.reduce("ReduceMin", sq, [1], False)
        score = g.op("Neg", [g.op("Sqrt", [g.op("Max", [nearest, g.const(0.0, "zero")])])])
    accepted = g.op("GreaterOrEqual", [score, g.const(float(thr), "threshold")], "accepted")
    return score, accepted
