"""Live video you can trust (issue 17): cuts, identity switches, coasting, faces shown, FPS; new vs old.

"new" is ``LiveAnalyzer`` with its defaults (scene cuts end tracks, identity vote and appearance
split, coasting bounded to ``max_coast``, photo-detector re-acquisition of lost tracks); "old" is
the same code with every new part turned off (``cut_threshold=None, max_coast=None, split=False,
vote=False, reacquire_every=0``: the pre-issue-17 behaviour), measured side by side in one run.

Footage (from ../shared/data):

* street: ``video/street_1080p.mp4`` (1920x1080, 105 frames, people walking) and a 640x480 copy;
* tv: ``photos/tv_group_shots`` as a slideshow at 820x460 (each shot held ``--hold`` frames with a
  slow pan: tv_5frames-style footage with a cut at every change) and ``video/tv_5frames.mp4``;
* joined: the 640x480 street frames, then the tv slideshow, then the street frames reversed.

Measures per footage and variant: tracks across cuts (track ids seen in two segments), identity
switches per track-minute (label changes of a track's ``identity``, a gallery of the 8
``identity/tv_characters`` people) and the wrong-name rate (on every 3rd frame, shown names that
the gallery, asked about that face in that frame alone, gives to another person), coasting
frames per track and the share of coasting boxes on a face, faces shown vs the photo detector
(recall: photo-detector faces covered by a shown box, IoU >= 0.3, per frame), and FPS end to end
(``run_live`` on a video file, decode included, the built-in gender model on a worker) at
640x480 and 1080p (every 15th detection tiled).

    python benchmarks/bench_live_trust.py [--frames N] [--repeats R]

Prints one JSON line and writes benchmarks/results/live_trust.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

OLD = {"cut_threshold": None, "max_coast": None, "split": False, "vote": False, "reacquire_every": 0}
NEW: dict[str, Any] = {}
FPS = 25.0


def read_video(path: Path, frames: int | None = None, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    import cv2

    cap, out = cv2.VideoCapture(str(path)), []
    while frames is None or len(out) < frames:
        ok, f = cap.read()
        if not ok:
            break
        f = np.ascontiguousarray(f[:, :, ::-1])
        out.append(cv2.resize(f, size, interpolation=cv2.INTER_AREA) if size else f)
    cap.release()
    return out


def slideshow(paths: list[Path], hold: int, size: tuple[int, int]) -> list[list[np.ndarray]]:
    """Each photo cropped to fill ``size``, held ``hold`` frames with a slow pan: one segment per photo."""
    import cv2

    w, h = size
    segs = []
    for p in paths:
        img = cv2.imread(str(p))[:, :, ::-1]
        s = max(w / img.shape[1], h / img.shape[0]) * 1.1
        big = cv2.resize(img, (int(np.ceil(img.shape[1] * s)), int(np.ceil(img.shape[0] * s))),
                         interpolation=cv2.INTER_AREA)
        dx = big.shape[1] - w
        segs.append([np.ascontiguousarray(big[:h, int(dx * k / max(1, hold - 1) * 0.5):][:, :w])
                     for k in range(hold)])
    return segs


def write_avi(frames: list[np.ndarray], path: Path) -> Path:
    import cv2

    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (w, h))
    for f in frames:
        vw.write(np.ascontiguousarray(f[:, :, ::-1]))
    vw.release()
    return path


def trust_run(segments: list[list[np.ndarray]], models: dict[str, Any], options: dict[str, Any],
              ref: list[np.ndarray], tile_every: int = 0) -> dict[str, Any]:
    """Tracks across segments, identity switches, coasting, recall vs the photo detector."""
    from faceforge.live import LiveAnalyzer
    from faceforge.track import count_flips
    from faceforge.types import iou_matrix

    an = LiveAnalyzer(models, workers=0, fps=FPS, tile_every=tile_every, **options)
    seg_ids: list[set[int]] = []
    labels: dict[int, list[str | None]] = {}
    coasting: dict[int, int] = {}
    shown: dict[int, int] = {}
    on_face: list[bool] = []
    hit = hit_vis = total = 0
    named = wrong = 0
    gallery = models.get("identity")
    i = 0
    for seg in segments:
        ids: set[int] = set()
        for f in seg:
            faces = an.process(f, i)
            r = ref[i]
            i += 1
            for j, tid in enumerate(faces.track_id.tolist()):
                ids.add(tid)
                shown[tid] = shown.get(tid, 0) + 1
                p = faces.predictions.get("identity", [None] * len(faces))[j] if "identity" in models else None
                labels.setdefault(tid, []).append(None if p is None else p.label)
                if faces.data["coasting"][j]:
                    coasting[tid] = coasting.get(tid, 0) + 1
                    on_face.append(bool(len(r)) and float(iou_matrix(faces.xyxy[j:j + 1], r).max()) >= 0.3)
            if gallery is not None and i % 3 == 1 and len(faces):  # the shown name vs this frame's own answer
                shown_p = faces.predictions["identity"]
                idx = [j for j, p in enumerate(shown_p) if p is not None and p.label != "unknown"]
                if idx:
                    now = gallery.predict_faces(f, faces[np.array(idx)])
                    named += len(idx)
                    wrong += sum(1 for j, q in zip(idx, now) if q.label not in ("unknown", shown_p[j].label))
            total += len(r)
            if len(r) and len(faces):
                hit += int((iou_matrix(r, faces.xyxy).max(1) >= 0.3).sum())
                vis = faces.xyxy[faces.data["visible"]]
                hit_vis += int((iou_matrix(r, vis).max(1) >= 0.3).sum()) if len(vis) else 0
        seg_ids.append(ids)
    an.close()
    across = {t for k, a in enumerate(seg_ids) for b in seg_ids[k + 1:] for t in a & b}
    minutes = sum(shown.values()) / FPS / 60
    switches = sum(count_flips(v) for v in labels.values())
    return {"frames": i, "segments": len(segments), "tracks": len(shown), "tracks_across_cuts": len(across),
            "cuts_found": len(an.cut_frames), "splits": an.splits, "reacquired": an.reacquired,
            "identity_switches": switches if "identity" in models else None,
            "named_faces_checked": named, "wrong_name_rate": round(wrong / named, 3) if named else None,
            "switches_per_track_minute": round(switches / minutes, 3) if minutes and "identity" in models else None,
            "coasting_frames_per_track": round(sum(coasting.values()) / max(1, len(shown)), 2),
            "max_coasting_frames": max(coasting.values(), default=0),
            "coasting_on_face": round(float(np.mean(on_face)), 3) if on_face else None,
            "recall_vs_photo": round(hit / max(1, total), 3),
            "recall_visible_vs_photo": round(hit_vis / max(1, total), 3),
            "shown_per_photo_face": round(sum(shown.values()) / max(1, total), 3)}


def fps_run(video: Path, model: Any, options: dict[str, Any], tile_every: int) -> float:
    from faceforge.live import run_live

    return run_live(video, {"gender": model}, workers=1, tile_every=tile_every, **options).fps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=C.DATA)
    ap.add_argument("--frames", type=int, default=None, help="street frames used (default: all 105)")
    ap.add_argument("--hold", type=int, default=20, help="frames per slideshow shot")
    ap.add_argument("--repeats", type=int, default=3, help="FPS runs per variant (best kept), old/new alternating")
    args, info = C.start(ap, "Live you can trust: cuts, identity switches, coasting, faces shown, FPS (new vs old)")
    from faceforge.attributes import load_attribute
    from faceforge.gallery import Gallery
    from faceforge.pipeline import FaceFinder
    from faceforge.track import CutDetector

    d = args.data
    street = read_video(d / "video" / "street_1080p.mp4", args.frames)
    s640 = [np.ascontiguousarray(f) for f in read_video(d / "video" / "street_1080p.mp4", args.frames, (640, 480))]
    tv_real = read_video(d / "video" / "tv_5frames.mp4")
    shots = sorted((d / "photos" / "tv_group_shots").glob("*.jpg"))
    tv = slideshow(shots, args.hold, (820, 460))
    tv640 = slideshow(shots, args.hold, (640, 480))
    footage = {"street 1080p": ([street], 15), "street 640x480": ([s640], 0), "tv slideshow": (tv, 0),
               "joined (street, tv slideshow, street reversed)": ([s640, *tv640, s640[::-1]], 0)}

    # false cuts on the real clips (every consecutive pair is a non-cut)
    false_cuts = {}
    for name, frames in (("street_1080p", street), ("tv_5frames", tv_real)):
        det = CutDetector()
        dist = []
        for f in frames:
            det.update(f)
            dist.append(det.distance)
        false_cuts[name] = {"pairs": len(frames) - 1, "false_cuts": det.cuts, "max_distance": round(max(dist), 4)}
    print("false cuts on real clips:", false_cuts, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        gallery = Gallery(Path(tmp) / "tv.db", "tv")
        for person in sorted((d / "identity" / "tv_characters").iterdir()):
            gallery.enrol(person.name, sorted(person.glob("*.png")))
        finder = FaceFinder("photo")
        rows = []
        for name, (segs, tile) in footage.items():
            flat = [f for s in segs for f in s]
            ref = [finder.find(f).xyxy for f in flat]
            for variant, opts in (("old", OLD), ("new", NEW)):
                t0 = time.perf_counter()
                r = {"footage": name, "variant": variant,
                     **trust_run(segs, {"identity": gallery}, opts, ref, tile)}
                r["seconds"] = round(time.perf_counter() - t0, 1)
                print(r, flush=True)
                rows.append(r)

        gender = load_attribute("gender")
        fps_rows = []
        videos = {"640x480": (write_avi(s640, Path(tmp) / "s640.avi"), 0),
                  "1080p (every 15th detection tiled)": (d / "video" / "street_1080p.mp4", 15)}
        for name, (video, tile) in videos.items():
            fps_run(video, gender, NEW, tile)  # warm-up
            variants = (("old", OLD), ("new", NEW), ("new without re-acquisition", {"reacquire_every": 0}))
            best = {v: 0.0 for v, _ in variants}
            runs: dict[str, list[float]] = {v: [] for v, _ in variants}
            for _ in range(args.repeats):
                for variant, opts in variants:
                    f = fps_run(video, gender, opts, tile)
                    runs[variant].append(round(f, 1))
                    best[variant] = max(best[variant], f)
            fr = {"video": name, "fps_old": round(best["old"], 1), "fps_new": round(best["new"], 1),
                  "fps_new_no_reacquire": round(best["new without re-acquisition"], 1),
                  "change": round(best["new"] / best["old"] - 1, 3), "runs": runs}
            print(fr, flush=True)
            fps_rows.append(fr)

    load = C.other_load_warning()
    print(C.md_table(["footage", "variant", "tracks", "across cuts", "cuts found", "splits",
                      "id switches / track-min", "wrong names", "coasting frames / track", "coasting on face",
                      "recall vs photo (shown / visible)", "re-acquired"],
                     [[r["footage"], r["variant"], r["tracks"], r["tracks_across_cuts"], r["cuts_found"], r["splits"],
                       r["switches_per_track_minute"], r["wrong_name_rate"], r["coasting_frames_per_track"],
                       r["coasting_on_face"],
                       f"{r['recall_vs_photo']:.3f} / {r['recall_visible_vs_photo']:.3f}", r["reacquired"]]
                      for r in rows]))
    print(C.md_table(["video", "FPS old", "FPS new", "FPS new, no re-acquisition", "change (new vs old)"],
                     [[r["video"], r["fps_old"], r["fps_new"], r["fps_new_no_reacquire"], f"{100 * r['change']:+.1f}%"]
                      for r in fps_rows]))
    payload = {**info, "load_warning": load, "false_cuts": false_cuts, "results": rows, "fps": fps_rows}
    print(json.dumps({"false_cuts": false_cuts, "trust": rows, "fps": fps_rows}, default=str))
    C.write_json("live_trust", payload, args.out)


if __name__ == "__main__":
    main()
