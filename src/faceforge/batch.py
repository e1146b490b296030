"""The older batch API, kept as thin wrappers over :mod:`faceforge.runner` and
:func:`faceforge.sources.open_source`.

New code calls :func:`faceforge.runner.run` with a source; these keep ``Item``, ``Outcome``,
``run_task``, ``iter_items``, ``count_items`` and ``default_workers`` working as before.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceforge.runner.engines import LocalEngine, Outcome, default_workers
from faceforge.runner.run import run_items
from faceforge.sources import open_source


@dataclass
class Item:
    """One unit of work: a still image (loaded by the worker) or a decoded video frame.

    ``image`` is handed to the task as it is when not None (pixels, or any picklable order a
    task understands); when None the worker decodes the ``source`` file.
    """

    source: str
    index: int = 0
    timestamp: float = 0.0
    image: np.ndarray | None = None

    def light(self) -> Item:
        """A copy without ``image``, to hand back with a result."""
        return Item(self.source, self.index, self.timestamp)


def iter_items(paths: Iterable[str | os.PathLike], every: int = 1,
               skipped: list[tuple[str, str]] | None = None) -> Iterator[Item]:
    """Work items for files and folders: one per image, one per kept video frame.

    Args:
        paths: files, folders, globs and archives (read by :func:`~faceforge.sources.open_source`).
        every: keep every n-th video frame.
        skipped: if given, receives ``(path, reason)`` for inputs left out; else an unreadable
            video raises.

    Raises:
        SourceError: a path does not exist, nothing usable was found, or (``skipped=None``) a
            video cannot be read.
    """
    src = open_source(list(paths), every=every)
    seen = 0

    def flush() -> None:
        nonlocal seen
        new = src.skipped[seen:]
        seen += len(new)
        for s in new:
            if skipped is not None:
                skipped.append((s.source, s.reason))
            elif s.kind == "unreadable":
                from faceforge.errors import SourceError

                raise SourceError(s.reason)

    flush()
    for fr in src:
        flush()
        yield Item(fr.source, fr.index, fr.timestamp, fr.image if fr.decoded else None)
    flush()


def count_items(paths: Iterable[str | os.PathLike], every: int = 1) -> int:
    """Approximate number of items (video frame counts from their headers)."""
    return open_source(list(paths), every=every).length_hint() or 0


def run_task(task: Callable[[np.ndarray, Item], Any], items: Iterable[Any], workers: int | None = None,
             progress: str | None = None, total: int | None = None) -> Iterator[Outcome]:
    """Apply ``task(image, item)`` to every item, in input order, on ``workers`` processes.

    Args:
        task: a picklable callable (module-level function or object) that loads its models
            lazily; it runs once per item in a worker process.
        items: work items (see :func:`iter_items`), or :class:`~faceforge.sources.Frame`\\ s.
        workers: processes (default: one per core); 1 runs in this process.
        progress: a description to show a progress bar on stderr, or None for none.
        total: number of items, for the progress bar.

    Yields:
        :class:`Outcome` per item. Errors are reported per item, never raised.
    """
    yield from run_items(task, items, engine=LocalEngine(workers), progress=progress, total=total)


__all__ = ["Item", "Outcome", "count_items", "default_workers", "iter_items", "run_task"]
