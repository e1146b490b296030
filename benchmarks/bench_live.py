"""Live pipeline throughput, label stability and latency vs the tutorials' per-frame approach.

On ../shared/data/video/street_1080p.mp4 (1920x1080, 105 frames) and a 640x480 copy of it
(written to a temporary MJPEG AVI), with the built-in gender model (a model made by
``faceforge train``, see scripts/train_attributes.py):

* faceforge: ``run_live`` (capture thread, BlazeFace full-range, tracker, classification of each
  track on a worker when new / every 15 frames / when grown, label smoothing), no display;
* tutorial: Haar cascade (1.3 / 5) on every frame and the same classifier on every face of every
  frame, in one thread, no tracking (labels matched to the previous frame by IoU to count flips).

Reports processed frames per second end to end (decode included), faces shown per frame as a
share of the faces yunet (the photo detector) finds per frame, label flips per track per second,
and the mean latency from a frame's arrival to its labels.

    python benchmarks/bench_live.py [--frames N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def make_640(src: Path, dst: Path) -> Path:
    import cv2

    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    vw = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    while True:
        ok, f = cap.read()
        if not ok:
            break
        vw.write(cv2.resize(f, (640, 480), interpolation=cv2.INTER_AREA))
    vw.release()
    cap.release()
    return dst


def faceforge_run(video: Path, models: dict[str, Any], detect_every: int, tile_every: int = 0,
                  **options: Any) -> dict[str, Any]:
    from faceforge.live import run_live

    per_track: dict[int, list[str | None]] = {}
    shown: list[int] = []

    def on_frame(i: int, faces: Any) -> None:
        shown.append(len(faces))
        for f in faces.rows():
            p = f.predictions.get("gender")
            per_track.setdefault(f.track_id, []).append(p.label if p else None)

    stats = run_live(video, models, detect_every=detect_every, workers=1, on_frame=on_frame,
                     detector_options=options or None, tile_every=tile_every)
    fps_src = 25.0
    return {"fps": stats.fps, "frames": stats.frames, "faces_per_frame": float(np.mean(shown)),
            "tracks": stats.tracks, "classifications": stats.classifications,
            "latency_ms": stats.latency_ms, **_flip_rate(per_track, fps_src)}


def _flip_rate(per_track: dict[int, list[str | None]], fps: float) -> dict[str, Any]:
    from faceforge.track import count_flips

    flips = sum(count_flips(v) for v in per_track.values())
    seconds = sum(len([x for x in v if x is not None]) for v in per_track.values()) / fps
    return {"label_flips": flips, "track_seconds": round(seconds, 2),
            "flips_per_track_second": flips / seconds if seconds else 0.0}


def faces_found(video: Path, every: int = 5) -> dict[str, float]:
    """Faces per frame found by each detector on every n-th frame (yunet: the photo detector, the reference)."""
    from faceforge.detectors import get_detector
    from faceforge.sources.media import iter_video

    dets = {"blazeface.full": get_detector("blazeface.full"),
            "blazeface.full tiled": get_detector("blazeface.full", tile=True),
            "haar": get_detector("haar"), "yunet": get_detector("yunet")}
    counts = {k: 0 for k in dets}
    n = 0
    for frame in iter_video(str(video), every=every):
        n += 1
        for k, d in dets.items():
            counts[k] += len(d(frame.image))
    return {k: counts[k] / max(1, n) for k in dets}


def tutorial_run(video: Path, model: Any) -> dict[str, Any]:
    from faceforge.detectors import get_detector
    from faceforge.sources.media import iter_video
    from faceforge.types import iou_matrix

    det = get_detector("haar")
    prev_boxes = np.zeros((0, 4), np.float32)
    prev_ids: list[int] = []
    next_id = 0
    per_track: dict[int, list[str | None]] = {}
    lat: list[float] = []
    n = 0
    t0 = time.perf_counter()
    for frame in iter_video(str(video)):
        ta = time.perf_counter()
        faces = det(frame.image)
        preds = model.predict_faces(frame.image, faces) if len(faces) else []
        lat.append(time.perf_counter() - ta)
        ids = []
        iou = iou_matrix(faces.xyxy, prev_boxes) if len(faces) and len(prev_boxes) else np.zeros((len(faces), 0))
        for i in range(len(faces)):
            j = int(np.argmax(iou[i])) if iou.shape[1] else -1
            if j >= 0 and iou[i, j] >= 0.3:
                ids.append(prev_ids[j])
            else:
                ids.append(next_id)
                next_id += 1
            per_track.setdefault(ids[-1], []).append(preds[i].label)
        prev_boxes, prev_ids = faces.xyxy, ids
        n += 1
    secs = time.perf_counter() - t0
    return {"fps": n / secs, "frames": n, "faces_per_frame": sum(len(v) for v in per_track.values()) / max(1, n),
            "tracks": len(per_track), "classifications": sum(len(v) for v in per_track.values()),
            "latency_ms": 1000 * float(np.mean(lat)), **_flip_rate(per_track, 25.0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=C.DATA)
    args, info = C.start(ap, "Live: faceforge run_live vs tutorial per-frame Haar + classify")
    from faceforge.attributes import load_attribute

    src = args.data / "video" / "street_1080p.mp4"
    gender = load_attribute("gender")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        small = make_640(src, Path(tmp) / "street_640x480.avi")
        for name, video in (("640x480", small), ("1080p", src)):
            found = faces_found(video)
            print(name, "faces per frame:", {k: round(v, 2) for k, v in found.items()}, flush=True)
            for method, fn in (("faceforge (detect every frame)", lambda v: faceforge_run(v, {"gender": gender}, 1)),
                               ("faceforge (tiled detection every 2nd frame)",
                                lambda v: faceforge_run(v, {"gender": gender}, 2, tile=True)),
                               ("faceforge (every 15th detection tiled)",
                                lambda v: faceforge_run(v, {"gender": gender}, 1, tile_every=15)),
                               ("faceforge (detect every 2nd frame)",
                                lambda v: faceforge_run(v, {"gender": gender}, 2)),
                               ("tutorial (Haar + classify every face, every frame)",
                                lambda v: tutorial_run(v, gender))):
                fn(video)  # warm-up: models loaded, caches filled
                r = {"video": name, "method": method, **fn(video)}
                r["faces_vs_yunet"] = r["faces_per_frame"] / max(found["yunet"], 1e-9)
                print(r, flush=True)
                rows.append(r)
    print(C.md_table(["video", "method", "FPS", "faces shown vs yunet", "tracks", "classifications",
                      "flips / track-second", "latency ms"],
                     [[r["video"], r["method"], f"{r['fps']:.1f}", f"{r['faces_vs_yunet']:.2f}", r["tracks"],
                       r["classifications"],
                       f"{r['flips_per_track_second']:.3f}", f"{r['latency_ms']:.1f}" if r["latency_ms"] else ""]
                      for r in rows]))
    C.write_json("live", {**info, "results": rows}, args.out)


if __name__ == "__main__":
    main()
