"""Ingest as files arrive: watch inbox folders (watchdog) and run :func:`faceforge.collect.ingest`.

One ingest runs at the start (the folders already watched); then every created, moved or modified
file (or created folder) under an inbox arms a timer, and once nothing has changed for
``settle_s`` seconds (a copy in progress keeps writing) ingest runs over the inboxes again (it
only processes the files it has not seen). For users who run no service; the service's schedules
and a cron line do the same on a timetable.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from faceforge.errors import ParameterError, SourceError

log = logging.getLogger(__name__)


def watch(inboxes: Sequence[str | os.PathLike], into: str | os.PathLike, *, settle_s: float = 2.0,
          stop: threading.Event | None = None, on_report: Callable[[Any], None] | None = None,
          **ingest_options: Any) -> int:
    """Ingest ``inboxes`` into ``into`` now and whenever files arrive, until ``stop`` is set.

    Args:
        inboxes: folders to watch (each must exist; archives and files are ingested at each run
            but only folders are watched).
        into: the dataset folder.
        settle_s: seconds without a change before a run starts (a file still being copied waits).
        stop: set it to stop (between runs; a run in progress finishes). None: until Ctrl+C.
        on_report: called with each run's :class:`~faceforge.collect.ingest.IngestReport`.
        **ingest_options: passed to :func:`~faceforge.collect.ingest.ingest` (``model``,
            ``gallery``, ``min_confidence``, ``engine``, ``workers``...).

    Returns:
        The number of ingest runs.

    Raises:
        SourceError: an inbox does not exist. ParameterError: ``settle_s`` below 0.
        The errors of :func:`~faceforge.collect.ingest.ingest` (checked by the first run).
    """
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer

    from faceforge.collect.ingest import ingest

    if float(settle_s) < 0:
        raise ParameterError(f"settle_s must be >= 0 seconds, got {settle_s}")
    paths = [Path(p) for p in inboxes]
    for p in paths:
        if not p.exists():
            raise SourceError(f"The inbox {p} does not exist; give a folder of new photos to watch.")
    stop = stop or threading.Event()
    changed = threading.Event()
    last = [time.monotonic()]

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: Any) -> None:
            # a new folder counts too: files copied into it before its watch is added send no event
            if event.event_type in ("created", "moved", "modified", "closed") and (
                    event.is_directory is False or event.event_type in ("created", "moved")):
                last[0] = time.monotonic()
                changed.set()

    runs = 0

    def once() -> None:
        nonlocal runs
        rep = ingest(paths, into, **ingest_options)
        runs += 1
        log.info("ingest %s: %d new, %d filed", rep.run_id, rep.new, sum(rep.routed.values()))
        if on_report is not None:
            on_report(rep)

    observer = Observer()
    for p in paths:
        if p.is_dir():
            observer.schedule(Handler(), str(p), recursive=True)
    observer.start()  # before the first run: a file arriving during it arms the next one
    try:
        once()
        while not stop.is_set():
            if not changed.wait(timeout=0.2):
                continue
            quiet = time.monotonic() - last[0]
            if quiet < settle_s:
                stop.wait(min(0.2, settle_s - quiet))
                continue
            changed.clear()
            if not stop.is_set():
                once()
    finally:
        observer.stop()
        observer.join(timeout=5)
    return runs


__all__ = ["watch"]
