"""Embedding a dataset: find each image's main face, embed it, cache it, and collect X / y.

Only cache misses are computed, in worker processes (:func:`faceforge.runner.run_items`), each
of which builds its models once on first use. A run whose keys all hit the cache decodes no
image and loads no model: keys come from the memoised file hashes and are read in batches.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from faceforge.data.cache import EmbeddingCache, Record
from faceforge.data.dataset import Dataset, Problem
from faceforge import __version__
from faceforge.errors import DatasetError, ImageError, ParameterError
from faceforge.pipeline.finder import UPSCALE, check_crops

log = logging.getLogger(__name__)

#: Augmentations applied to the image before face finding (id -> what it does).
AUGMENTATIONS: dict[str, str] = {
    "flip": "mirrored left-right",
    "rot+10": "rotated 10 degrees anticlockwise",
    "rot-10": "rotated 10 degrees clockwise",
    "bright0.8": "brightness x0.8",
    "bright1.2": "brightness x1.2",
}

#: Bump when the way faces are found or cropped changes, so old cache entries are not reused.
#: 2: the main face is chosen by size and distance from the centre (was: the largest).
FACE_RULES_VERSION = "2"


@dataclass
class EmbeddedDataset:
    """A dataset turned into a feature matrix.

    Attributes:
        X: ``(n, d) float32``, one row per usable sample (plus augmented rows).
        y: ``(n,)`` int64 class index (classification) or float64 value (regression).
        paths: the source image of each row.
        augmented: ``(n,) bool``: the row is an augmented copy.
        classes: class names (index = ``y``), ``[]`` for regression.
        task: ``"classification"`` or ``"regression"``.
        embedder: the embedder's name.
        face_sources: over the source images (not augmented copies): how many faces were
            ``"detected"``, used the ``"whole_image"``, or were ``"dropped"`` (unreadable, or no
            face with ``crops=False``).
        problems: the dataset's problems plus what embedding noticed.
        seconds: wall time of :func:`embed_dataset`.
        cache_hits: rows (original and augmented) whose embedding was already cached.
        cache_misses: rows computed in this run (files with identical bytes are computed once).
        config: the face-finding settings used (embedder, detector, crops, alignment, upscale);
            use the same at prediction time (see :func:`embed_image`).
    """

    X: np.ndarray
    y: np.ndarray
    paths: list[str]
    augmented: np.ndarray
    classes: list[str]
    task: str
    embedder: str
    face_sources: dict[str, int]
    problems: list[Problem]
    seconds: float
    cache_hits: int
    cache_misses: int
    config: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.X)


# -- one image -----------------------------------------------------------------------------

def augment_image(image: np.ndarray, aug: str) -> np.ndarray:
    """Apply augmentation ``aug`` (a key of :data:`AUGMENTATIONS`, or ``""`` for none)."""
    if not aug:
        return image
    if aug == "flip":
        return np.ascontiguousarray(image[:, ::-1])
    if aug.startswith("rot"):
        import cv2

        h, w = image.shape[:2]
        m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), float(aug[3:]), 1.0)
        return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if aug.startswith("bright"):
        return np.clip(image.astype(np.float32) * float(aug[6:]), 0, 255).round().astype(np.uint8)
    raise ParameterError(f"Unknown augmentation {aug!r}; choose from {', '.join(AUGMENTATIONS)}")


def embed_image(image: np.ndarray, pipeline: Any) -> Record:
    """Find the main face of one image and embed it, as :func:`embed_dataset` does.

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        pipeline: a :class:`faceforge.pipeline.FacePipeline`; its face finder decides crops and
            upscaling, and the main face is :func:`faceforge.types.main_face_order`'s first.

    Returns:
        :class:`Record`; ``box`` is in ``image``'s pixels; ``face`` is ``"detected"``,
        ``"whole_image"`` or ``"none"`` (``crops=False`` and no face).
    """
    faces = pipeline.embed(image, main_only=True)
    if not len(faces):
        return Record(np.zeros(0, np.float32), "none", 0, None)
    box = [float(v) for v in faces.xyxy[0]]
    if faces.whole_image[0]:
        return Record(faces.embedding[0], "whole_image", 0, box)
    return Record(faces.embedding[0], "detected", int(faces.data["faces_found"][0]), box)


# -- worker side ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Order:
    """What a worker must compute for one file (passed as the work item's ``image``)."""

    path: str
    augs: tuple[str, ...]


@dataclass
class _Result:
    records: dict[str, Record] = field(default_factory=dict)
    fingerprint: tuple[int, bytes] | None = None  # for check_duplicates
    error: str | None = None  # the image does not decode


_PIPELINES: dict[tuple, Any] = {}


def _pipeline(detector: str, embedder: str, alignment: str, crops: Any = "auto", upscale: int | None = UPSCALE,
              quality: str = "fast") -> Any:
    key = (detector, embedder, alignment, crops, upscale, quality)
    pipe = _PIPELINES.get(key)
    if pipe is None:
        if os.environ.get("FACEFORGE_THREADS") == "1":
            # A batch worker (one process per core). yunet's library runs OpenMP with one thread
            # per core by default; several workers doing so oversubscribe the cores (measured
            # with spinning waits: 200 AT&T photos on 2 workers took 46 s instead of 3.3 s).
            # libgomp reads this when first loaded, below.
            os.environ.setdefault("OMP_NUM_THREADS", "1")
        from faceforge.pipeline import FacePipeline

        pipe = FacePipeline(detector if detector != "-" else "photo", embedder,
                            alignment=json.loads(alignment) if alignment else None, crops=crops, upscale=upscale,
                            quality=quality)
        _PIPELINES[key] = pipe
    return pipe


@dataclass(frozen=True)
class _EmbedTask:
    """Picklable per-file task: decode once, embed the original and the requested augmentations.

    Models are built on first use in each process and kept for the process's life.
    """

    embedder: str
    detector: str
    crops: str | bool
    alignment: str
    upscale: int | None
    quality: str = "fast"

    def __call__(self, order: _Order, item: Any) -> _Result:
        from faceforge.data.checks import fingerprint
        from faceforge.sources import load_image

        try:
            img = load_image(order.path)
        except ImageError as e:
            return _Result(error=str(e))
        pipe = _pipeline(self.detector, self.embedder, self.alignment, self.crops, self.upscale, self.quality)
        recs = {a: embed_image(augment_image(img, a), pipe) for a in order.augs}
        return _Result(recs, fingerprint(img))


def _single_openmp(cfg: dict[str, Any]) -> Any:
    """Limit OpenMP to one thread while embedding in this process.

    yunet's library runs OpenMP with a thread per core. Spinning (``OMP_WAIT_POLICY=ACTIVE``,
    or libgomp's default where yunet.py's PASSIVE default came too late) made detection of an
    AT&T photo take 220 ms instead of 7-18 ms on 2 cores shared with one other busy process;
    with passive waiting the limit changes little (16.5 vs 17.3 ms), and one thread costs
    ~1 ms on an idle machine. The limit needs the library loaded, so the detector is built
    first. Without threadpoolctl (a scikit-learn dependency) nothing is limited.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        return contextlib.nullcontext()
    if cfg["crops"] is not True:
        pipe = _pipeline(cfg["detector"], cfg["embedder"], cfg["alignment"], cfg["crops"], cfg["upscale"],
                         cfg.get("quality", "fast"))
        _ = pipe.detector  # builds the detector, which loads its OpenMP library
    return threadpool_limits(1, user_api="openmp")


# -- the dataset ---------------------------------------------------------------------------

def _augment_ids(augment: bool | Sequence[str]) -> tuple[str, ...]:
    if augment is True:
        return tuple(AUGMENTATIONS)
    if not augment:
        return ()
    ids = tuple(augment)
    bad = [a for a in ids if a not in AUGMENTATIONS]
    if bad:
        raise ParameterError(f"Unknown augmentation {bad[0]!r}; choose from {', '.join(AUGMENTATIONS)} "
                             "(or augment=True for all).")
    return ids


def face_config(embedder: str = "dlib-resnet", detector: str = "photo", crops: str | bool = "auto",
                alignment: str | dict[str, Any] | None = None, upscale: int | None = UPSCALE,
                quality: str = "fast") -> dict[str, Any]:
    """The settings that decide an embedding, with names resolved (``"photo"`` -> ``"yunet"``).

    ``quality`` other than ``"fast"`` is part of the settings (so of the cache key); ``"fast"``
    leaves them as they always were, so fast embeddings cached before keep their keys.

    Raises:
        ParameterError: unknown embedder or ``quality``, or ``crops`` not one of ``"auto"``, True, False.
    """
    from faceforge._quality import check_quality
    from faceforge.embedders.base import EMBEDDERS, available_embedders, embedder_version

    if not isinstance(embedder, str) or embedder not in EMBEDDERS:
        raise ParameterError(f"Unknown embedder {embedder!r}. Choose one of: {', '.join(available_embedders())}")
    crops = check_crops(crops)
    if upscale is not None and (isinstance(upscale, bool) or not isinstance(upscale, int) or upscale < 1):
        raise ParameterError(f"upscale must be a positive number of pixels or None, got {upscale!r}")
    det = "-"
    if crops is not True:
        from faceforge.detectors import resolve_detector_name

        if not isinstance(detector, str):
            raise ParameterError("detector must be a detector name (see faceforge.detectors.available_detectors), "
                                 f"got {detector!r}")
        det = resolve_detector_name(detector)
    weights = ""
    try:
        from faceforge.registry import get_spec

        weights = get_spec(embedder).sha256
    except Exception:  # an embedder outside the registry: its name alone keys the cache
        log.debug("no registry entry for embedder %s", embedder)
    return {"embedder": embedder, "weights": weights, "embedder_version": embedder_version(embedder), "detector": det,
            "crops": "auto" if crops == "auto" else bool(crops),
            "alignment": json.dumps(alignment, sort_keys=True) if alignment else "",
            "upscale": upscale if crops is not True else None, "rules": FACE_RULES_VERSION,
            "faceforge": __version__,  # a new release may find or crop faces differently
            **({} if check_quality(quality) == "fast" else {"quality": quality})}


def cache_key(file_sha256: str, config: dict[str, Any], augmentation: str = "") -> str:
    """Cache key: file content hash + hash of the face-finding config + augmentation id."""
    cfg = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:24]
    return f"{file_sha256}:{cfg}:{augmentation or 'orig'}"


def embed_dataset(dataset: Dataset, *, embedder: str = "dlib-resnet", detector: str = "photo",
                  crops: str | bool = "auto", augment: bool | Sequence[str] = False,
                  cache: EmbeddingCache | str | os.PathLike | None = None, workers: int | None = None,
                  progress: bool = True, alignment: str | dict[str, Any] | None = None,
                  upscale: int | None = UPSCALE, engine: Any = None, quality: str = "fast") -> EmbeddedDataset:
    """Embed the main face of every image (cached), giving the matrix a head trains on.

    Args:
        dataset: from :func:`~faceforge.data.load_dataset`.
        embedder: embedder name (``"a+b"``: the concatenation of embedders ``a`` and ``b``, see
            :mod:`faceforge.embedders.concat`).
        detector: detector name, or ``"photo"`` (default) / ``"live"``.
        crops: ``"auto"``: detect, and when no face is found use the whole image as the face
            (right for photos that are already face crops) and say so; ``True``: always the
            whole image (no detection); ``False``: images with no face are dropped.
        augment: True for every augmentation in :data:`AUGMENTATIONS` (applied to the image
            before face finding; one extra row each), or a list of their ids.
        cache: an :class:`EmbeddingCache`, a path for one, or None for the default file.
        workers: processes for cache misses (default: every core; few misses run in this
            process to skip the start-up cost).
        progress: show a progress bar on stderr while embedding.
        alignment: override the embedder's alignment (see :class:`faceforge.pipeline.FacePipeline`).
        upscale: images whose shorter side is below this are upscaled to it before detection;
            None never upscales.
        engine: where cache misses are embedded: None (today's: worker processes here, or this
            process for few misses), or an engine name (``"local"``, ``"ray"``) or engine (see
            :func:`faceforge.runner.get_engine`); the cache is written here either way.
        quality: ``"fast"`` or ``"accurate"`` (flip-averaged embeddings, see
            :class:`faceforge.pipeline.FacePipeline`; cached under their own keys).

    Returns:
        :class:`EmbeddedDataset`. Several faces in an image: the largest is used (an
        ``"several_faces"`` info problem). Unreadable images are skipped (``"unreadable"``).

    Raises:
        ParameterError: an unknown embedder, crop mode or augmentation.
        DatasetError: no image gave a usable face, or every image failed (the message of the
            first failure says why, e.g. a model package that is not installed).
    """
    from faceforge.embedders.concat import split_name

    if split_name(embedder) is not None:  # "a+b": each part embedded (and cached) alone, then joined
        from faceforge.data.concat import embed_concat

        return embed_concat(dataset, embedder, detector=detector, crops=crops, augment=augment, cache=cache,
                            workers=workers, progress=progress, alignment=alignment, upscale=upscale,
                            engine=engine, quality=quality)
    t0 = time.perf_counter()
    augs = ("",) + _augment_ids(augment)
    cfg = face_config(embedder, detector, crops, alignment, upscale, quality)
    if isinstance(cache, EmbeddingCache):
        return _embed(dataset, cfg, augs, cache, workers, progress, t0, engine)
    db = EmbeddingCache(cache)
    try:
        return _embed(dataset, cfg, augs, db, workers, progress, t0, engine)
    finally:
        db.close()


def _embed(ds: Dataset, cfg: dict[str, Any], augs: tuple[str, ...], db: EmbeddingCache, workers: int | None,
           progress: bool, t0: float, engine: Any = None) -> EmbeddedDataset:
    samples = ds.samples
    problems: list[Problem] = list(ds.problems)
    if ds.task == "classification":
        known = set(ds.classes)
        stray = next((s for s in samples if str(s.label) not in known), None)
        if stray is not None:
            raise DatasetError(f"{stray.path}: label {stray.label!r} is not one of the dataset's classes "
                               f"{ds.classes}; build the Dataset with load_dataset() or add the class.")
    infos = db.file_infos([s.path for s in samples])
    bad: dict[int, str] = {}
    keys: list[list[str]] = []
    for i, (s, info) in enumerate(zip(samples, infos)):
        if info is None:
            bad[i] = f"{s.path}: cannot be read any more (moved or deleted since the dataset was loaded); skipped."
        elif info.error:
            bad[i] = f"{s.path}: {info.error} Skipped."
        keys.append([] if i in bad else [cache_key(info.sha256, cfg, a) for a in augs])  # type: ignore[union-attr]
    found = db.get_many([k for ks in keys for k in ks])
    hits = sum(k in found for ks in keys for k in ks)
    orders: list[tuple[int, tuple[str, ...]]] = []
    queued: set[str] = set()  # files with the same bytes are computed once
    for i, ks in enumerate(keys):
        todo = tuple(a for a, k in zip(augs, ks) if k not in found and k not in queued)
        if todo:
            orders.append((i, todo))
            queued.update(k for k in ks if k not in found)
    misses = failed = 0
    first_error = ""
    if orders:
        from faceforge.runner import WorkItem, default_workers, run_items

        if engine is None or engine == "local":
            if workers is None:  # a pool costs a model load per process: only worth it for many misses
                workers = max(1, min(default_workers(), len(orders) // 25))
            workers = max(1, min(int(workers), len(orders)))
        elif workers is not None:  # another engine: as many workers as asked (None: its own default)
            workers = max(1, min(int(workers), len(orders)))
        task = _EmbedTask(cfg["embedder"], cfg["detector"], cfg["crops"], cfg["alignment"], cfg["upscale"],
                          cfg.get("quality", "fast"))
        items = (WorkItem(samples[i].path, image=_Order(samples[i].path, a)) for i, a in orders)
        notes: list[tuple[str, str, tuple[int, bytes] | None, str | None]] = []
        with contextlib.ExitStack() as stack:
            if workers == 1:
                stack.enter_context(_single_openmp(cfg))
            stack.callback(db.note_files, notes)  # even when interrupted: what was learnt is kept
            outs = run_items(task, items, engine=engine, workers=workers,
                             progress="Embedding faces" if progress else None, total=len(orders))
            for (i, _), out in zip(orders, outs):
                path, sha = samples[i].path, infos[i].sha256  # type: ignore[union-attr]
                if out.error is not None:
                    failed += 1
                    first_error = first_error or out.error
                    problems.append(Problem("failed", path, f"{out.error} (skipped)", "error"))
                    continue
                res: _Result = out.value
                if res.error is not None:
                    reason = res.error[len(path) + 2:] if res.error.startswith(path + ": ") else res.error
                    bad[i] = f"{path}: {reason} Skipped."
                    notes.append((path, sha, None, reason))
                    continue
                for a, computed in res.records.items():
                    k = cache_key(sha, cfg, a)
                    db.put(k, computed)
                    found[k] = computed
                notes.append((path, sha, res.fingerprint, None))
        if failed and failed == len(orders) and not hits:
            raise DatasetError(f"Embedding failed for every image ({failed}); the first error: {first_error}")
        misses = sum(k in queued and k in found for ks in keys for k in ks)

    rows: list[np.ndarray] = []
    ys: list[Any] = []
    paths: list[str] = []
    flags: list[bool] = []
    sources = {"detected": 0, "whole_image": 0, "dropped": 0}
    class_index = {c: j for j, c in enumerate(ds.classes)}
    det = cfg["detector"]
    for i, s in enumerate(samples):
        if i in bad:
            sources["dropped"] += 1
            problems.append(Problem("unreadable", s.path, bad[i], "warning"))
            continue
        orig: Record | None = None
        for a, k in zip(augs, keys[i]):
            rec = found.get(k)
            if a == "":
                orig = rec
                if rec is None or rec.face == "none":
                    sources["dropped"] += 1
                else:
                    sources[rec.face] = sources.get(rec.face, 0) + 1
                if rec is not None:
                    problems.extend(_face_problems(s.path, rec, cfg["crops"], det))
            elif orig is None or (orig.face == "detected" and rec is not None and rec.face != "detected"):
                continue  # an augmented copy whose face was lost would be a badly cropped row
            if rec is None or rec.face == "none" or rec.embedding.size == 0:
                continue
            rows.append(rec.embedding)
            ys.append(class_index[str(s.label)] if ds.task == "classification" else float(s.label))
            paths.append(s.path)
            flags.append(bool(a))
    if not rows:
        raise DatasetError(
            f"{ds.root}: none of the {len(samples)} images gave a usable face "
            f"({sources['dropped']} dropped). "
            + ("Use crops='auto' if the photos are face crops. " if cfg["crops"] is False else "")
            + "Check the problems listed for each file."
        )
    dims = {r.shape[0] for r in rows}
    if len(dims) > 1:  # cannot happen with one embedder; guards against a corrupted cache
        raise DatasetError(f"{db.path}: cached embeddings of different lengths {sorted(dims)}; "
                           "delete the cache file and re-run.")
    X = np.stack(rows).astype(np.float32, copy=False)
    y = np.asarray(ys, np.int64 if ds.task == "classification" else np.float64)
    if ds.task == "classification":
        per = np.bincount(y[~np.asarray(flags, bool)], minlength=len(ds.classes))
        for c, n in zip(ds.classes, per):
            if n < 2:
                problems.append(Problem("few_images", c,
                                        f"class {c!r} has {n} usable face{'s' if n != 1 else ''} after "
                                        "embedding; add photos where the face is visible.", "warning"))
    seconds = time.perf_counter() - t0
    log.info("embedded %d images (%d rows) in %.1f s: %d cached, %d computed",
             len(samples), len(X), seconds, hits, misses)
    return EmbeddedDataset(X, y, paths, np.asarray(flags, bool), list(ds.classes), ds.task, cfg["embedder"],
                           sources, problems, seconds, hits, misses, dict(cfg))


def _face_problems(path: str, rec: Record, crops: Any, detector: str) -> list[Problem]:
    if rec.face == "whole_image" and crops == "auto":
        return [Problem("no_face", path, f"{path}: no face found by {detector}; the whole image was used as the face "
                                         f"(right for face crops; otherwise replace the photo).", "info")]
    if rec.face == "none":
        return [Problem("no_face", path, f"{path}: no face found by {detector}; dropped. Use crops='auto' if it is a "
                                         f"face crop, or replace the photo.", "warning")]
    if rec.n_faces > 1:
        return [Problem("several_faces", path, f"{path}: {rec.n_faces} faces found; the largest was used. Crop the "
                                               f"photo to the intended person if that is wrong.", "info")]
    return []

