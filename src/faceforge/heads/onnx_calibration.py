"""The ridge head's calibration map (:func:`faceforge.heads.regression.apply_calibration`) as ONNX nodes.

The exporter (:func:`faceforge.export.heads_onnx.head_nodes`) builds ``value = z @ coef + intercept``;
a ridge head fitted with ``calibrate=True`` maps that value through a monotone piecewise-linear
function, written here with every constant folded in::

    y = y0 + min(v - x0, 0) + sum_i s_i * clip(v - x_i, 0, w_i) + max(v - x_last, 0)

with knots ``x_i`` (``calib_x``), ``w_i = x_{i+1} - x_i`` and slopes ``s_i = (y_{i+1} - y_i) / w_i``
(``calib_y``): ``Sub``, ``Max``/``Min`` and one ``MatMul`` over the ``k - 1`` segments.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def has_calibration(head: Any) -> bool:
    """Whether ``head`` (any fitted head) maps its output through a calibration."""
    return "calib_x" in getattr(head, "arrays_", {})


def calibration_nodes(g: Any, head: Any, value: str) -> str:
    """Add the calibration of ``head`` on the ``(N,)`` value tensor ``value``; return the calibrated tensor.

    A head without a calibration returns ``value`` itself (no node added), so the exporter may
    call this on every ridge head.

    Args:
        g: the :class:`faceforge.export.graph.Graph` being built.
        head: the fitted ridge head.
        value: name of the ``(N,)`` float32 tensor ``z @ coef + intercept``.

    Returns:
        Name of the ``(N,)`` float32 calibrated tensor.
    """
    if not has_calibration(head):
        return value
    x = np.asarray(head.arrays_["calib_x"], np.float64)
    y = np.asarray(head.arrays_["calib_y"], np.float64)
    w = np.diff(x)
    s = np.diff(y) / w
    col = g.op("Unsqueeze", [value, g.ints([1], "axis")], "calib_v")                       # (N, 1)
    seg = g.op("Sub", [col, g.const(x[None, :-1], "calib_x")])                              # (N, k-1)
    seg = g.op("Min", [g.op("Max", [seg, g.const(0.0, "zero")]), g.const(w[None, :], "calib_w")])
    inner = g.op("MatMul", [seg, g.const(s[:, None], "calib_s")])                           # (N, 1)
    low = g.op("Min", [g.op("Sub", [col, g.const(x[0], "calib_x0")]), g.const(0.0, "zero")])
    high = g.op("Max", [g.op("Sub", [col, g.const(x[-1], "calib_xk")]), g.const(0.0, "zero")])
    out = g.op("Add", [g.op("Add", [g.op("Add", [inner, low]), high]), g.const(y[0], "calib_y0")])
    return g.op("Squeeze", [out, g.ints([1], "axis")], "calibrated")
