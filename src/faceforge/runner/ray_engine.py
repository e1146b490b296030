"""A Ray engine: the batch runner's work on a local Ray or on a Ray cluster (``faceforge[cluster]``).

``RayEngine()`` starts Ray on this machine's cores; ``RayEngine(address=...)`` (or
``$RAY_ADDRESS``) joins a running cluster, made with ``ray start --head --port=6379`` on one
node and ``ray start --address=HEAD:6379`` on each of the others. The task is sent once per job to
each of a pool of actors (one CPU each), which keep it, so models it loads lazily are loaded
once per actor and job; the actors stay up between the jobs of a process (one costs about a
second to start; :func:`close` ends them, and so does the end of the process). A bounded number
of items is in flight, and outcomes come back in input order, built by the same
:func:`~faceforge.runner.engines.apply` as on the local engine (errors read the same).

What is shipped: the work items as the runner makes them. A still image read from a file
travels as its path (a :class:`~faceforge.sources.Frame` pickles without pixels) and is
decoded by the actor, so on a cluster every node must see the inputs at the paths the driver
names (a shared filesystem mounted at the same place); video frames and archive members
travel with their pixels or bytes. Only results come back: the driver writes every output
file and the embedding cache, as with the local engine (side outputs a task writes itself,
such as crops or annotated copies, are written by the actor, so on a cluster their folder
must be shared too).

Importing this module imports Ray; :mod:`faceforge.runner.engines` registers ``"ray"`` so that
Ray is imported only when the engine is asked for.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from faceforge.errors import ParameterError
from faceforge.runner.engines import Outcome, _init_worker, _light, _run_in_worker, default_workers

log = logging.getLogger(__name__)

try:
    import ray
except ImportError as e:  # pragma: no cover - depends on the install
    raise ParameterError("the 'ray' engine needs Ray, which is not installed; install it with "
                         "pip install 'faceforge[cluster]' (or pip install ray), or use --engine local") from e

#: Items queued per actor beyond the one it runs (keeps every actor busy without reading ahead far).
QUEUE_PER_ACTOR = 2
_connected: str | None = None  # what ray.init joined in this process: "local" or an address
_pool: list[Any] = []  # actors kept between jobs of this process (a new actor costs ~1.2 s to start)


class _Worker:
    """A Ray actor holding the task (see the module docs)."""

    def __init__(self) -> None:
        _init_worker(None)  # one thread per actor

    def set_task(self, fn: Callable[[Any], Any]) -> None:
        _init_worker(fn)  # the task is kept for every item of the job

    def run(self, item: Any) -> Outcome:
        return _run_in_worker(item)


def connect(address: str | None = None, workers: int | None = None) -> str:
    """Join the Ray cluster at ``address`` (else ``$RAY_ADDRESS``), or start a local Ray.

    A local Ray gets ``workers`` CPUs (None: every core) and no dashboard; it stays up for
    the rest of this process (later engines reuse it). Asking for another address than the
    one joined shuts the old connection down first.

    Args:
        address: ``HOST:PORT`` of a cluster's head (``ray start --head``), ``"auto"``, or None.
        workers: CPUs of a local Ray (ignored when joining a cluster).

    Returns:
        What was joined: ``"local"`` or the address.
    """
    global _connected, _pool
    want = address or os.environ.get("RAY_ADDRESS") or "local"
    if ray.is_initialized() and _connected == want:
        return want
    if ray.is_initialized():
        ray.shutdown()
    _pool = []
    if want == "local":
        env = {k: v for k, v in os.environ.items() if k == "PYTHONPATH"}
        ray.init(address="local", num_cpus=int(workers or default_workers()), include_dashboard=False,
                 log_to_driver=False, configure_logging=False, runtime_env={"env_vars": env} if env else None)
    else:
        ray.init(address=want, log_to_driver=False, configure_logging=False)
    _connected = want
    log.info("ray: joined %s (%s CPUs)", want, ray.cluster_resources().get("CPU"))
    return want


class RayEngine:
    """Runs the runner's tasks on Ray actors (see the module docs).

    Args:
        address: a Ray cluster to join (``HOST:PORT``); None: ``$RAY_ADDRESS``, else a local Ray
            on this machine's cores.
        workers: actors (None or 0: one per CPU of the cluster); also the CPUs of a local Ray.
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        if workers is not None and int(workers) < 0:
            raise ParameterError(f"workers must be >= 0 (0: one per CPU), got {workers}")
        self.address = address
        self.workers = int(workers) if workers else None

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Outcome]:
        """Yield ``apply(fn, item)`` for every item, in order (see the class docs)."""
        connect(self.address, self.workers)
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        if self.workers and self.workers > cpus:  # an actor needs a CPU: more would wait forever
            log.warning("ray: %d workers asked for, but the cluster has %d CPUs; using %d", self.workers, cpus, cpus)
        n = min(self.workers or cpus, cpus)
        actors = _actors(n)
        fn_ref = ray.put(fn)
        try:
            ray.get([a.set_task.remote(fn_ref) for a in actors])
        except ray.exceptions.RayError as e:
            close()
            raise ParameterError(
                f"the task {type(fn).__name__} cannot be loaded on the Ray workers ({_first_line(e)}); its code "
                f"must be importable there: define it in an installed module (or the script run), and on a "
                f"cluster install faceforge on every node") from e
        pending: deque[tuple[Any, Any]] = deque()
        failed = False
        try:
            for i, it in enumerate(items):
                pending.append((it, actors[i % n].run.remote(it)))
                while len(pending) >= n * (1 + QUEUE_PER_ACTOR):
                    out, died = _get(*pending.popleft())
                    failed |= died
                    yield out
            while pending:
                out, died = _get(*pending.popleft())
                failed |= died
                yield out
        finally:
            if pending or failed:  # stopped early, or an actor died: start afresh next time
                for _, ref in pending:
                    ray.cancel(ref, force=False)
                close()
            else:  # done: the actors stay for the next job, without this one's task (and models)
                ray.get([a.set_task.remote(None) for a in actors])

    def __repr__(self) -> str:
        return f"RayEngine(address={self.address!r}, workers={self.workers})"


def _actors(n: int) -> list[Any]:
    """``n`` actors of this process's pool (made as needed; they stay up between jobs)."""
    actor: Any = ray.remote(num_cpus=1)(_Worker)
    while len(_pool) < n:
        _pool.append(actor.remote())
    return _pool[:n]


def close() -> None:
    """End the actors kept between jobs (they hold one CPU each of the cluster while kept)."""
    global _pool
    for a in _pool:
        ray.kill(a)
    _pool = []


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if "Error" in ln]
    return lines[-1] if lines else type(e).__name__


def _get(item: Any, ref: Any) -> tuple[Outcome, bool]:
    """The outcome of one item, and whether its actor died."""
    try:
        return ray.get(ref), False
    except ray.exceptions.RayError as e:  # the actor died (killed, out of memory, a crash in native code)
        name = getattr(item, "source", repr(item))
        return Outcome(_light(item), error=f"{name}: the Ray worker failed: {type(e).__name__}: {e}"), True
