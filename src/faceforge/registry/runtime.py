"""Inference runtimes: ONNX Runtime sessions and LiteRT interpreters, configured once."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faceforge.errors import ModelNotFoundError


def default_threads() -> int:
    """Threads per inference session: ``$FACEFORGE_THREADS`` or the number of CPU cores."""
    env = os.environ.get("FACEFORGE_THREADS")
    if env:
        return max(1, int(env))
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def onnx_session(model: str | Path | bytes, threads: int | None = None):
    """Create an ONNX Runtime CPU session with full graph optimisation.

    Args:
        model: path to an ``.onnx`` file or its bytes.
        threads: intra-op threads (default :func:`default_threads`).
    """
    try:
        import onnxruntime as ort
    except ImportError as e:  # pragma: no cover - dependency of faceforge
        raise ModelNotFoundError("onnxruntime is not installed. Install it with: pip install onnxruntime") from e
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or default_threads()
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    # Busy-waiting threads steal the other core from decode/detect work and from other
    # processes; measured 2-5x slower under load with spinning on, no loss when idle.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])


def tflite_interpreter(path: str | Path, threads: int | None = None):
    """Create a LiteRT (TFLite) interpreter with tensors allocated.

    Uses ``ai_edge_litert``; no TensorFlow needed.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as e:
        raise ModelNotFoundError(
            "The LiteRT runtime is not installed. Install it with: pip install ai-edge-litert"
        ) from e
    with _quiet_stderr():  # LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate" from C++
        interp = Interpreter(model_path=str(path), num_threads=threads or 1)
        interp.allocate_tensors()
    return interp


@contextlib.contextmanager
def _quiet_stderr():
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. captured): nothing to hide
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


class LazySession:
    """An ONNX Runtime session built on first use (thread-safe), for models that load lazily.

    Args:
        path: called once, on first use, to give the ``.onnx`` file (e.g. building a derived graph).
        threads: intra-op threads (default :func:`default_threads`).
    """

    def __init__(self, path: Callable[[], str | Path], threads: int | None = None) -> None:
        self._path, self.threads = path, threads
        self._session: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        """The session (built and loaded on the first call)."""
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session = onnx_session(self._path(), self.threads)
        return self._session
