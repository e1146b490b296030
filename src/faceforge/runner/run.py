"""Running a face task over many inputs: every core, progress, skipped-with-reason, resumable."""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from faceforge.runner.engines import Engine, Outcome, _light, get_engine
from faceforge.sources import Skipped, Source, load_image, open_source


def frame_key(item: Any) -> str:
    """The default resumption key of a work item: ``"SOURCE:INDEX"`` (index 0 for stills)."""
    return f"{item.source}:{item.index}"


@dataclass
class WorkItem:
    """One unit of work made by a caller (see :func:`run_items`): a file decoded by the worker,
    or pixels (or any picklable order the task understands) handed over as ``image``.

    Attributes:
        source: the file (or a name) the work is about.
        index: frame number (0 for stills).
        timestamp: seconds into a video.
        image: handed to the task as it is when not None; when None the worker decodes ``source``.
    """

    source: str
    index: int = 0
    timestamp: float = 0.0
    image: Any = None

    def light(self) -> WorkItem:
        """A copy without ``image``, to hand back with a result."""
        return WorkItem(self.source, self.index, self.timestamp)


class ImageTask:
    """Adapts ``task(image, item)`` to the engines' ``fn(item)``, decoding where the work runs.

    A :class:`~faceforge.sources.Frame`'s pixels are read from ``frame.image`` (a still is
    decoded here, in the worker); an item with ``image=None`` is read from its ``source`` file.
    The task gets the item without its pixels as its second argument.

    Args:
        task: a picklable callable ``task(image, item)`` that loads its models lazily.
    """

    def __init__(self, task: Callable[[Any, Any], Any]) -> None:
        self.task = task

    def __call__(self, item: Any) -> Any:
        image = item.image
        if image is None:
            image = load_image(item.source)
        return self.task(image, _light(item))


class Run:
    """One run of a task over work items; iterate for :class:`Outcome`\\ s in input order.

    Attributes:
        source: the source the items came from (None for :func:`run_items`).
        engine: the engine doing the work.
        resumed: items left out because they were already done (see ``done`` / ``skip``).
        dropped: frames a live source dropped because the work was slower than the camera.
    """

    def __init__(self, fn: Callable[[Any], Any], items: Iterable[Any], engine: Engine, *,
                 source: Source | None = None, progress: str | None = None, total: int | None = None,
                 key: Callable[[Any], Hashable] = frame_key, done: Collection[Hashable] | None = None,
                 skip: Callable[[Any], bool] | None = None, capture: Any = None) -> None:
        self.fn, self.items, self.engine, self.source = fn, items, engine, source
        self.progress, self.total = progress, total
        self.key, self.done, self.skip = key, done, skip
        self.resumed = 0
        self.failed: list[Skipped] = []
        self._capture = capture

    @property
    def dropped(self) -> int:
        return self._capture.dropped if self._capture is not None else 0

    @property
    def skipped(self) -> list[Skipped]:
        """What was left out, with reasons: by the source (listing, unreadable videos), then
        the items the task failed on (kind ``"failed"``)."""
        return (self.source.skipped if self.source is not None else []) + self.failed

    def _is_done(self, item: Any) -> bool:
        return bool((self.skip is not None and self.skip(item))
                    or (self.done is not None and self.key(item) in self.done))

    def __iter__(self) -> Iterator[Outcome]:
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.total, desc=self.progress, unit="img", dynamic_ncols=True, leave=False)

        def todo() -> Iterator[Any]:
            for it in self.items:
                if (self.skip is not None or self.done is not None) and self._is_done(it):
                    self.resumed += 1
                    if bar is not None:
                        bar.update(1)
                    continue
                yield it

        try:
            for out in self.engine.map(self.fn, todo()):
                if bar is not None:
                    bar.update(1)
                if out.error is not None:
                    self.failed.append(Skipped(getattr(out.item, "source", str(out.item)), out.error, "failed"))
                yield out
        finally:
            if bar is not None:
                bar.close()
            if self._capture is not None:
                self._capture.stop()


def _engine(engine: str | Engine | None, workers: int | None) -> Engine:
    return get_engine(engine, **({} if workers is None else {"workers": workers}))


def run(task: Callable[[Any, Any], Any], source: Any, *, engine: str | Engine | None = None,
        workers: int | None = None, progress: str | None = None, total: int | None = None, every: int = 1,
        key: Callable[[Any], Hashable] = frame_key, done: Collection[Hashable] | None = None,
        skip: Callable[[Any], bool] | None = None) -> Run:
    """Apply ``task(image, frame)`` to every frame of ``source``, in order, on ``engine``.

    Args:
        task: a picklable callable (a module-level function or object) that loads its models
            lazily; it gets the decoded ``(H, W, 3) uint8`` RGB image and the frame without
            pixels (``source``, ``name``, ``index``, ``timestamp``).
        source: a :class:`~faceforge.sources.Source` or anything
            :func:`~faceforge.sources.open_source` takes (paths, folders, globs, archives...).
            A live source (webcam, stream) is read on a capture thread that drops frames the
            engine cannot keep up with (see :attr:`Run.dropped`).
        engine: ``"local"`` (default; worker processes), ``"serial"``, a registered name, or an
            engine (see :func:`~faceforge.runner.get_engine`).
        workers: worker processes for the local engine (None or 0: one per core; 1: this process).
        progress: a description to show a progress bar on stderr, or None for none.
        total: number of items for the progress bar (default: the source's estimate).
        every: keep every n-th video frame (when ``source`` is opened here).
        key: the resumption key of a frame (default ``"SOURCE:INDEX"``).
        done: keys already done: their frames are left out (counted in :attr:`Run.resumed`).
        skip: or a predicate: frames for which it is true are left out likewise.

    Returns:
        A :class:`Run`; iterate it for one :class:`Outcome` per frame run, errors reported
        per frame (and in :attr:`Run.skipped`), never raised.

    Raises:
        SourceError: the source cannot be opened (see :func:`~faceforge.sources.open_source`).
        ParameterError: an unknown engine.

    Example:
        >>> from skimage import data
        >>> r = run(lambda image, frame: image.shape, data.astronaut(), engine="serial")
        >>> [o.value for o in r]
        [(512, 512, 3)]
    """
    src = open_source(source, every=every)
    capture = None
    items: Iterable[Any] = src
    if src.live:
        from faceforge.sources.capture import CaptureThread

        capture = CaptureThread(src, drop=True)
        items = capture
    return Run(ImageTask(task), items, _engine(engine, workers), source=src, progress=progress,
               total=total if total is not None else src.length_hint(), key=key, done=done, skip=skip,
               capture=capture)


def run_items(task: Callable[[Any, Any], Any], items: Iterable[Any], *, engine: str | Engine | None = None,
              workers: int | None = None, progress: str | None = None, total: int | None = None,
              key: Callable[[Any], Hashable] = frame_key, done: Collection[Hashable] | None = None,
              skip: Callable[[Any], bool] | None = None) -> Run:
    """Like :func:`run`, over work items made by the caller instead of a source.

    Args:
        task: as for :func:`run`; it gets ``item.image`` (or the ``item.source`` file, decoded,
            when that is None) and the item without pixels.
        items: :class:`~faceforge.sources.Frame`\\ s, or any picklable objects with ``source``,
            ``index`` and ``image`` attributes (such as :class:`WorkItem`).
        engine, workers, progress, total, key, done, skip: as for :func:`run`.

    Returns:
        A :class:`Run`.
    """
    return Run(ImageTask(task), items, _engine(engine, workers), progress=progress, total=total, key=key,
               done=done, skip=skip)
