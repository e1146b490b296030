"""Every setting of :func:`faceforge.train.train`, with its default and its check, in one place."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from faceforge.errors import ParameterError

TASKS = ("auto", "classification", "regression")


@dataclass(frozen=True)
class TrainConfig:
    """How to train a face classifier (or regressor); checked when built.

    Attributes:
        embedder: ``"auto"`` (default): every installed embedder is scored by cross-validation on
            the photos and the best is used (see :mod:`faceforge.train.auto`; the leaderboard is
            ``report["auto"]``); or one by name: ``"dlib-resnet"`` (identity), ``"agegender"`` /
            ``"gendernet"`` (demographic attributes), ``"expression"`` (expressions),
            ``"effnet-lite0"`` (anything else visible).
        head: ``"logreg"``, ``"svm"``, ``"knn"``, ``"mlp"``; ``"ridge"`` (for numbers); ``"auto"``
            (logreg, svm and knn scored, the best used). ``None`` (default): chosen with the
            embedder when ``embedder="auto"``, else ``"logreg"`` for classes and ``"ridge"`` for
            numbers.
        detector: face detector (default ``"photo"``).
        crops: ``"auto"`` (default: detect; use the whole image when no face is found),
            ``True`` / ``"always"`` (images are face crops: use them whole) or ``False`` /
            ``"never"`` (drop images without a face).
        augment: add flipped / rotated / brightened copies as extra cached embeddings (default False).
        val: fraction of images held out for the validation report, stratified, in [0, 0.9)
            (0: no validation). Default ``None``: chosen by the number of photos (see
            :mod:`faceforge.train.validation`): under 300 photos, repeated stratified k-fold over
            all photos with a 95% interval; from 300 on, a 20% hold-out.
        folds: if >= 2, k-fold cross-validation instead of a single hold-out (default 0: chosen,
            as for ``val``).
        repeats: repeats of the k-fold (default ``None``: 1 with ``folds`` given, else chosen to
            fit 40 head fits, 2 to 10).
        target_far: false-accept rate of the "unknown" check (a stranger labelled as someone),
            in (0, 0.5) (default 0.01): lowering it rejects more strangers and more true faces.
            ``None`` disables it.
        seed: random seed (splits, heads): the same inputs give the same model (default 0).
        label_column, path_column, image_root: for CSV data (default: the second / first
            column, paths relative to the CSV).
        task: ``"auto"`` (default: numbers mean regression), ``"classification"`` or ``"regression"``.
        workers: processes for embedding (default ``None``: all cores).
        progress: show progress bars (default True).
        on_event: callback ``(name, payload)`` for progress reporting: ``"dataset"`` (after
            loading), ``"searching"`` (the feature search starts a candidate embedder: payload
            ``{"embedder", "done", "total"}``), ``"embedded"``, ``"validated"`` (report ready)
            and ``"saved"``.
        head_params: extra parameters for the head (e.g. ``{"C": 1.0}``).
        alignment: override the embedder's face alignment (see :class:`~faceforge.pipeline.FacePipeline`).
        learning_curve: also fit on 10%, 25% and 50% of the (first) training split and plot the
            validation score against the number of training images (default True).
        known: the classes that are people to recognise; the others are negatives (e.g.
            ``("me",)`` beside a ``not_me`` folder): the me / not-me rule.
        engine: where the photos are embedded: None (default: ``$FACEFORGE_ENGINE``, else worker
            processes here), ``"local"``, ``"ray"`` or an engine (see
            :func:`faceforge.runner.get_engine`); the embedding cache is written here either way.
        quality: ``"fast"`` (default) or ``"accurate"``: every photo's face is found by the accurate
            detector (:mod:`faceforge.detectors.tta`) and embedded averaged with its mirror image
            (:mod:`faceforge.embedders.tta`): about 2x the embedding time, up to 4x the detection
            time. The model records it, so ``classify`` finds and embeds its faces the same way.
            docs/benchmarks.md, "The accurate preset: training", has what it changes per data set.
        negatives: the class (or classes) of "anyone else's faces" (e.g. ``"not_me"``): the other
            classes are people to recognise, and a face is one of them only when it is close
            enough to their photos, else the negatives' label. Default ``None`` (with ``known``
            ``None``): every class is an ordinary class, whatever its name (a class named like
            ``not_me`` only gets a hint); the unknown check stays on when the classes behave like
            people and is switched off when they are attributes (see ``report["unknown"]["rule"]``).
    """

    embedder: str = "auto"
    head: str | None = None
    detector: str = "photo"
    crops: str | bool = "auto"
    augment: bool = False
    val: float | None = None
    folds: int = 0
    repeats: int | None = None
    target_far: float | None = 0.01
    seed: int = 0
    label_column: str | None = None
    path_column: str | None = None
    image_root: str | os.PathLike | None = None
    task: str = "auto"
    workers: int | None = None
    progress: bool = True
    on_event: Callable[[str, Any], None] | None = field(default=None, compare=False, repr=False)
    head_params: dict[str, Any] | None = None
    alignment: str | dict[str, Any] | None = None
    learning_curve: bool = True
    known: Sequence[str] | None = None
    negatives: str | Sequence[str] | None = None
    quality: str = "fast"
    engine: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def from_kwargs(cls, config: "TrainConfig | None" = None, **kwargs: Any) -> "TrainConfig":
        """``config`` (default: the defaults) with ``kwargs`` overriding its fields.

        Raises:
            ParameterError: an unknown setting, or a bad value.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise ParameterError(f"train() has no setting(s) {unknown}. Valid: {', '.join(sorted(names))}.")
        if config is not None and not isinstance(config, cls):
            raise ParameterError(f"config must be a TrainConfig, but got {type(config).__name__}.")
        return dataclasses.replace(config, **kwargs) if config is not None else cls(**kwargs)

    def validate(self) -> None:
        """Check every setting (called when the config is built).

        Raises:
            ParameterError: the first bad setting, with what is allowed.
        """
        from faceforge.heads import HEADS, REGRESSORS

        if self.val is not None and (not isinstance(self.val, (int, float)) or isinstance(self.val, bool)
                                     or not 0.0 <= float(self.val) < 0.9):
            raise ParameterError(f"val must lie in [0, 0.9) (or be None: chosen by the number of photos), "
                                 f"got {self.val}")
        if self.repeats is not None and (not isinstance(self.repeats, int) or isinstance(self.repeats, bool)
                                         or self.repeats < 1):
            raise ParameterError(f"repeats must be None (chosen) or an integer >= 1, got {self.repeats!r}")
        if not isinstance(self.folds, int) or isinstance(self.folds, bool) or self.folds < 0:
            raise ParameterError(f"folds must be 0 (hold-out) or an integer >= 2, got {self.folds!r}")
        if self.target_far is not None and not 0.0 < float(self.target_far) < 0.5:
            raise ParameterError(f"target_far must lie in (0, 0.5) or be None, got {self.target_far}")
        crops_name(self.crops)
        from faceforge._quality import check_quality

        check_quality(self.quality)
        if self.task not in TASKS:
            raise ParameterError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.head is not None and self.head not in HEADS + REGRESSORS + ("auto",):
            raise ParameterError(f"Unknown head {self.head!r}. Choose one of: "
                                 f"{', '.join(HEADS + REGRESSORS + ('auto',))}.")
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool):
            raise ParameterError(f"seed must be an integer, got {self.seed!r}")
        if self.workers is not None and (not isinstance(self.workers, int) or isinstance(self.workers, bool)
                                         or self.workers < 0):
            raise ParameterError(f"workers must be None (all cores) or a number of processes, got {self.workers!r}")
        if self.head_params is not None and not isinstance(self.head_params, dict):
            raise ParameterError(f"head_params must be a dict of head parameters, got {self.head_params!r}")
        if self.on_event is not None and not callable(self.on_event):
            raise ParameterError("on_event must be a function (name, payload) or None.")
        if self.known is not None and not isinstance(self.known, (str, list, tuple)):
            raise ParameterError(f"known must be a list of class names, got {self.known!r}")
        if self.negatives is not None and not isinstance(self.negatives, (str, list, tuple)):
            raise ParameterError(f"negatives must be a class name (or a list of them), got {self.negatives!r}")

    def emit(self, name: str, payload: Any) -> None:
        """Send a progress event to :attr:`on_event` (if any)."""
        if self.on_event is not None:
            self.on_event(name, payload)


def crops_name(crops: str | bool) -> str:
    """The manifest's word for a crops mode: ``"auto"``, ``"always"`` or ``"never"``.

    Raises:
        ParameterError: an unknown mode.
    """
    if crops is True or crops == "always":
        return "always"
    if crops is False or crops == "never":
        return "never"
    if crops == "auto":
        return "auto"
    raise ParameterError(f"crops must be 'auto', 'always' (True) or 'never' (False), got {crops!r}")


def crops_mode(name: str) -> str | bool:
    """Inverse of :func:`crops_name`: the value :func:`faceforge.data.embed_dataset` takes."""
    return {"always": True, "never": False}.get(crops_name(name), "auto")
