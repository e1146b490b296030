"""A small builder of ONNX graphs by hand: named nodes and initialisers.

Used where faceforge writes a graph itself (the EfficientNet converter, the export of a model to one
graph); :mod:`onnx` is imported on first use.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class GraphBuilder:
    """Collects nodes and initialisers; every node and constant gets a unique ``prefix_N`` name."""

    def __init__(self) -> None:
        import onnx  # noqa: F401 - fail early with ImportError if missing

        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def name(self, prefix: str) -> str:
        """A new unique name starting with ``prefix``."""
        self._n += 1
        return f"{prefix}_{self._n}"

    def const(self, array: Any, prefix: str = "c", dtype: Any = np.float32) -> str:
        """An initialiser holding ``array`` (cast to ``dtype``); returns its name."""
        from onnx import numpy_helper

        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(np.asarray(array, dtype)), name))
        return name

    def ints(self, values: Any, prefix: str = "i") -> str:
        """An int64 initialiser (shapes, axes, indices); returns its name."""
        return self.const(np.asarray(values, np.int64), prefix, np.int64)

    def op(self, op_type: str, inputs: list[str], prefix: str | None = None, out: str | None = None,
           **attrs: Any) -> str:
        """Add one node; returns its (single) output's name (``out`` when given)."""
        from onnx import helper

        name = out or self.name(prefix or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attrs))
        return name
