"""``export_model``: a faceforge model as ONE ONNX graph (chip in, probabilities out) plus its sidecar.

``OUT/classifier.onnx`` takes uint8 RGB chips ``(N, H, W, 3)`` (input ``chip``; a concatenated
embedder whose parts cut different chips takes one input per part, ``chip_0``, ``chip_1``, ...)
and holds the embedder's preprocessing, the embedder graph(s), the head with its standardisation,
weights and temperature folded in, and the unknown check. Outputs: ``probabilities (N, K)``
(classification, columns in ``model.json``'s ``labels`` order) or ``value (N,)`` (regression), and
with an unknown check ``unknown_score (N,)`` and ``accepted (N,) bool``. ``OUT/model.json`` is the
sidecar (:mod:`faceforge.export.sidecar`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceforge.errors import ParameterError

log = logging.getLogger(__name__)

CLASSIFIER_FILE = "classifier.onnx"
SIDECAR_FILE = "model.json"
DETECTOR_FILE = "detector.onnx"


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote.

    Attributes:
        folder: the output folder.
        files: file name -> path of every file written (``classifier.onnx``, ``model.json``, and
            ``detector.onnx`` with the detector).
        sidecar: the content of ``model.json``.
        opset: the ONNX opset the graph is written in (at least the one asked for: the Cydral
            nets of ``agegender`` / ``gendernet`` need 18).
        inputs: the graph's input names, in order.
        outputs: the graph's output names, in order.
    """

    folder: Path
    files: dict[str, Path]
    sidecar: dict[str, Any]
    opset: int
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    @property
    def classifier(self) -> Path:
        return self.files[CLASSIFIER_FILE]

    @property
    def sizes(self) -> dict[str, int]:
        """File name -> bytes."""
        return {k: int(p.stat().st_size) for k, p in self.files.items()}


def load_model(model: Any) -> tuple[Any, Path | None]:
    """``(FaceClassifier, its path or None)`` for a model path or a loaded classifier.

    Raises:
        ParameterError: neither a path nor a :class:`~faceforge.train.classifier.FaceClassifier`.
        BundleError: the file is missing or not a faceforge model.
    """
    from faceforge.train.classifier import FaceClassifier, load_classifier

    if isinstance(model, FaceClassifier):
        return model, Path(model.path) if model.path else None
    if isinstance(model, (str, os.PathLike)):
        return load_classifier(model), Path(model)
    raise ParameterError(f"model must be a path to a .ffm file or a loaded FaceClassifier, but got "
                         f"{type(model).__name__}. Fix: pass the model file written by `faceforge train`.")


def _part_inputs(clf: Any) -> list[tuple[str, list[str]]]:
    """``[(input name, [embedder parts it feeds])]``: one input ``chip`` when every part cuts the same chip."""
    from faceforge.embedders.base import embedder_parts
    from faceforge.export.sidecar import part_alignment

    parts = embedder_parts(clf.manifest["embedder"])
    override = clf.manifest.get("alignment")
    geoms = [json.dumps(part_alignment(p, override), sort_keys=True) for p in parts]
    if len(set(geoms)) == 1:
        return [("chip", parts)]
    return [(f"chip_{i}", [p]) for i, p in enumerate(parts)]


def check_exportable(clf: Any) -> None:
    """Refuse before building anything: an embedder or head this faceforge cannot write as ONNX.

    Raises:
        ParameterError: the message names what cannot be exported and what can.
    """
    from faceforge.embedders.base import embedder_parts
    from faceforge.export.embedders_onnx import EXPORTABLE
    from faceforge.export.heads_onnx import MAX_KNN_BYTES, knn_bytes

    bad = [p for p in embedder_parts(clf.manifest["embedder"]) if p not in EXPORTABLE]
    if bad:
        raise ParameterError(f"{clf.path or 'the model'}: embedder {', '.join(map(repr, bad))} cannot be exported to "
                             f"ONNX; exportable: {', '.join(EXPORTABLE)}. Fix: retrain with one of those (--embedder).")
    head = clf.head
    if head.kind == "knn" and knn_bytes(head) > MAX_KNN_BYTES:
        raise ParameterError(
            f"{clf.path or 'the model'}: its kNN head holds {len(head.arrays_['gallery'])} reference embeddings "
            f"({knn_bytes(head) / 2**20:.0f} MiB as float32), more than the {MAX_KNN_BYTES >> 20} MiB faceforge "
            f"writes into an ONNX graph. Fix: retrain with --head logreg (the default; a few KB), or on fewer photos.")


def build_graph(clf: Any, opset: int = 17) -> tuple[Any, list[dict[str, Any]], dict[str, Any]]:
    """The classifier graph of ``clf``.

    Returns:
        ``(onnx.ModelProto, sidecar inputs, sidecar outputs)``.

    Raises:
        ParameterError: an embedder or head that cannot be exported, or a bad opset.
    """
    from onnx import TensorProto

    from faceforge.embedders.base import embedder_class
    from faceforge.export.embedders_onnx import embedder_nodes, opset_needed
    from faceforge.export.graph import Graph, check_opset
    from faceforge.export.heads_onnx import head_nodes, openset_nodes
    from faceforge.export.sidecar import input_entry

    opset = check_opset(opset)
    check_exportable(clf)
    groups = _part_inputs(clf)
    parts = [p for _, ps in groups for p in ps]
    target = max([opset] + [opset_needed(p) for p in parts])
    if target != opset:
        log.info("the graph is written in opset %d (the %s weights need it)", target, "/".join(parts))
    g = Graph(target)
    override = clf.manifest.get("alignment")
    inputs, embs = [], {}
    for name, ps in groups:
        entry = input_entry(name, ps[0], override)
        entry["embedder"] = "+".join(ps)
        inputs.append(entry)
        size = entry["alignment"]["size"]
        chip = g.add_input(name, TensorProto.UINT8, ["N", size, size, 3])
        for p in ps:
            if clf.quality == "accurate":  # the accurate preset's flip-averaged embedding, in the graph
                embs[p] = g.flip_average(chip, lambda c, p=p: embedder_nodes(g, p, c))
            else:
                embs[p] = embedder_nodes(g, p, chip)
    if len(parts) == 1:
        x = embs[parts[0]]
    else:  # faceforge.embedders.concat.combine: each part normalised as its heads would, side by side
        cols = [g.l2_normalize(embs[p]) if getattr(embedder_class(p), "normalize_for_heads", True) else embs[p]
                for p in parts]
        x = g.op("Concat", cols, "embedding", axis=1)
    dim = int(clf.manifest.get("embedding_dim") or clf.head.n_features_in_)
    x = g.op("Identity", [x], out="embedding")
    outputs: dict[str, Any] = {}
    y = head_nodes(g, clf.head, x)
    if clf.task == "regression":
        g.add_output(y, "value", TensorProto.FLOAT, ["N"])
        outputs["value"] = {"shape": ["N"], "dtype": "float32", "meaning": "the predicted number (e.g. age)"}
    else:
        k = len(clf.classes)
        g.add_output(y, "probabilities", TensorProto.FLOAT, ["N", k])
        outputs["probabilities"] = {"shape": ["N", k], "dtype": "float32",
                                    "meaning": "class probabilities, columns in `labels` order (rows sum to 1)"}
    if clf.openset is not None:
        score, acc = openset_nodes(g, clf.openset, x)
        g.add_output(score, "unknown_score", TensorProto.FLOAT, ["N"])
        g.add_output(acc, "accepted", TensorProto.BOOL, ["N"])
        outputs["unknown_score"] = {"shape": ["N"], "dtype": "float32",
                                    "meaning": "similarity to the nearest known class (higher: more like a known face)"}
        outputs["accepted"] = {"shape": ["N"], "dtype": "bool",
                               "meaning": "unknown_score >= threshold; False: the face gets `rejected_label`"}
    model = g.model(f"faceforge_{clf.name}", f"faceforge {clf.manifest['embedder']} + {clf.head.kind} head "
                    f"({dim}-D embedding), exported by faceforge.export")
    return model, inputs, outputs


def _detector_section(out: Path) -> dict[str, Any]:
    try:
        from faceforge.export import detector as _detector
    except ImportError as e:
        raise ParameterError("--with-detector needs faceforge.export.detector, which this faceforge does not have "
                             "yet. Fix: export without --with-detector and detect faces with any detector that "
                             "gives 5 landmarks (see examples/onnx_classify.py).") from e
    return _detector.export_detector(out)


def export_model(model: Any, out: str | os.PathLike, *, with_detector: bool = False, opset: int = 17) -> ExportResult:
    """Export a faceforge model as ``OUT/classifier.onnx`` + ``OUT/model.json`` (see the module docs).

    Args:
        model: a model file (``.ffm``) or a loaded :class:`~faceforge.train.classifier.FaceClassifier`.
        out: the output folder (created; files of the same names in it are replaced atomically).
        with_detector: also write ``OUT/detector.onnx`` (:func:`faceforge.export.detector.export_detector`)
            and its ``detector`` section in the sidecar.
        opset: the lowest ONNX opset to write (17 to 21; the graph uses 18 where the weights need it).

    Returns:
        :class:`ExportResult`.

    Raises:
        BundleError: the model file is missing or not a faceforge model.
        ParameterError: an embedder or head that cannot be exported (a kNN head over more than
            :data:`~faceforge.export.heads_onnx.MAX_KNN_BYTES` of reference embeddings), a bad opset, or
            ``with_detector`` without the detector exporter.
        OutputError: ``out`` is the model file, lies inside an input, or is an existing file.

    Example:
        >>> res = export_model("people.ffm", "people_onnx")  # doctest: +SKIP
        >>> sorted(res.files)  # doctest: +SKIP
        ['classifier.onnx', 'model.json']
    """
    from faceforge._fs import atomic_write, check_output, sha256_file
    from faceforge.export.sidecar import build_sidecar

    clf, path = load_model(model)
    folder = check_output(out, [path] if path else [], kind="folder", what="export folder")
    onnx_model, inputs, outputs = build_graph(clf, opset)
    folder.mkdir(parents=True, exist_ok=True)
    files = {CLASSIFIER_FILE: atomic_write(folder / CLASSIFIER_FILE, onnx_model.SerializeToString())}
    used_opset = int(onnx_model.opset_import[0].version)
    side = build_sidecar(clf, inputs, outputs, used_opset)
    if with_detector:
        side["detector"] = _detector_section(folder)
        files[DETECTOR_FILE] = folder / DETECTOR_FILE
    side["files"] = {name: {"sha256": sha256_file(p), "bytes": int(p.stat().st_size)} for name, p in files.items()}
    files[SIDECAR_FILE] = atomic_write(folder / SIDECAR_FILE, (json.dumps(side, indent=2) + "\n").encode())
    log.info("exported %s to %s (%s)", clf.path or clf.name, folder, ", ".join(files))
    return ExportResult(folder, files, side, used_opset, [i.name for i in onnx_model.graph.input],
                        [o.name for o in onnx_model.graph.output])
