"""Running a per-image task over many files and videos on all cores, in order, with progress."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import sys
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from faceforge.errors import FaceforgeError
from faceforge.sources import expand_paths, iter_video, load_image, media_kind

log = logging.getLogger(__name__)


@dataclass
class Item:
    """One unit of work: a still image (loaded by the worker) or a decoded video frame."""

    source: str
    index: int = 0
    timestamp: float = 0.0
    image: np.ndarray | None = None


@dataclass
class Outcome:
    """What a task gave for one item: ``value`` or ``error`` (a message naming the file)."""

    item: Item
    value: Any = None
    error: str | None = None


def _run(task: Callable[[np.ndarray, Item], Any], item: Item) -> Outcome:
    try:
        image = item.image if item.image is not None else load_image(item.source)
        light = Item(item.source, item.index, item.timestamp)
        return Outcome(light, task(image, light))
    except FaceforgeError as e:
        return Outcome(Item(item.source, item.index, item.timestamp), error=str(e))
    except Exception as e:  # a bad file must not kill a long batch; report it and go on
        log.debug("task failed on %s", item.source, exc_info=True)
        return Outcome(Item(item.source, item.index, item.timestamp),
                       error=f"{item.source}: {type(e).__name__}: {e}")


_WORKER_TASK: Callable[[np.ndarray, Item], Any] | None = None


def _init_worker(task: Callable[[np.ndarray, Item], Any] | None = None) -> None:
    # one process per core: no thread oversubscription (ONNX Runtime, and yuface's OpenMP)
    os.environ["FACEFORGE_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = "1"
    # The task is sent once per worker and kept: a task caches its models on first use, and
    # sending it with every item would unpickle a fresh, model-less copy each time (measured:
    # autolabel at 3 images/s instead of about 100).
    global _WORKER_TASK
    _WORKER_TASK = task


def _run_in_worker(item: Item) -> Outcome:
    assert _WORKER_TASK is not None
    return _run(_WORKER_TASK, item)


#: Native runtimes that start thread pools; a process holding them must not fork.
_THREADED_RUNTIMES = ("onnxruntime", "yuface", "ai_edge_litert", "dlib", "sklearn")


def _start_method() -> str:
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


def iter_items(paths: Iterable[str | os.PathLike], every: int = 1,
               skipped: list[tuple[str, str]] | None = None) -> Iterator[Item]:
    """Work items for files and folders: one per image, one per kept video frame."""
    for p in expand_paths(paths, skipped=skipped):
        if media_kind(p) == "video":
            try:
                for fr in iter_video(str(p), every=every):
                    yield Item(str(p), fr.index, fr.timestamp, fr.image)
            except FaceforgeError as e:
                if skipped is None:
                    raise
                skipped.append((str(p), str(e)))
        else:
            yield Item(str(p))


def count_items(paths: Iterable[str | os.PathLike], every: int = 1) -> int:
    """Approximate number of items (video frame counts from their headers)."""
    import cv2

    n = 0
    for p in expand_paths(paths):
        if media_kind(p) == "video":
            cap = cv2.VideoCapture(str(p))
            n += max(1, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 1) // every)
            cap.release()
        else:
            n += 1
    return n


def run_task(task: Callable[[np.ndarray, Item], Any], items: Iterable[Item], workers: int | None = None,
             progress: str | None = None, total: int | None = None) -> Iterator[Outcome]:
    """Apply ``task(image, item)`` to every item, in input order, on ``workers`` processes.

    Args:
        task: a picklable callable (module-level function or object) that loads its models
            lazily; it runs once per item in a worker process.
        items: work items (see :func:`iter_items`).
        workers: processes (default: one per core); 1 runs in this process.
        progress: a description to show a progress bar on stderr, or None for none.
        total: number of items, for the progress bar.

    Yields:
        :class:`Outcome` per item. Errors are reported per item, never raised.
    """
    workers = workers or default_workers()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=progress, unit="img", dynamic_ncols=True, leave=False)
    try:
        if workers <= 1:
            for it in items:
                out = _run(task, it)
                if bar is not None:
                    bar.update(1)
                yield out
            return
        ctx = mp.get_context(_start_method())
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(task,)) as pool:
            pending: deque[Future] = deque()
            for it in items:
                pending.append(pool.submit(_run_in_worker, it))
                while len(pending) >= workers * 4:
                    out = pending.popleft().result()
                    if bar is not None:
                        bar.update(1)
                    yield out
            while pending:
                out = pending.popleft().result()
                if bar is not None:
                    bar.update(1)
                yield out
    finally:
        if bar is not None:
            bar.close()
