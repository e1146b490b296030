"""Export a faceforge model to ONNX: one graph from aligned chip to probabilities, and a JSON sidecar.

``export_model("people.ffm", "people_onnx")`` writes ``people_onnx/classifier.onnx`` and
``people_onnx/model.json``; ``examples/onnx_classify.py`` runs them with onnxruntime and OpenCV
only. See :mod:`faceforge.export.classifier` (the graph) and :mod:`faceforge.export.sidecar` (the JSON).
Nothing heavy is imported until a function is called.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CLASSIFIER_FILE", "DETECTOR_FILE", "SIDECAR_FILE", "ExportResult", "export_model"]

_LAZY = {"export_model": "faceforge.export.classifier", "ExportResult": "faceforge.export.classifier",
         "CLASSIFIER_FILE": "faceforge.export.classifier", "SIDECAR_FILE": "faceforge.export.classifier",
         "DETECTOR_FILE": "faceforge.export.classifier"}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'faceforge.export' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(mod), name)
