"""Face tasks over many inputs: the batch work behind ``faceforge detect/embed/classify/analyze``.

Each task is a small picklable object that handles one image or video frame in a worker process
and returns the face record, :class:`~faceforge.types.Faces`, with image-level ``meta``:
``source`` (the file), ``frame`` (0 for stills), ``timestamp``, ``width``, ``height`` and ``ms``
(the time the task spent on the image). Optional side outputs (annotated images, face crops) are
task options; they are written atomically and never over an input file.

The ``*_files`` functions run a task over images, folders (recursively), archives and videos on
every core with the batch runner (:func:`faceforge.runner.run`), in input order. Arguments are checked, and the
inputs listed, when the function is called (bad names fail at once); the faces come lazily as
the iterator is consumed. Files that cannot be used are appended to ``skipped`` as
``(path, reason)`` (or logged when no list is given); the batch goes on.

Example:
    >>> from faceforge.tasks import detect_files
    >>> skipped = []
    >>> for faces in detect_files(["photos/"], skipped=skipped):    # doctest: +SKIP
    ...     print(faces.meta["source"], len(faces))
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from faceforge._fs import check_outputs
from faceforge.errors import ParameterError
from faceforge.sinks import output_stem
from faceforge.types import Faces

log = logging.getLogger(__name__)

PathLike = str | os.PathLike
Skipped = list[tuple[str, str]]


def _meta(image: np.ndarray, item: Any, t0: float, **extra: Any) -> dict[str, Any]:
    return {"source": item.source, "frame": item.index, "timestamp": item.timestamp,
            "width": int(image.shape[1]), "height": int(image.shape[0]),
            "ms": round((time.perf_counter() - t0) * 1000, 2), **extra}


class _Task:
    """Base of the tasks: models are loaded on first use and never pickled."""

    _cached: tuple[str, ...] = ()
    annotate: PathLike | None = None
    protect: list[str]

    def __getstate__(self) -> dict[str, Any]:
        return {k: (None if k in self._cached else v) for k, v in self.__dict__.items()}

    def _save_annotated(self, image: np.ndarray, faces: Faces, labels: Sequence[str] | None, item: Any) -> None:
        from faceforge.sinks import annotate, save_image

        if self.annotate is None:
            return
        img = annotate(image, faces, labels) if len(faces) else image
        save_image(Path(self.annotate) / f"{output_stem(item.source, item.index)}.jpg", img, self.protect)


class DetectTask(_Task):
    """Find the faces of one image with the face finder; optionally save crops and an annotated copy.

    Args:
        detector: detector name (``"photo"``, ``"live"``, ``"yunet"``...).
        min_score: drop faces scoring below this (0-1). Raising it drops doubtful faces. ``None``:
            0.5 with the fast preset, the preset's own threshold with the accurate one.
        quality: ``"fast"`` or ``"accurate"`` (see :class:`faceforge.pipeline.FaceFinder`).
        target_fp: instead of ``min_score``: the threshold that gave this many false positives per
            photo on the development photos (:func:`faceforge.detectors.base.fp_threshold`).
        crops: folder for a crop of every face (``STEM_face0.png``...), or None.
        crop_size: side of the crops in pixels.
        crop_template: ``"arcface112"`` / ``"dlib150"`` (aligned) or ``"margin"`` (the box x1.4).
        annotate: folder for a copy of each image with the boxes drawn (``STEM.jpg``), or None.
        protect: paths that outputs must never overwrite (the inputs).
    """

    _cached = ("_finder",)

    def __init__(self, detector: str = "photo", min_score: float | None = None, *, crops: PathLike | None = None,
                 crop_size: int = 112, crop_template: str = "arcface112", annotate: PathLike | None = None,
                 protect: Sequence[str] = (), quality: str = "fast", target_fp: float | None = None) -> None:
        from faceforge._quality import check_quality
        from faceforge.detectors import resolve_detector_name

        self.quality = check_quality(quality)
        self.detector = resolve_detector_name(detector)
        if target_fp is not None:  # the stated false-positive rate picks the threshold, here once
            from faceforge.detectors.base import fp_threshold

            if min_score is not None:
                raise ParameterError("give min_score or target_fp, not both (target_fp chooses min_score)")
            min_score = fp_threshold(self.detector, target_fp, self.quality)
        elif min_score is None and self.quality == "fast":
            min_score = 0.5
        self.min_score = None if min_score is None else float(min_score)
        self.crops, self.crop_size, self.crop_template = crops, int(crop_size), crop_template
        self.annotate, self.protect = annotate, list(protect)
        self._finder: Any = None

    def __call__(self, image: np.ndarray, item: Any) -> Faces:
        from faceforge.align import align_faces
        from faceforge.pipeline import FaceFinder
        from faceforge.sinks import save_image

        if self._finder is None:
            opts = {} if self.min_score is None else {"min_score": self.min_score}
            self._finder = FaceFinder(self.detector, detector_options=opts, quality=self.quality)
        t0 = time.perf_counter()
        faces = self._finder.find(image)
        faces = faces.with_meta(**_meta(image, item, t0, detector=self.detector))
        if self.crops is not None and len(faces):
            margin = 1.4 if self.crop_template == "margin" else None
            chips = align_faces(image, faces, self.crop_template, self.crop_size, margin=margin)
            stem = output_stem(item.source, item.index)
            for i, chip in enumerate(chips):
                save_image(Path(self.crops) / f"{stem}_face{i}.png", chip, self.protect)
        if self.annotate is not None:
            self._save_annotated(image, faces, None, item)
        return faces


class EmbedTask(_Task):
    """Find and embed the faces of one image (the main face only unless ``all_faces``).

    Args:
        detector: detector name.
        embedder: embedder name (``"dlib-resnet"`` for identity, ``"effnet-lite0"``...).
        whole_image: use the whole image as the face when none is found (photos that are face crops).
        all_faces: embed every face, not only the main one (:func:`faceforge.types.main_face_order`).
        quality: ``"fast"`` or ``"accurate"`` (see :class:`faceforge.pipeline.FacePipeline`).
    """

    _cached = ("_pipe",)

    def __init__(self, detector: str = "photo", embedder: str = "dlib-resnet", *, whole_image: bool = False,
                 all_faces: bool = False, quality: str = "fast") -> None:
        self.detector, self.embedder, self.quality = detector, embedder, quality
        self.whole_image, self.all_faces = bool(whole_image), bool(all_faces)
        self._pipe: Any = None

    def __call__(self, image: np.ndarray, item: Any) -> Faces:
        from faceforge.pipeline import FacePipeline

        if self._pipe is None:
            self._pipe = FacePipeline(self.detector, self.embedder, whole_image_fallback=self.whole_image,
                                      quality=self.quality)
        t0 = time.perf_counter()
        faces = self._pipe.embed(image, main_only=not self.all_faces)
        return faces.with_meta(**_meta(image, item, t0))


class ClassifyTask(_Task):
    """Classify every face of one image with a model file; optionally save an annotated copy.

    Args:
        model: a model file from :func:`faceforge.train.train`.
        top_k: labels kept per face.
        annotate: folder for labelled copies of the images, or None.
        protect: paths that outputs must never overwrite.
    """

    _cached = ("_clf",)

    def __init__(self, model: PathLike, top_k: int = 3, *, annotate: PathLike | None = None,
                 protect: Sequence[str] = ()) -> None:
        self.model, self.top_k, self.annotate, self.protect = str(model), int(top_k), annotate, list(protect)
        self._clf: Any = None

    def __call__(self, image: np.ndarray, item: Any) -> Faces:
        from faceforge.train import load_classifier

        if self._clf is None:
            self._clf = load_classifier(self.model)
        t0 = time.perf_counter()
        faces = self._clf.classify(image, self.top_k).with_meta(**_meta(image, item, t0, model=self._clf.name))
        if self.annotate is not None:
            labels = [f"{p.label} {p.score:.2f}" for p in faces.predictions[self._clf.name]]
            self._save_annotated(image, faces, labels, item)
        return faces


def face_models(models: Sequence[PathLike] = (), gallery: tuple[str, str] | None = None) -> dict[str, Any]:
    """``{name: model}`` for model files (named by file stem) and a gallery (``"identity"``).

    Args:
        models: model files from :func:`faceforge.train.train`; loaded lazily by the analyzer.
        gallery: ``(file, name)`` of a gallery, or None.

    Raises:
        ParameterError: two model files with the same stem, or no such gallery file.
    """
    out: dict[str, Any] = {}
    for m in models:
        if Path(m).stem in out:
            raise ParameterError(f"Two models are called {Path(m).stem!r}; rename one of the files.")
        out[Path(m).stem] = str(m)
    if gallery is not None:
        from faceforge.gallery import Gallery

        if not Path(gallery[0]).is_file():
            raise ParameterError(f"{gallery[0]}: no such gallery file; create it with `faceforge gallery enrol`.")
        out["identity"] = Gallery(gallery[0], gallery[1])
    return out


class AnalyzeTask(_Task):
    """Built-in attributes, your own models and a gallery for every face of one image.

    Args:
        attributes: built-in attributes (``gender``, ``age``, ``emotion``).
        models: model files, reported under their file stems.
        detector: detector name.
        top_k: labels kept per face and model.
        gallery: ``(file, name)`` of a gallery (reported as ``identity``), or None.
        annotate: folder for labelled copies of the images, or None.
        protect: paths that outputs must never overwrite.
        quality: ``"fast"`` (default) or ``"accurate"`` (see :class:`~faceforge.attributes.Analyzer`).
    """

    _cached = ("_an",)

    def __init__(self, attributes: Sequence[str] = ("gender", "age", "emotion"), models: Sequence[PathLike] = (),
                 detector: str = "photo", top_k: int = 3, *, gallery: tuple[str, str] | None = None,
                 annotate: PathLike | None = None, protect: Sequence[str] = (), quality: str = "fast") -> None:
        from faceforge._quality import check_quality

        self.quality = check_quality(quality)
        self.attributes, self.models = list(attributes), [str(m) for m in models]
        self.detector, self.top_k, self.gallery = detector, int(top_k), gallery
        self.annotate, self.protect = annotate, list(protect)
        self._an: Any = None

    def __call__(self, image: np.ndarray, item: Any) -> Faces:
        from faceforge.attributes import Analyzer

        if self._an is None:
            self._an = Analyzer(self.attributes, face_models(self.models, self.gallery), detector=self.detector,
                                top_k=self.top_k, quality=self.quality)
        t0 = time.perf_counter()
        faces = self._an.analyze(image).with_meta(**_meta(image, item, t0))
        if self.annotate is not None:
            self._save_annotated(image, faces, [r.label_text() for r in faces.rows()], item)
        return faces


# ---------------------------------------------------------------------------------------------
def run_files(make_task: Callable[[list[str]], Callable[[np.ndarray, Any], Faces]], paths: Sequence[PathLike], *,
              every: int = 1, workers: int | None = None, progress: str | None = None,
              skipped: Skipped | None = None, engine: Any = None) -> Iterator[Faces]:
    """Run a face task over images, folders, archives and videos; one :class:`Faces` per image or frame.

    The inputs are listed now (:func:`faceforge.sources.open_source`: a missing path raises at
    once); the work runs as the iterator is consumed, on the batch runner
    (:func:`faceforge.runner.run`: ``workers`` processes, in input order). Video frames are
    decoded lazily.

    Args:
        make_task: ``make_task(files)`` builds the picklable task; ``files`` are the inputs,
            which its outputs must never overwrite.
        paths: files, folders (recursively), archives and videos.
        every: for videos, keep every n-th frame.
        workers: processes (default: one per core); 1 runs here.
        progress: a description for a progress bar on stderr, or None.
        skipped: receives ``(path, reason)`` for every input that could not be used (when the
            iterator ends); None logs them.
        engine: the runner's engine (a name: ``"local"`` default, ``"serial"``, ``"ray"``; or an
            engine; see :func:`faceforge.runner.get_engine`).

    Raises:
        SourceError: a path does not exist, or nothing usable was found.
        ParameterError: ``every`` is below 1.
    """
    from faceforge.sources import open_source

    if int(every) < 1:
        raise ParameterError(f"every must be >= 1 (keep every n-th video frame), got {every}")
    src = open_source([str(p) for p in paths], every=int(every))
    task = make_task(src.paths)
    return _run(task, src, workers, progress, skipped, engine)


def _run(task: Callable[[np.ndarray, Any], Faces], src: Any, workers: int | None, progress: str | None,
         skipped: Skipped | None, engine: Any) -> Iterator[Faces]:
    from faceforge.runner import run

    r = run(task, src, engine=engine, workers=workers, progress=progress)
    try:
        for res in r:
            if res.error is None:
                yield res.value
    finally:
        for s in r.skipped:
            if skipped is not None:
                skipped.append((s.source, s.reason))
            else:
                log.warning("skipped %s", s.reason if s.source in s.reason else f"{s.source}: {s.reason}")


def _progress(progress: str | bool | None, default: str) -> str | None:
    return default if progress is True else (progress or None)


def detect_files(paths: Sequence[PathLike], *, detector: str = "photo", min_score: float | None = None, every: int = 1,
                 crops: PathLike | None = None, crop_size: int = 112, crop_template: str = "arcface112",
                 annotate: PathLike | None = None, workers: int | None = None, progress: str | bool | None = None,
                 skipped: Skipped | None = None, engine: Any = None, quality: str = "fast",
                 target_fp: float | None = None) -> Iterator[Faces]:
    """Find the faces of many images and video frames (what ``faceforge detect`` runs).

    Args:
        paths: files, folders (recursively), archives and videos.
        detector: ``"photo"`` (yunet), ``"live"`` (blazeface.full) or a detector name.
        min_score: drop faces scoring below this (0-1); ``None``: the preset's (see :class:`DetectTask`).
        every: for videos, keep every n-th frame.
        crops, crop_size, crop_template, annotate: side outputs (see :class:`DetectTask`).
        quality: ``"fast"`` or ``"accurate"`` (test-time augmented detection, see
            :class:`faceforge.pipeline.FaceFinder`).
        target_fp: choose the threshold for this many false positives per photo instead of
            ``min_score`` (see :class:`DetectTask`).
        workers: processes (default: one per core).
        progress: True or a description for a progress bar on stderr.
        skipped: receives ``(path, reason)`` for unusable files.
        engine: where the work runs: None (``$FACEFORGE_ENGINE``, else ``"local"``), an engine name
            (``"local"``, ``"serial"``, ``"ray"``) or an engine (:func:`faceforge.runner.get_engine`).

    Returns:
        An iterator of :class:`Faces`, one per image or frame in input order, main face first,
        with ``meta`` ``source``, ``frame``, ``timestamp``, ``width``, ``height``, ``ms``, ``detector``.

    Raises:
        ParameterError: unknown detector (the message suggests the nearest name).
        ModelNotFoundError: the detector's package is missing. SourceError: a missing path or no media.
        OutputError: ``crops`` or ``annotate`` is, holds or lies inside an input.
    """
    from faceforge.detectors import get_detector

    get_detector(detector)  # fail fast on a bad name or a missing package
    # fail fast on a bad quality or target_fp (no calibration, out of range); loads no model
    DetectTask(detector, min_score, quality=quality, target_fp=target_fp)
    check_outputs([(crops, "folder", "face crops folder"), (annotate, "folder", "annotated images folder")], paths)
    return run_files(lambda files: DetectTask(detector, min_score, crops=crops, crop_size=crop_size,
                                              crop_template=crop_template, annotate=annotate, protect=files,
                                              quality=quality, target_fp=target_fp),
                     paths, every=every, workers=workers, progress=_progress(progress, "detect"),
                     skipped=skipped, engine=engine)


def embed_files(paths: Sequence[PathLike], *, embedder: str = "dlib-resnet", detector: str = "photo",
                all_faces: bool = False, whole_image: bool = False, every: int = 1, workers: int | None = None,
                progress: str | bool | None = None, skipped: Skipped | None = None,
                engine: Any = None, quality: str = "fast") -> Iterator[Faces]:
    """Find and embed the faces of many images and video frames (what ``faceforge embed`` runs).

    Args:
        paths: files, folders, archives and videos.
        embedder: embedder name.
        detector: detector name.
        all_faces: every face instead of the main face only.
        whole_image: the whole image is the face when none is found (face crops).
        every: for videos, keep every n-th frame.
        workers, progress, skipped, engine: as for :func:`detect_files`.
        quality: ``"fast"`` or ``"accurate"`` (see :class:`faceforge.pipeline.FacePipeline`).

    Returns:
        An iterator of :class:`Faces` with ``faces.embedding`` (``(n, dim) float32``); images
        without a face give an empty record.

    Raises:
        ParameterError / ModelNotFoundError: unknown or uninstalled embedder or detector.
        SourceError: a missing path or no media.
    """
    from faceforge.detectors import get_detector
    from faceforge.embedders import get_embedder

    from faceforge._quality import check_quality

    get_embedder(embedder)
    get_detector(detector)
    check_quality(quality)
    return run_files(lambda files: EmbedTask(detector, embedder, whole_image=whole_image, all_faces=all_faces,
                                             quality=quality),
                     paths, every=every, workers=workers, progress=_progress(progress, f"embed ({embedder})"),
                     skipped=skipped, engine=engine)


def classify_files(model: PathLike | Any, paths: Sequence[PathLike], *, top_k: int = 3,
                   annotate: PathLike | None = None, every: int = 1, workers: int | None = None,
                   progress: str | bool | None = None, skipped: Skipped | None = None,
                   engine: Any = None) -> Iterator[Faces]:
    """Classify every face of many images and video frames with a model file (``faceforge classify``).

    Args:
        model: a model file (or a :class:`~faceforge.train.FaceClassifier` loaded from one).
        paths: files, folders, archives and videos.
        top_k: labels kept per face.
        annotate: folder for labelled copies of the images, or None.
        every, workers, progress, skipped, engine: as for :func:`detect_files`.

    Returns:
        An iterator of :class:`Faces` with ``predictions[name]`` (``name``: the model's, also in
        ``meta["model"]``).

    Raises:
        BundleError: not a model file, or one from a newer format. SourceError: bad inputs.
        OutputError: ``annotate`` is, holds or lies inside an input or the model file.
    """
    from faceforge.train import load_classifier

    path = model if isinstance(model, (str, os.PathLike)) else getattr(model, "path", "")
    if not path:
        raise ParameterError("classify_files needs a model file; this classifier was not loaded from one "
                             "(save it, or pass the path of the .ffm file).")
    load_classifier(path)  # fail fast: bad file, newer format, missing embedder
    check_outputs([(annotate, "folder", "annotated images folder")], [*paths, path])
    return run_files(lambda files: ClassifyTask(path, top_k, annotate=annotate, protect=files + [str(path)]),
                     paths, every=every, workers=workers, progress=_progress(progress, "classify"),
                     skipped=skipped, engine=engine)


def analyze_files(paths: Sequence[PathLike], *, attributes: Sequence[str] = ("gender", "age", "emotion"),
                  models: Sequence[PathLike] = (), gallery: tuple[PathLike, str] | None = None,
                  detector: str = "photo", top_k: int = 3, annotate: PathLike | None = None, every: int = 1,
                  workers: int | None = None, progress: str | bool | None = None,
                  skipped: Skipped | None = None, engine: Any = None, quality: str = "fast") -> Iterator[Faces]:
    """Attributes, your own models and who it is for every face of many images (``faceforge analyze``).

    Args:
        paths: files, folders, archives and videos.
        attributes: built-in attributes (``gender``, ``age``, ``emotion``).
        models: model files, reported under their file stems.
        gallery: ``(file, name)`` of a gallery, reported as ``identity``; or None.
        detector: detector name.
        top_k: labels kept per face and model.
        annotate: folder for labelled copies of the images, or None.
        every, workers, progress, skipped, engine: as for :func:`detect_files`.
        quality: ``"fast"`` (default) or ``"accurate"``: gender and age average the chip, its
            mirror image and small rotations (see :class:`~faceforge.attributes.Analyzer`).

    Raises:
        ParameterError: unknown attribute, clashing model names, no such gallery file, unknown quality.
        BundleError: a bad model file. SourceError: bad inputs.
        OutputError: ``annotate`` is, holds or lies inside an input, model or gallery file.
    """
    from faceforge.attributes import Analyzer

    attrs, model_files = list(attributes), [str(m) for m in models]
    gal = (str(gallery[0]), gallery[1]) if gallery else None
    Analyzer(attrs, face_models(model_files, gal), detector=detector,
             quality=quality)  # fail fast: attribute names, model files, quality
    protect = model_files + ([gal[0]] if gal else [])
    check_outputs([(annotate, "folder", "annotated images folder")], [*paths, *protect])
    return run_files(lambda files: AnalyzeTask(attrs, model_files, detector, top_k, gallery=gal, annotate=annotate,
                                               protect=files + protect, quality=quality),
                     paths, every=every, workers=workers, progress=_progress(progress, "analyze"),
                     skipped=skipped, engine=engine)
