"""The live loop: detect -> track -> classify per track (on a worker) -> smooth -> draw.

Classification does not run per frame: a track is classified when it appears, again every
``reclassify_every`` frames, and when its face becomes clearly larger (``grow``) or sharper
(``sharper``) than when it was last classified. Jobs go to one worker thread, so the loop (and the
display) never waits for a model; results are folded into the track's
:class:`~faceforge.track.LabelSmoother` when they are ready. A track that loses its face keeps its
box (coasting) and its label for ``hold_s`` seconds.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from faceforge.errors import ParameterError
from faceforge.track import LabelSmoother, Track, Tracker
from faceforge.types import Faces


def sharpness(image: np.ndarray, xyxy: np.ndarray, size: int = 64) -> float:
    """Variance of the Laplacian of the face box (grey, resized to ``size``): higher is sharper."""
    import cv2

    h, w = image.shape[:2]
    x1, y1, x2, y2 = [int(round(v)) for v in xyxy]
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 - x1 < 4 or y2 - y1 < 4:
        return 0.0
    crop = cv2.resize(np.ascontiguousarray(image[y1:y2, x1:x2]), (size, size), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), cv2.CV_32F).var())


class LiveAnalyzer:
    """Tracks faces through frames and keeps a steady label per face for each model.

    Args:
        models: ``{name: model}``, each a :class:`~faceforge.types.FaceModel` (trained classifiers,
            galleries, built-in attributes).
        detector: detector name (``"live"`` by default: BlazeFace full-range).
        detect_every: run the detector on every n-th frame; the tracker carries boxes between.
        fps: frame rate of the source, for ``hold_s`` (default 30).
        hold_s: seconds a track keeps its box and label after its face is lost.
        reclassify_every: frames between two classifications of the same track.
        grow: reclassify when the face's size grew by this factor since its last classification.
        sharper: reclassify when the face's sharpness (:func:`sharpness`) grew by this factor
            (a face that was motion-blurred when first classified).
        workers: classification threads (0: classify inline, synchronously: for tests and offline
            processing where every frame must carry its labels).
        alpha, switch_margin: label smoothing (see :class:`~faceforge.track.LabelSmoother`).
        min_face: faces smaller than this (pixels) are tracked but not classified.
        detector_options: passed to the detector (e.g. ``{"tile": True}`` for BlazeFace on
            large frames with small faces).
        tile_every: with BlazeFace, every n-th detection round runs on tiles too (finds the small
            faces a single 192-px pass misses, at the cost of one slow frame in n); the tracker
            keeps small faces alive in between. 0: never.
    """

    def __init__(self, models: dict[str, Any], detector: str = "live", detect_every: int = 1, fps: float = 30.0,
                 hold_s: float = 0.5, reclassify_every: int = 15, grow: float = 1.3, sharper: float = 2.0,
                 workers: int = 1,
                 alpha: float = 0.3, switch_margin: float = 0.15, min_face: int = 20,
                 detector_options: dict[str, Any] | None = None, tile_every: int = 0) -> None:
        from faceforge.pipeline import FaceFinder

        if detect_every < 1 or reclassify_every < 1:
            raise ParameterError("detect_every and reclassify_every must be >= 1")
        self.models = dict(models)
        self.finder = FaceFinder(detector, detector_options=detector_options)
        self.detect_every = int(detect_every)
        self.reclassify_every = int(reclassify_every)
        self.grow = float(grow)
        self.sharper = float(sharper)
        self.min_face = int(min_face)
        self.alpha, self.switch_margin = alpha, switch_margin
        rounds = max(1, int(round(hold_s * fps / self.detect_every)))
        self.tile_every = int(tile_every)
        self.tiled = None
        if self.tile_every > 0:
            self.tiled = FaceFinder(detector, detector_options={**(detector_options or {}), "tile": True})
            rounds = max(rounds, self.tile_every + 2)  # small faces are only seen on tiled rounds
        self.tracker = Tracker(max_age=rounds)
        self._rounds = 0
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="faceforge-classify") if workers > 0 else None
        self._pending: dict[int, Future] = {}
        self.frames = 0
        self.classifications = 0
        self.latencies: list[float] = []  # seconds from a frame's arrival to its labels being applied

    # -- classification ------------------------------------------------------------------------
    @property
    def detector(self) -> Any:
        """The detector of the face finder."""
        return self.finder.detector

    def _classify(self, image: np.ndarray, faces: Faces) -> dict[str, Any]:
        from faceforge.pipeline import run_models

        out = run_models(image, faces, self.models, 3)
        return {name: preds[0] for name, preds in out.predictions.items()}

    def _classify_job(self, image: np.ndarray, faces: Faces, t_arrived: float) -> tuple[dict[str, Any], float]:
        """The worker's job: the predictions of one track's face, and when its frame arrived."""
        return self._classify(image, faces), t_arrived

    def _due(self, t: Track, frame: int, sharp: float) -> bool:
        last = t.data.get("classified_frame")
        if last is None:
            return True
        if frame - last >= self.reclassify_every or t.size >= self.grow * t.data.get("classified_size", 1e9):
            return True
        return sharp >= self.sharper * t.data.get("classified_sharpness", 1e18)

    def _apply(self, t: Track, preds: dict[str, Any], t_arrived: float) -> None:
        sm = t.data.setdefault("smoothers", {})
        for name, p in preds.items():
            s = sm.get(name)
            if s is None:
                s = sm[name] = LabelSmoother(self.alpha, self.switch_margin)
            t.data.setdefault("labels", {})[name] = s.update(p)
        self.classifications += 1
        self.latencies.append(time.perf_counter() - t_arrived)

    def _collect(self) -> None:
        by_id = {t.id: t for t in self.tracker.tracks}
        for tid, fut in list(self._pending.items()):
            if fut.done():
                del self._pending[tid]
                t = by_id.get(tid)
                if t is not None:
                    preds, t_arrived = fut.result()
                    self._apply(t, preds, t_arrived)

    # -- one frame -----------------------------------------------------------------------------
    def process(self, image: np.ndarray, frame: int | None = None) -> Faces:
        """Process one RGB frame.

        Returns:
            :class:`~faceforge.types.Faces` of every live track: ``track_id``, the track's box,
            ``data["visible"]`` (False: coasting on its predicted box, its face not detected in
            this frame) and each model's smoothed label in ``predictions`` (None until the track's
            first classification arrives).
        """
        t_arrived = time.perf_counter()
        frame = self.frames if frame is None else int(frame)
        self.frames += 1
        if frame % self.detect_every == 0:
            finder = self.finder
            if self.tiled is not None and self._rounds % self.tile_every == 0:
                finder = self.tiled
            self._rounds += 1
            tracks = self.tracker.update(finder.find(image), frame)
        else:
            tracks = self.tracker.predict(frame)
        self._collect()
        for t in tracks:
            if t.id in self._pending or not t.visible or t.size < self.min_face:
                continue
            sharp = sharpness(image, t.xyxy)
            if not self._due(t, frame, sharp):
                continue
            t.data["classified_frame"] = frame
            t.data["classified_size"] = t.size
            t.data["classified_sharpness"] = sharp
            faces = Faces(t.xyxy[None], np.array([t.score], np.float32), t.landmarks[None],
                          (image.shape[1], image.shape[0]), self.finder.detector_name)
            if self._pool is None:
                self._apply(t, self._classify(image, faces), t_arrived)
            else:
                # frames are not modified after capture; no copy needed
                self._pending[t.id] = self._pool.submit(self._classify_job, image, faces, t_arrived)
        shown = [t for t in tracks if t.confirmed or t.data.get("labels")]
        size = (image.shape[1], image.shape[0])
        if not shown:
            return Faces.empty(size, self.finder.detector_name).replace(track_id=np.zeros(0, np.int64),
                                                                         data={"visible": np.zeros(0, bool)})
        labels = [t.data.get("labels", {}) for t in shown]
        return Faces(np.stack([t.xyxy for t in shown]), np.array([t.score for t in shown], np.float32),
                     np.stack([t.landmarks for t in shown]), size, self.finder.detector_name,
                     data={"visible": np.array([t.visible for t in shown], bool)},
                     track_id=np.array([t.id for t in shown], np.int64),
                     predictions={name: [lab.get(name) for lab in labels] for name in self.models})

    def flush(self, timeout: float = 10.0) -> None:
        """Wait for pending classifications and apply them."""
        end = time.perf_counter() + timeout
        while self._pending and time.perf_counter() < end:
            time.sleep(0.005)
            self._collect()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "LiveAnalyzer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
