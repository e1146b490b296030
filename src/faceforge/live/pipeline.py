"""The live loop: cut check -> detect -> track -> classify per track (on a worker) -> vote / smooth -> draw.

Classification does not run per frame: a track is classified when it appears, again every
``reclassify_every`` frames, and when its face becomes clearly larger (``grow``) or sharper
(``sharper``) than when it was last classified. Jobs go to one worker thread, so the loop (and the
display) never waits for a model; results are folded into the track's label when they are
ready: a quality-weighted vote (:class:`~faceforge.track.LabelVote`) for what a person *is*
(galleries and classifiers on an identity embedder), a smoothed average
(:class:`~faceforge.track.LabelSmoother`) for attributes (gender, emotion) and numbers (age).

What makes a track trustworthy (issue 17):

* a scene cut (:class:`~faceforge.track.CutDetector`) ends every track; the new scene starts new ids;
* a track whose identity embedding (where a model computes one) moves beyond the embedder's
  calibrated same-person threshold from every face in its history is split: a new id;
* a track that loses its face keeps its box (coasting, marked ``coasting`` in the record) and its
  label for at most ``max_coast`` seconds on screen (its id survives ``hold_s`` for re-association);
* a lost track's region is searched with the photo detector every ``reacquire_every`` frames
  (the live detector misses profiles that the photo detector finds).
"""

from __future__ import annotations

import time
from collections.abc import Collection
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from faceforge.errors import ParameterError
from faceforge.track import LabelSmoother, Track, Tracker
from faceforge.track.cuts import DEFAULT_CUT_THRESHOLD, CutDetector
from faceforge.live.identity import identity_embedders
from faceforge.track.identity import AppearanceHistory, LabelVote, face_quality
from faceforge.types import Faces, iou_matrix

#: seconds a lost face's box stays on screen (coasting). Measured on street_1080p (1080p with every
#: 15th detection tiled, and 640x480), a coasting box counted as on its face when the photo detector
#: finds a face there: 90% / 89% one frame after the last detection, and of all coasting boxes shown
#: 81% / 77% within 3 frames, 72% / 64% within 5 (0.2 s at 25 FPS), 50% / 42% within 12 (0.5 s,
#: the old hold time); boxes 4-5 frames old are on their face about half the time, older ones
#: mostly not. Hence 0.2 s.
DEFAULT_MAX_COAST = 0.2

#: frames between two photo-detector searches of one lost track's region (0: never)
DEFAULT_REACQUIRE_EVERY = 3

#: re-acquisition searches may take at most this share of the loop's own time (a search costs a few
#: milliseconds, a 640x480 frame about 7: unbounded, searching every lost track every 3rd frame
#: cost 40% of the frame rate); None: no time budget (every due search runs; for tests)
DEFAULT_REACQUIRE_BUDGET = 0.1


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


def _voting(models: dict[str, Any], vote: str | bool | Collection[str], identity: Collection[str]) -> set[str]:
    if vote == "auto":  # identity models: classifiers and galleries on an identity embedding
        return {n for n, m in models.items()
                if getattr(m, "task", None) == "classification" and getattr(m, "embedding_key", None) in identity}
    if vote is True:
        return {n for n, m in models.items() if getattr(m, "task", None) == "classification"}
    if vote is False or vote is None:
        return set()
    if isinstance(vote, str):
        raise ParameterError(f"vote must be 'auto', True, False or a collection of model names, got {vote!r}")
    unknown = set(vote) - set(models)
    if unknown:
        raise ParameterError(f"vote names models that are not given: {sorted(unknown)}; the models are "
                             f"{sorted(models)}.")
    return set(vote)


class LiveAnalyzer:
    """Tracks faces through frames and keeps a steady label per face for each model.

    Args:
        models: ``{name: model}``, each a :class:`~faceforge.types.FaceModel` (trained classifiers,
            galleries, built-in attributes).
        detector: detector name (``"live"`` by default: BlazeFace full-range).
        detect_every: run the detector on every n-th frame; the tracker carries boxes between.
        fps: frame rate of the source, for ``hold_s`` and ``max_coast`` (default 30).
        hold_s: seconds a lost track is kept (its id and label survive a short occlusion).
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
        cut_threshold: scene-cut threshold (:class:`~faceforge.track.CutDetector`); at a cut every
            track ends. None: no cut detection (the old behaviour).
        max_coast: seconds a track not re-detected stays in the output (coasting); after that it
            is hidden (kept, unseen, until ``hold_s``, so its id survives). None: shown until ``hold_s``.
        split: split a track (new id) when two faces in a row have identity embeddings beyond the
            embedder's same-person threshold from every face in its history (only models on an
            identity embedder compute one: galleries, classifiers on dlib-resnet).
        split_min_face: faces smaller than this (pixels) are not used for the identity check.
        vote: which models' labels are a quality-weighted vote over the track's classifications
            (:class:`~faceforge.track.LabelVote`) instead of a smoothed average: ``"auto"``
            (who it is: galleries and classifiers on an identity embedder such as dlib-resnet),
            True (every classification model), False, or a collection of names. Measured on
            street_1080p (60 frames, gender on agegender): the smoother changed 1 track's label,
            the vote 5 (a first guess on a small face replaced by a better face's), so attributes
            keep the smoother.
        reacquire_every: a lost track's region is searched with ``reacquire_detector`` at most
            once per this many frames, while the track is still shown (0: never). One search per
            frame at most, the track searched longest ago first.
        reacquire_detector: the detector for re-acquisition (``"photo"``: yunet, which finds
            profiles the live detector misses).
        reacquire_budget: searches run only while their total time stays below this share of
            the rest of the loop's time (bounds the FPS cost); None: no budget.

    Raises:
        ParameterError: a bad option (the message names it and the range expected).
    """

    def __init__(self, models: dict[str, Any], detector: str = "live", detect_every: int = 1, fps: float = 30.0,
                 hold_s: float = 0.5, reclassify_every: int = 15, grow: float = 1.3, sharper: float = 2.0,
                 workers: int = 1,
                 alpha: float = 0.3, switch_margin: float = 0.15, min_face: int = 20,
                 detector_options: dict[str, Any] | None = None, tile_every: int = 0, *,
                 cut_threshold: float | None = DEFAULT_CUT_THRESHOLD, max_coast: float | None = DEFAULT_MAX_COAST,
                 split: bool = True, split_min_face: int = 40, vote: str | bool | Collection[str] = "auto",
                 reacquire_every: int = DEFAULT_REACQUIRE_EVERY, reacquire_detector: str = "photo",
                 reacquire_budget: float | None = DEFAULT_REACQUIRE_BUDGET) -> None:
        from faceforge.pipeline import FaceFinder

        if detect_every < 1 or reclassify_every < 1:
            raise ParameterError("detect_every and reclassify_every must be >= 1")
        if max_coast is not None and not float(max_coast) >= 0:
            raise ParameterError(f"max_coast is a number of seconds >= 0 (or None: until hold_s), got {max_coast!r}")
        if int(reacquire_every) < 0:
            raise ParameterError(f"reacquire_every is a number of frames >= 0 (0: off), got {reacquire_every!r}")
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
        self.cuts = None if cut_threshold is None else CutDetector(cut_threshold)
        self.coast_frames = None if max_coast is None else int(round(float(max_coast) * fps))
        identity = identity_embedders(self.models)
        self.vote = _voting(self.models, vote, identity)
        self.identity = identity if split else {}
        self.split_min_face = int(split_min_face)
        self.reacquire_every = int(reacquire_every)
        self._reacquirer = None
        if self.reacquire_every > 0:
            opts = {"landmarks": "raw"} if reacquire_detector in ("photo", "yunet") else None
            self._reacquirer = FaceFinder(reacquire_detector, detector_options=opts)
        self.reacquire_budget = None if reacquire_budget is None else float(reacquire_budget)
        self._search_s = 0.0  # time spent in re-acquisition searches
        self._loop_s = 0.0  # time spent in process() otherwise
        self._rounds = 0
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="faceforge-classify") if workers > 0 else None
        self._pending: dict[int, Future] = {}
        self.frames = 0
        self.classifications = 0
        self.latencies: list[float] = []  # seconds from a frame's arrival to its labels being applied
        self.cut_frames: list[int] = []  # frames that started a new scene
        self.splits = 0  # tracks split because their face became someone else's
        self.reacquired = 0  # lost tracks found again by the re-acquisition detector
        self.searches = 0  # re-acquisition searches run

    # -- classification ------------------------------------------------------------------------
    @property
    def detector(self) -> Any:
        """The detector of the face finder."""
        return self.finder.detector

    def _classify(self, image: np.ndarray, faces: Faces) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        from faceforge.pipeline import run_models

        out = run_models(image, faces, self.models, 3)
        emb = {k: out.embeddings[k][0] for k in self.identity if k in out.embeddings}
        return {name: preds[0] for name, preds in out.predictions.items()}, emb

    def _classify_job(self, image: np.ndarray, faces: Faces, t_arrived: float,
                      weight: float) -> tuple[tuple[dict[str, Any], dict[str, np.ndarray]], float, float]:
        """The worker's job: the predictions (and identity embeddings) of one track's face."""
        return self._classify(image, faces), t_arrived, weight

    def _due(self, t: Track, frame: int, sharp: float) -> bool:
        last = t.data.get("classified_frame")
        if last is None or t.data.pop("recheck", False):
            return True
        if frame - last >= self.reclassify_every or t.size >= self.grow * t.data.get("classified_size", 1e9):
            return True
        return sharp >= self.sharper * t.data.get("classified_sharpness", 1e18)

    def _gate(self, t: Track, emb: dict[str, np.ndarray], size: float) -> Track:
        """Split ``t`` when two faces in a row are someone else; add the face to the (new) track's history.

        A first face beyond the threshold only makes the track suspect (and due for another
        classification at once); one blurred or turned face does not split a track.
        """
        if not emb or size < self.split_min_face:
            return t
        hist = t.data.setdefault("appearance", {})
        if any(k in hist and hist[k].is_other(e) for k, e in emb.items()):
            if not t.data.get("suspect"):
                t.data["suspect"] = t.data["recheck"] = True
                return t
            old = t
            t = self.tracker.split(t)
            self.splits += 1
            t.data.update({k: old.data[k] for k in ("classified_frame", "classified_size", "classified_sharpness")
                           if k in old.data})
            hist = t.data.setdefault("appearance", {})
        t.data.pop("suspect", None)
        for k, e in emb.items():
            hist.setdefault(k, AppearanceHistory(self.identity[k])).add(e)
        return t

    def _apply(self, t: Track, result: tuple[dict[str, Any], dict[str, np.ndarray]], t_arrived: float,
               weight: float, size: float) -> Track:
        preds, emb = result
        t = self._gate(t, emb, size)
        sm = t.data.setdefault("smoothers", {})
        votes = t.data.setdefault("votes", {})
        for name, p in preds.items():
            if name in self.vote:
                v = sm.get(name)
                if v is None:
                    v = sm[name] = LabelVote()
                t.data.setdefault("labels", {})[name] = v.update(p, weight)
                votes[name] = v.votes
                continue
            s = sm.get(name)
            if s is None:
                s = sm[name] = LabelSmoother(self.alpha, self.switch_margin)
            t.data.setdefault("labels", {})[name] = s.update(p)
        self.classifications += 1
        self.latencies.append(time.perf_counter() - t_arrived)
        return t

    def _collect(self) -> None:
        by_id = {t.id: t for t in self.tracker.tracks}
        for tid, fut in list(self._pending.items()):
            if fut.done():
                del self._pending[tid]
                t = by_id.get(tid)
                if t is not None:
                    result, t_arrived, weight = fut.result()
                    self._apply(t, result, t_arrived, weight, t.data.get("classified_size", t.size))

    # -- re-acquisition ------------------------------------------------------------------------
    def _reacquire(self, image: np.ndarray, frame: int) -> None:
        """Search the region of each lost, confirmed track with the re-acquisition detector."""
        if self._reacquirer is None:
            return
        if self.reacquire_budget is not None and self._search_s > self.reacquire_budget * self._loop_s:
            return
        due = [t for t in self.tracker.tracks if t.misses > 0 and t.confirmed and self._shown(t, frame)
               and frame - t.data.get("searched_frame", -10**9) >= self.reacquire_every]
        if not due:
            return
        t0 = time.perf_counter()
        h, w = image.shape[:2]
        live = [t for t in self.tracker.tracks if t.misses == 0]
        for t in sorted(due, key=lambda t: t.data.get("searched_frame", -10**9))[:1]:
            t.data["searched_frame"] = frame
            x1, y1, x2, y2 = t.xyxy
            cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, 1.0 * max(x2 - x1, y2 - y1, 8.0)
            ox, oy = int(max(0, cx - side)), int(max(0, cy - side))
            ex, ey = int(min(w, cx + side)), int(min(h, cy + side))
            if ex - ox < 8 or ey - oy < 8:
                continue
            self.searches += 1
            found = self._reacquirer.find(image[oy:ey, ox:ex])
            if not len(found):
                continue
            shift = np.array([ox, oy, ox, oy], np.float32)
            found = found.replace(xyxy=found.xyxy + shift, landmarks=found.landmarks + shift[:2],
                                  image_size=(w, h))
            iou = iou_matrix(t.xyxy[None], found.xyxy)[0]
            if live:  # never take a face another track holds
                taken = iou_matrix(found.xyxy, np.stack([o.xyxy for o in live])).max(1) >= 0.3
                iou = np.where(taken, 0.0, iou)
            j = int(np.argmax(iou))
            if iou[j] >= 0.2:
                self.tracker.reacquire(t, found, j, frame)
                t.data["reacquired"] = t.data.get("reacquired", 0) + 1
                self.reacquired += 1
                live.append(t)
        self._search_s += time.perf_counter() - t0

    # -- one frame -----------------------------------------------------------------------------
    def _shown(self, t: Track, frame: int) -> bool:
        if not (t.confirmed or t.data.get("labels")):
            return False
        return t.visible or self.coast_frames is None or frame - t.last_frame <= self.coast_frames

    def process(self, image: np.ndarray, frame: int | None = None) -> Faces:
        """Process one RGB frame.

        Returns:
            :class:`~faceforge.types.Faces` of every track shown: ``track_id``, the track's box,
            ``data["visible"]`` (False: coasting on its predicted box, its face not detected in
            this frame), ``data["coasting"]`` (its opposite), ``data["votes.NAME"]`` (the
            classifications counted in model NAME's vote, for voting models) and each model's
            label in ``predictions`` (None until the track's first classification arrives; for
            voting models ``score`` is the vote's confidence).
        """
        t_arrived = t_loop = time.perf_counter()
        frame = self.frames if frame is None else int(frame)
        self.frames += 1
        cut = self.cuts is not None and self.cuts.update(image)
        if cut:
            self.tracker.reset()  # every track ends; pending results find no track and are dropped
            self._pending.clear()
            self.cut_frames.append(frame)
        if cut or frame % self.detect_every == 0:
            finder = self.finder
            if self.tiled is not None and self._rounds % self.tile_every == 0:
                finder = self.tiled
            self._rounds += 1
            self.tracker.update(finder.find(image), frame)
            if self._reacquirer is not None:
                s0 = self._search_s
                self._reacquire(image, frame)
                t_loop += self._search_s - s0  # the loop's own time leaves the searches out
        else:
            self.tracker.predict(frame)
        self._collect()
        for t in list(self.tracker.tracks):
            if t.id in self._pending or not t.visible or t.size < self.min_face:
                continue
            sharp = sharpness(image, t.xyxy)
            if not self._due(t, frame, sharp):
                continue
            t.data["classified_frame"] = frame
            t.data["classified_size"] = t.size
            t.data["classified_sharpness"] = sharp
            weight = face_quality(t.size, sharp, t.score)
            faces = Faces(t.xyxy[None], np.array([t.score], np.float32), t.landmarks[None],
                          (image.shape[1], image.shape[0]), self.finder.detector_name)
            if self._pool is None:
                self._apply(t, self._classify(image, faces), t_arrived, weight, t.size)
            else:
                # frames are not modified after capture; no copy needed
                self._pending[t.id] = self._pool.submit(self._classify_job, image, faces, t_arrived, weight)
        out = self._record(image, frame)
        self._loop_s += time.perf_counter() - t_loop
        return out

    def _record(self, image: np.ndarray, frame: int) -> Faces:
        shown = [t for t in self.tracker.tracks if self._shown(t, frame)]
        size = (image.shape[1], image.shape[0])
        voting = [n for n in self.models if n in self.vote]
        if not shown:
            return Faces.empty(size, self.finder.detector_name).replace(
                track_id=np.zeros(0, np.int64),
                data={"visible": np.zeros(0, bool), "coasting": np.zeros(0, bool),
                      **{f"votes.{n}": np.zeros(0, np.int64) for n in voting}})
        labels = [t.data.get("labels", {}) for t in shown]
        visible = np.array([t.visible for t in shown], bool)
        data = {"visible": visible, "coasting": ~visible,
                **{f"votes.{n}": np.array([t.data.get("votes", {}).get(n, 0) for t in shown], np.int64)
                   for n in voting}}
        return Faces(np.stack([t.xyxy for t in shown]), np.array([t.score for t in shown], np.float32),
                     np.stack([t.landmarks for t in shown]), size, self.finder.detector_name, data=data,
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


def face_records(faces: Faces, ndigits: int = 1) -> list[dict[str, Any]]:
    """The JSON records of a :meth:`LiveAnalyzer.process` result: :meth:`Faces.to_dicts` with, for
    each voting model, ``votes`` (classifications counted) in its prediction; ``score`` is then
    the vote's confidence (the winner's share of the quality-weighted votes)."""
    out = faces.to_dicts(ndigits)
    for k, col in faces.data.items():
        if not k.startswith("votes."):
            continue
        name = k[len("votes."):]
        for d, n in zip(out, col):
            if isinstance(d.get(name), dict):
                d[name]["votes"] = int(n)
                d[name]["confidence"] = d[name]["score"]
    return out
