"""The accurate preset's detection (issue 19, point 2): test-time augmentation and a threshold
chosen for a stated false-positive rate, on the WIDER FACE training subset.

Each photo is detected once per *view* (the photo at 1x, mirrored, enlarged 1.5x / 2x, ...; the
photo detector with its own ``max_size`` shrink) with every face down to ``--floor``; the views'
faces are fused by :func:`faceforge.detectors.tta.fuse` (weighted box fusion, or score-aware NMS
with ``max``). For every combination of views and fusion the script sweeps the fused score's
threshold and reports recall at IoU 0.5 by face height and false positives per photo (as
bench_detect.py counts them) at the threshold that gives a stated false-positive rate.

The threshold is chosen honestly: by two-fold cross-validation over photos (chosen on the even
photos, reported on the odd ones, and the other way round; both halves' counts summed), and the
threshold the library ships is the one chosen on all photos (printed, and in the JSON).

Cost: ms per photo = the sum of the views' detector calls (timed one by one, one process) plus
the fusion; the shipped preset is also timed as one call of
:class:`faceforge.detectors.tta.AugmentedDetector` against the fast default, interleaved photo by
photo.

Usage:
    python benchmarks/bench_accurate_detection.py                 # all 413 photos
    python benchmarks/bench_accurate_detection.py --limit 60      # quick
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import _common as C
from bench_detect import BUCKETS, ImageStore, evaluate, greedy_match, read_wider_gt

ALL_VIEWS = [(1.0, False), (1.0, True), (1.5, False), (2.0, False), (2.0, True)]
COMBOS = [
    [(1.0, False)],
    [(1.0, False), (1.0, True)],
    [(1.0, False), (1.5, False)],
    [(1.0, False), (2.0, False)],
    [(1.0, False), (1.0, True), (2.0, False)],
    [(1.0, False), (1.0, True), (1.5, False)],
    [(1.0, False), (1.0, True), (2.0, False), (2.0, True)],
    [(1.0, False), (1.0, True), (1.5, False), (2.0, False)],
    [(1.0, False), (1.0, True), (1.5, False), (2.0, False), (2.0, True)],
]
MAX_SIDE = 2560  # AugmentedDetector's default cap on an enlarged view
THRESHOLDS = np.round(np.arange(0.20, 0.951, 0.01), 2)


def view_name(views: list[tuple[float, bool]]) -> str:
    return " + ".join(f"{s:g}x{' mirror' if f else ''}" for s, f in views)


def photo_counts(g: dict[str, Any], faces: Any) -> np.ndarray:
    """``(len(THRESHOLDS), len(BUCKETS) + 1)``: faces matched per size bucket and false positives of one
    photo at every threshold (matching and counting as bench_detect.evaluate does)."""
    from faceforge.types import iou_matrix

    valid, ign = g["valid"], g["ignored"]
    h = valid[:, 3] - valid[:, 1]
    masks = [(h >= lo) & (h < hi) for lo, hi in BUCKETS.values()]
    out = np.zeros((len(THRESHOLDS), len(BUCKETS) + 1), np.int64)
    for k, t in enumerate(THRESHOLDS):
        d = faces.xyxy[faces.score >= t]
        iou = iou_matrix(valid, d)
        gm50, _ = greedy_match(iou, 0.5)
        _, dm = greedy_match(iou, 0.3)
        on_ignored = (iou_matrix(ign, d).max(axis=0) >= 0.3) if len(ign) and len(d) else np.zeros(len(d), bool)
        out[k, :-1] = [int(gm50[m].sum()) for m in masks]
        out[k, -1] = int((~(dm | on_ignored)).sum())
    return out


def summarise(counts: np.ndarray, faces: np.ndarray, idx: np.ndarray, k: int) -> dict[str, Any]:
    """Recall per bucket and FP/photo at threshold index ``k`` over the photos ``idx``."""
    c = counts[idx, k].sum(axis=0)
    n = faces[idx].sum(axis=0)
    out = {f"recall_{b}": (float(c[j] / n[j]) if n[j] else None) for j, b in enumerate(BUCKETS)}
    out.update(fp_per_image=float(c[-1] / len(idx)), threshold=float(THRESHOLDS[k]))
    return out


def pick(counts: np.ndarray, idx: np.ndarray, fp_target: float) -> int:
    """Index of the lowest threshold whose false positives per photo on ``idx`` are within the target."""
    fp = counts[idx, :, -1].sum(axis=0) / len(idx)
    ok = np.flatnonzero(fp <= fp_target + 1e-9)
    return int(ok[0]) if len(ok) else len(THRESHOLDS) - 1


def cross_validated(counts: np.ndarray, faces: np.ndarray, fp_target: float) -> dict[str, Any]:
    """Threshold picked on one half of the photos (even / odd), counted on the other; halves summed."""
    n = len(counts)
    halves = [np.arange(0, n, 2), np.arange(1, n, 2)]
    ks = [pick(counts, halves[a], fp_target) for a in (0, 1)]
    c = counts[halves[1], ks[0]].sum(axis=0) + counts[halves[0], ks[1]].sum(axis=0)
    nf = faces.sum(axis=0)
    out = {f"recall_{b}": (float(c[j] / nf[j]) if nf[j] else None) for j, b in enumerate(BUCKETS)}
    out.update(fp_per_image=float(c[-1] / n), thresholds=[float(THRESHOLDS[k]) for k in ks])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=C.DATA / "detection" / "wider_train_subset")
    ap.add_argument("--limit", type=int, default=None, help="N photos evenly spaced over the set")
    ap.add_argument("--floor", type=float, default=0.2, help="each view keeps faces down to this score")
    ap.add_argument("--fp-targets", type=float, nargs="+", default=[0.56, 1.0],
                    help="false positives per photo to choose thresholds for (0.56: the fast default's)")
    ap.add_argument("--no-timing", action="store_true", help="skip timing the shipped preset as one call")
    ap.add_argument("--min-sizes", type=float, nargs="*", default=[12],
                    help="size-aware fusion: a view counts for a face only when it is this tall there")
    ap.add_argument("--timing-photos", type=int, default=None, help="time on N evenly spaced photos (default all)")
    ap.add_argument("--cache", default=None, help="pickle of the per-view detections: written once, then read "
                    "(to try fusions and thresholds again without detecting)")
    args, info = C.start(ap, "Accurate detection: views, fusion and a threshold for a stated FP rate (WIDER subset)")
    if w := C.other_load_warning():
        print(w + "\n")
    gt = read_wider_gt(args.data / "wider_face_bbx_gt.txt")
    gt = [g for g in gt if (args.data / "images" / g["name"]).exists()]
    if args.limit and args.limit < len(gt):
        idx = np.unique(np.linspace(0, len(gt) - 1, args.limit).round().astype(int))
        gt = [gt[i] for i in idx]
    images = ImageStore([args.data / "images" / g["name"] for g in gt], [g["name"] for g in gt], False)
    h = np.concatenate([g["valid"][:, 3] - g["valid"][:, 1] for g in gt])
    counts = {b: int(((h >= lo) & (h < hi)).sum()) for b, (lo, hi) in BUCKETS.items()}
    print(f"{len(gt)} photos, {len(h)} valid faces: {counts}\n")

    from faceforge.detectors import get_detector
    from faceforge.detectors.tta import AugmentedDetector, fuse, view_faces

    fast = get_detector("yunet", cached=False)
    base = get_detector("yunet", cached=False, min_score=args.floor, landmarks="raw")
    max_size, base.max_size = base.max_size, None  # the views shrink (and enlarge) the photo themselves
    per_view: dict[tuple[float, bool], list[Any]] = {v: [] for v in ALL_VIEWS}
    view_ms: dict[tuple[float, bool], list[float]] = {v: [] for v in ALL_VIEWS}
    fast_dets: list[np.ndarray] = []
    cache = Path(args.cache) if args.cache else None
    if cache is not None and cache.exists():
        import pickle

        per_view, view_ms, fast_dets = pickle.loads(cache.read_bytes())
        print(f"per-view detections read from {cache}", file=sys.stderr)
    for i in tqdm(range(len(gt) if not fast_dets else 0), desc="views", file=sys.stderr):
        img = images.get(i)
        shrink = min(1.0, max_size / max(img.shape[:2])) if max_size else 1.0
        fast_dets.append(fast(img).xyxy)
        for v in ALL_VIEWS:
            t0 = time.perf_counter()
            s = min(v[0] * shrink, MAX_SIDE / max(img.shape[:2])) if v[0] > 1 else v[0] * shrink  # as the preset
            per_view[v].append(view_faces(base, img, s, v[1]))
            view_ms[v].append(1000 * (time.perf_counter() - t0))

    if cache is not None and not cache.exists():
        import pickle

        cache.write_bytes(pickle.dumps((per_view, view_ms, fast_dets)))
    fast_m = evaluate(gt, fast_dets)
    print(f"fast default (yunet, min_score {fast.min_score}): small {C.fmt_pct(fast_m['recall_small'])}%, "
          f"FP/photo {fast_m['fp_per_image']:.2f}")
    faces_per_photo = np.array([[int(((g["valid"][:, 3] - g["valid"][:, 1] >= lo)
                                      & (g["valid"][:, 3] - g["valid"][:, 1] < hi)).sum())
                                 for lo, hi in BUCKETS.values()] for g in gt])
    everyone = np.arange(len(gt))
    from faceforge.detectors.tta import accurate_config

    shipped = accurate_config("yunet")
    rows, results = [], []
    methods = [("wbf", 0.0), ("max", 0.0)] + [("wbf", float(m)) for m in args.min_sizes]
    for views, (method, min_size) in itertools.product(COMBOS, methods):
        if len(views) == 1 and (method == "max" or min_size):
            continue
        scales = [v[0] for v in views]  # WIDER photos are under max_size: a view's scale is its own
        t0 = time.perf_counter()
        fused = [fuse([per_view[v][i] for v in views], 0.5, method, scales, min_size) for i in range(len(gt))]
        fuse_ms = 1000 * (time.perf_counter() - t0) / len(gt)
        ms = sum(float(np.mean(view_ms[v])) for v in views) + fuse_ms
        per_photo = np.stack([photo_counts(g, f) for g, f in zip(gt, fused)])
        full = {}
        for target in args.fp_targets:
            cv = cross_validated(per_photo, faces_per_photo, target)
            chosen = summarise(per_photo, faces_per_photo, everyone, pick(per_photo, everyone, target))
            full[str(target)] = {"cross_validated": cv, "threshold_all_photos": chosen["threshold"]}
            mname = method + (f" (min {min_size:g} px)" if min_size else "")
            rows.append([view_name(views), mname, f"{target:g}", f"{chosen['threshold']:.2f}",
                         C.fmt_pct(cv["recall_large"]), C.fmt_pct(cv["recall_medium"]),
                         C.fmt_pct(cv["recall_small"]), C.fmt_pct(cv["recall_tiny"]),
                         f"{cv['fp_per_image']:.2f}", f"{ms:.0f}"])
        res = {"views": views, "method": method, "min_size": min_size, "ms_per_photo": ms, "fuse_ms": fuse_ms,
               "by_fp_target": full}
        is_shipped = views == [tuple(v) for v in shipped.get("views", [])] and method == "wbf" and not min_size
        if is_shipped or len(views) == 1:
            # the shipped preset's (and the plain detector's) whole curve: the registry's fp_thresholds
            res["curve"] = [summarise(per_photo, faces_per_photo, everyone, k) for k in range(len(THRESHOLDS))]
        results.append(res)
        print(f"  {view_name(views)} / {method} {min_size:g}: done", file=sys.stderr)
    print()
    print(C.md_table(["views", "fusion", "FP target", "threshold (all photos)", "large >=64", "medium 32-64",
                      "small 16-32", "tiny <16", "FP / photo", "ms / photo"], rows))
    print("\nRecall and FP/photo cross-validated (threshold chosen on one half of the photos, counted on the other).")
    print(f"fast default: large {C.fmt_pct(fast_m['recall_large'])}, medium {C.fmt_pct(fast_m['recall_medium'])}, "
          f"small {C.fmt_pct(fast_m['recall_small'])}, tiny {C.fmt_pct(fast_m['recall_tiny'])}, "
          f"FP/photo {fast_m['fp_per_image']:.2f}, "
          f"{float(np.mean(view_ms[(1.0, False)])):.0f} ms/photo for the 1x view without O-Net")

    timing = None
    if not args.no_timing:
        acc = AugmentedDetector("yunet")
        tf, ta = [], []
        n_t = min(len(gt), args.timing_photos or len(gt))
        for i in tqdm(np.unique(np.linspace(0, len(gt) - 1, n_t).round().astype(int)), desc="timing", file=sys.stderr):
            img = images.get(i)
            for det, acc_list in ((fast, tf), (acc, ta)) if i % 2 else ((acc, ta), (fast, tf)):
                t0 = time.perf_counter()
                det(img)
                acc_list.append(time.perf_counter() - t0)
        timing = {"preset": repr(acc), "fast": C.stats_ms(tf), "accurate": C.stats_ms(ta),
                  "ratio_mean": float(np.mean(ta) / np.mean(tf))}
        print(f"\nshipped preset {acc!r}: {timing['accurate']['mean_ms']:.0f} ms mean per photo against the fast "
              f"default's {timing['fast']['mean_ms']:.0f} ms ({timing['ratio_mean']:.2f}x), interleaved")
    print(f"load average at the end: {[round(x, 2) for x in os.getloadavg()]}")
    C.write_json("accurate_detection" + (f"_limit{args.limit}" if args.limit else ""),
                 {**info, "n_images": len(gt), "faces_per_bucket": counts, "floor": args.floor,
                  "fast_default": fast_m, "view_ms": {view_name([v]): float(np.mean(t)) for v, t in view_ms.items()},
                  "results": results, "timing": timing}, args.out)


if __name__ == "__main__":
    main()
