"""Real-time face analysis of webcams, streams and videos: capture thread, tracking, per-track
classification on a worker, smoothing, and sinks (video file, JSON lines, window, MJPEG).

Example:
    >>> from faceforge.live import run_live
    >>> from faceforge.attributes import load_attribute
    >>> stats = run_live("clip.mp4", {"emotion": load_attribute("emotion")},
    ...                  output="out.mp4", jsonl="out.jsonl")              # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from faceforge.live.pipeline import DEFAULT_MAX_COAST, DEFAULT_REACQUIRE_EVERY, LiveAnalyzer, face_records
from faceforge.sinks import MjpegServer, VideoSink, WindowSink, has_gui
from faceforge.live.source import CaptureThread, describe_source, open_frames
from faceforge.types import Faces


@dataclass
class LiveStats:
    """What a :func:`run_live` run did."""

    frames: int = 0
    dropped: int = 0
    seconds: float = 0.0
    classifications: int = 0
    tracks: int = 0
    label_flips: dict[str, int] = field(default_factory=dict)  # model -> label changes over all tracks
    latency_ms: float | None = None  # mean time from a frame's arrival to its labels
    cuts: int = 0  # scene cuts seen (every track ended there)
    splits: int = 0  # tracks split because their face became someone else's
    reacquired: int = 0  # lost tracks found again by the photo detector on their region
    coasting: int = 0  # face boxes shown while coasting (not detected in their frame)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "dropped": self.dropped, "seconds": round(self.seconds, 3),
                "fps": round(self.fps, 2), "classifications": self.classifications, "tracks": self.tracks,
                "label_flips": self.label_flips, "latency_ms": self.latency_ms, "cuts": self.cuts,
                "splits": self.splits, "reacquired": self.reacquired, "coasting": self.coasting}


def draw(image: np.ndarray, faces: Faces, fps: float | None = None) -> np.ndarray:
    """Boxes with track id and labels (coasting tracks dashed and grey), and the FPS in the corner."""
    import cv2

    from faceforge.sinks import annotate

    h, w = image.shape[:2]
    if len(faces):
        out = annotate(image, faces, [f.label_text() for f in faces.rows()], landmarks=False)
    else:
        out = image.copy()
    if fps is not None:
        s = max(0.5, max(h, w) / 1200)
        cv2.putText(out, f"{fps:.1f} FPS", (10, int(30 * s)), cv2.FONT_HERSHEY_SIMPLEX, s, (255, 255, 0),
                    max(1, int(2 * s)), cv2.LINE_AA)
    return out


def run_live(source: str | int | os.PathLike, models: dict[str, Any], *, detector: str = "live",
             detect_every: int = 1, output: str | os.PathLike | None = None,
             jsonl: str | os.PathLike | None = None, show: bool = False, mjpeg: int | None = None,
             max_frames: int | None = None, realtime: bool = False, drop: bool | None = None, workers: int = 1,
             hold_s: float = 0.5, reclassify_every: int = 15, on_frame: Callable[[int, Faces], Any] | None = None,
             fps: float | None = None, overlay: bool = True,
             detector_options: dict[str, Any] | None = None, tile_every: int = 0,
             **options: Any) -> LiveStats:
    """Run the live pipeline on ``source`` until it ends (or ``max_frames``, or ``q`` in the window).

    Args:
        source: webcam index, stream URL, video file, image folder or glob.
        models: ``{name: model}`` (e.g. ``{"people": load_classifier("people.ffm"),
            "emotion": load_attribute("emotion")}``).
        detector: ``"live"`` (BlazeFace full-range) or any detector name.
        detect_every: detect on every n-th frame (the tracker carries boxes in between).
        output: annotated video file; jsonl: one record per frame (track id, box, labels).
        show: an OpenCV window (needs a GUI build); mjpeg: serve an MJPEG stream on this port.
        max_frames: stop after this many frames. realtime: play files at their own speed.
        drop: keep only the newest frame (default: for webcams and streams).
        workers: classification threads (0: inline, every frame waits for its labels).
        hold_s, reclassify_every: see :class:`~faceforge.live.LiveAnalyzer`.
        on_frame: called with ``(frame_index, faces)`` after each frame.
        fps: the source's frame rate when OpenCV cannot tell (default 30).
        overlay: draw the FPS on output frames.
        detector_options: passed to the detector (e.g. ``{"tile": True}``).
        tile_every: every n-th detection also runs on tiles (small faces; see LiveAnalyzer).
        **options: more :class:`~faceforge.live.LiveAnalyzer` options: ``max_coast``,
            ``cut_threshold``, ``split``, ``vote``, ``reacquire_every``...

    Returns:
        :class:`LiveStats`.
    """
    from faceforge.sinks import JsonlWriter
    from faceforge.track import count_flips

    src_fps = fps or _source_fps(source) or 30.0
    protect = [str(source)] if describe_source(source)[0] in ("video", "images") else []
    sinks: list[Any] = []
    writer = None
    cap = CaptureThread(source, drop=drop, realtime=realtime)
    an = LiveAnalyzer(models, detector=detector, detect_every=detect_every, fps=src_fps, hold_s=hold_s,
                      reclassify_every=reclassify_every, workers=workers, detector_options=detector_options,
                      tile_every=tile_every, **options)
    stats = LiveStats()
    history: dict[int, dict[str, list[str | None]]] = {}
    window = None
    try:
        if output:
            sinks.append(VideoSink(output, src_fps, protect))
        if mjpeg is not None:
            sinks.append(MjpegServer(mjpeg))
        if show:
            window = WindowSink()
            sinks.append(window)
        if jsonl:
            writer = JsonlWriter(jsonl)
        t0 = time.perf_counter()
        ema = None
        last = t0
        for frame in cap:
            faces = an.process(frame.image, frame.index)
            now = time.perf_counter()
            inst = 1.0 / max(now - last, 1e-6)
            ema = inst if ema is None else 0.9 * ema + 0.1 * inst
            last = now
            stats.frames += 1
            stats.coasting += int(np.count_nonzero(faces.data.get("coasting", ())))
            track_ids = [] if faces.track_id is None else faces.track_id.tolist()  # process() sets them
            for tid, i in zip(track_ids, range(len(faces))):
                for name in models:
                    p = faces.predictions[name][i]
                    history.setdefault(tid, {}).setdefault(name, []).append(None if p is None else p.label)
            if writer:
                writer.write({"frame": frame.index, "time": round(frame.timestamp, 3),
                              "faces": face_records(faces, 1)})
            if sinks:
                img = draw(frame.image, faces, ema if overlay else None)
                for s in sinks:
                    s.write(img)
            if on_frame is not None:
                on_frame(frame.index, faces)
            if (max_frames is not None and stats.frames >= max_frames) or (window and window.stop_requested):
                break
        an.flush()
        stats.seconds = time.perf_counter() - t0
    except BaseException:
        if writer:
            writer.close(commit=False)
            writer = None
        raise
    finally:
        cap.stop()
        an.close()
        for s in sinks:
            s.close()
        if writer:
            writer.close()
    stats.dropped = cap.dropped
    stats.classifications = an.classifications
    stats.cuts, stats.splits, stats.reacquired = len(an.cut_frames), an.splits, an.reacquired
    stats.tracks = len(history)
    stats.label_flips = {name: sum(count_flips(h.get(name, [])) for h in history.values()) for name in models}
    if an.latencies:
        stats.latency_ms = round(1000 * float(np.mean(an.latencies)), 2)
    return stats


def _source_fps(source: Any) -> float | None:
    kind, _ = describe_source(source)
    if kind != "video":
        return None
    import cv2

    cap = cv2.VideoCapture(str(source))
    try:
        f = cap.get(cv2.CAP_PROP_FPS)
        return float(f) if f and f > 0 else None
    finally:
        cap.release()


__all__ = ["DEFAULT_MAX_COAST", "DEFAULT_REACQUIRE_EVERY", "CaptureThread", "LiveAnalyzer", "LiveStats",
           "MjpegServer", "VideoSink", "WindowSink", "describe_source", "draw", "face_records", "has_gui",
           "open_frames", "run_live"]
