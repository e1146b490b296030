"""The batch runner: run a face task over many inputs, on every core, with progress, resumable.

:func:`run` takes a task ``task(image, frame)`` and a source (anything
:func:`faceforge.sources.open_source` takes) and yields one :class:`Outcome` per frame, in
order; what could not be read or failed is in :attr:`Run.skipped` with its reason. Where the
work runs is an :class:`Engine`, chosen by name (:func:`get_engine`): ``"local"`` (worker
processes on this machine, the default) or ``"serial"`` (this process); another engine plugs in
with :func:`register_engine` (or ``$FACEFORGE_ENGINE``) without touching the commands.

Example:
    >>> from faceforge.runner import run
    >>> for out in run(my_task, "photos/", progress="detect"):   # doctest: +SKIP
    ...     print(out.item.name, out.error or out.value)
"""

from faceforge.runner.engines import (
                                      Engine,
                                      LocalEngine,
                                      Outcome,
                                      SerialEngine,
                                      apply,
                                      default_workers,
                                      engine_names,
                                      get_engine,
                                      register_engine,
                                      start_method,
)
from faceforge.runner.run import ImageTask, Run, WorkItem, frame_key, run, run_items

__all__ = ["Engine", "ImageTask", "LocalEngine", "Outcome", "Run", "SerialEngine", "apply", "default_workers",
           "engine_names", "frame_key", "get_engine", "register_engine", "run", "run_items", "start_method", "WorkItem"]
