"""Execution engines: how a task is applied to many work items.

An engine takes a picklable callable and an iterable of items and yields one :class:`Outcome`
per item, in input order; a failing item becomes an outcome with an ``error``, never an
exception. :class:`SerialEngine` runs in this process; :class:`LocalEngine` runs on a pool of
worker processes on this machine. Another engine (a cluster) plugs in with
:func:`register_engine` and is chosen by name (:func:`get_engine`, ``$FACEFORGE_ENGINE``)
without touching the commands.
"""

from __future__ import annotations

import difflib
import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from faceforge.errors import FaceforgeError, ParameterError

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What a task gave for one item: ``value``, or ``error`` (a message naming the file).

    Attributes:
        item: the work item, without its pixels (see :meth:`faceforge.sources.Frame.light`).
        value: the task's result (None when it failed).
        error: why the task failed on this item, or None.
    """

    item: Any
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the task succeeded."""
        return self.error is None


def _light(item: Any) -> Any:
    light = getattr(item, "light", None)
    return light() if callable(light) else item


def apply(fn: Callable[[Any], Any], item: Any) -> Outcome:
    """Run ``fn(item)`` and wrap the result or the error in an :class:`Outcome` (never raises).

    Every engine calls this where the work runs, so errors read the same on every engine: a
    :class:`~faceforge.errors.FaceforgeError` gives its message, any other exception
    ``"SOURCE: Type: message"``.

    Args:
        fn: the task.
        item: one work item (its ``source`` attribute names it in error messages).

    Returns:
        The outcome, holding the light copy of ``item``.
    """
    try:
        value = fn(item)
        return Outcome(_light(item), value)
    except FaceforgeError as e:
        return Outcome(_light(item), error=str(e))
    except Exception as e:  # a bad file must not kill a long batch; report it and go on
        name = getattr(item, "source", repr(item))
        log.debug("task failed on %s", name, exc_info=True)
        return Outcome(_light(item), error=f"{name}: {type(e).__name__}: {e}")


@runtime_checkable
class Engine(Protocol):
    """Applies a task to items; see the module docs.

    ``map(fn, items)`` must yield exactly one :class:`Outcome` per item, in input order, built
    with :func:`apply` where the work runs; ``fn`` and the items are picklable.
    """

    name: str

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Outcome]:
        """Yield ``apply(fn, item)`` for every item, in order."""
        ...


class SerialEngine:
    """Runs every item in this process, one after another (debugging, small jobs, tests)."""

    name = "serial"

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Outcome]:
        """Yield ``apply(fn, item)`` for every item, in order."""
        for it in items:
            yield apply(fn, it)

    def __repr__(self) -> str:
        return "SerialEngine()"


_WORKER_FN: Callable[[Any], Any] | None = None
#: How often a worker checks that the process that started it is still alive (seconds).
PARENT_CHECK_S = 0.5


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise SystemExit(128 + signum)  # unwinds: finally blocks run, temporary files go


def _die_with_parent(parent: int) -> None:
    """End this worker when ``parent`` (the process that made the pool) dies, even by SIGKILL.

    On Linux the kernel sends SIGTERM when the process that forked this one exits
    (``prctl(PR_SET_PDEATHSIG)``); a watchdog thread also checks the parent every
    :data:`PARENT_CHECK_S` seconds (other systems, and pools started from a fork server).
    SIGTERM raises SystemExit here, so a half-written output's temporary file is removed.
    """
    from faceforge._fs import pid_alive

    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the watchdog does it
            pass
    ppid = os.getppid()

    def watch() -> None:
        while os.getppid() == ppid and pid_alive(parent):
            time.sleep(PARENT_CHECK_S)
        log.debug("parent process %d is gone; worker %d exits", parent, os.getpid())
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        os._exit(1)  # SIGTERM did not end it (stuck in native code)

    if not pid_alive(parent):  # died before this worker got here
        os._exit(1)
    threading.Thread(target=watch, name="faceforge-parent-watch", daemon=True).start()


def _init_worker(fn: Callable[[Any], Any] | None = None, parent: int | None = None) -> None:
    # one process per core: no thread oversubscription (ONNX Runtime, and yuface's OpenMP)
    os.environ["FACEFORGE_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = "1"
    # The task is sent once per worker and kept: a task caches its models on first use, and
    # sending it with every item would unpickle a fresh, model-less copy each time (measured:
    # autolabel at 3 images/s instead of about 100).
    global _WORKER_FN
    _WORKER_FN = fn
    if parent is not None:
        _die_with_parent(parent)


def _run_in_worker(item: Any) -> Outcome:
    if _WORKER_FN is None:  # pragma: no cover - the initializer always ran
        raise FaceforgeError("a worker process started without its task")
    return apply(_WORKER_FN, item)


#: Native runtimes that start thread pools; a process holding them must not fork.
_THREADED_RUNTIMES = ("onnxruntime", "yuface", "ai_edge_litert", "dlib", "sklearn")


def start_method() -> str:
    """``fork`` while this process has loaded no threaded runtime, else ``forkserver``.

    fork lets plain scripts (without an ``if __name__ == "__main__"`` guard) use every core;
    but forking a process whose runtimes already run thread pools can deadlock the children,
    so then workers start from a clean server process instead (which needs the guard).
    """
    methods = mp.get_all_start_methods()
    if "fork" in methods and not any(m in sys.modules for m in _THREADED_RUNTIMES):
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def default_workers() -> int:
    """Worker processes for batch work: ``$FACEFORGE_WORKERS`` or the number of cores."""
    env = os.environ.get("FACEFORGE_WORKERS")
    if env:
        return max(1, int(env))
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class LocalEngine:
    """A pool of worker processes on this machine, one per core by default.

    The task is sent once to each worker (through the pool's initializer) and kept there, so
    models it loads lazily are loaded once per worker; workers run single-threaded native
    code (``OMP_NUM_THREADS=1``); at most ``4 * workers`` items are in flight, so a long
    source is read as the workers need it; outcomes come back in input order.

    Args:
        workers: processes (None: :func:`default_workers`); 1 runs in this process.
    """

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and int(workers) < 0:
            raise ParameterError(f"workers must be >= 0 (0: one per core), got {workers}")
        self.workers = int(workers) if workers else default_workers()

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Outcome]:
        """Yield ``apply(fn, item)`` for every item, in order (see the class docs)."""
        if self.workers <= 1:
            yield from SerialEngine().map(fn, items)
            return
        ctx = mp.get_context(start_method())
        with ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(fn, os.getpid())) as pool:
            pending: deque[Future] = deque()
            try:
                for it in items:
                    pending.append(pool.submit(_run_in_worker, it))
                    while len(pending) >= self.workers * 4:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:  # stopped early: do not compute what nobody will read
                for f in pending:
                    f.cancel()

    def __repr__(self) -> str:
        return f"LocalEngine(workers={self.workers})"


def _ray_engine(**options: Any) -> Engine:
    from faceforge.runner.ray_engine import RayEngine  # imports Ray: only when asked for

    return RayEngine(**options)


_ENGINES: dict[str, Callable[..., Engine]] = {"local": LocalEngine, "serial": lambda **_: SerialEngine(),
                                              "ray": _ray_engine}


def register_engine(name: str, factory: Callable[..., Engine]) -> None:
    """Make an engine available by name to :func:`get_engine` (and so to every command).

    Args:
        name: the engine's name, e.g. ``"ray"``.
        factory: called with the options given to :func:`get_engine` (e.g. ``workers=``).
    """
    _ENGINES[str(name)] = factory


def engine_names() -> list[str]:
    """The names :func:`get_engine` knows."""
    return sorted(_ENGINES)


def get_engine(name: str | Engine | None = None, **options: Any) -> Engine:
    """The engine called ``name``, built with ``options``.

    Args:
        name: ``"local"`` (worker processes on this machine), ``"serial"`` (this process),
            ``"ray"`` (a local Ray or a Ray cluster, :mod:`faceforge.runner.ray_engine`), a name
            given to :func:`register_engine`, or an engine (returned as it is). None:
            ``$FACEFORGE_ENGINE``, else ``"local"``.
        **options: passed to the engine's factory (``workers=`` for ``"local"``; ``workers=``
            and ``address=`` for ``"ray"``).

    Returns:
        The engine.

    Raises:
        ParameterError: an unknown name (the message suggests the nearest one).
    """
    if name is not None and not isinstance(name, str):
        return name
    name = name or os.environ.get("FACEFORGE_ENGINE") or "local"
    factory = _ENGINES.get(name)
    if factory is None:
        near = difflib.get_close_matches(name, _ENGINES, n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise ParameterError(f"unknown engine {name!r}; known engines: {', '.join(engine_names())}.{hint}")
    return factory(**options)
