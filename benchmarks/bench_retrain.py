"""Retrain benchmark: the first retrain of a 5,000-photo dataset (cold embedding cache) and a warm
retrain after ~100 photos were added (``faceforge.collect.retrain``).

The dataset is built from ../shared/data as symlinks in a temporary folder (nothing is copied into
the repository): UTKFace's face crops filed by the race in their labels (5 classes) and the AT&T
people (40 classes), shuffled with a seed; the first ``--photos`` make day 1, the next ``--added``
day 2. The embedding cache is a fresh temporary file (``$FACEFORGE_CACHE`` pointed at a new folder that
links the usual cache's derived model files), so the first
retrain embeds every photo and the second only the new ones (plus its validation photos, which
the first version was measured on, so they are cached too).

Prints one JSON line (command, machine, date, results) and writes ``benchmarks/results/retrain.json``.

Usage:
    python benchmarks/bench_retrain.py                        # 5,000 photos + 100, dlib-resnet, logreg
    python benchmarks/bench_retrain.py --photos 1000 --added 50 --engine local --workers 2
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def pool(data: Path) -> list[tuple[Path, str]]:
    """Every usable ``(photo, class)`` of the sets this benchmark files into class folders."""
    out: list[tuple[Path, str]] = []
    utk = data / "utkface"
    if (utk / "labels.csv").is_file():
        with open(utk / "labels.csv", newline="") as f:
            for row in csv.DictReader(f):
                p = utk / "images" / row["file"]
                if p.is_file() and row.get("race"):
                    out.append((p, f"utk_{row['race']}"))
    att = data / "identity" / "att_faces"
    if att.is_dir():
        for person in sorted(d for d in att.iterdir() if d.is_dir()):
            out += [(f, f"att_{person.name}") for f in sorted(person.iterdir()) if f.suffix == ".pgm"]
    return out


def link(photos: list[tuple[Path, str]], dataset: Path) -> None:
    for i, (src, label) in enumerate(photos):
        d = dataset / label
        d.mkdir(parents=True, exist_ok=True)
        dst = d / f"{i:05d}_{src.name}"
        if not dst.exists():
            dst.symlink_to(src.resolve())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=5000, help="photos of day 1 (default 5000)")
    ap.add_argument("--added", type=int, default=100, help="photos added on day 2 (default 100)")
    ap.add_argument("--embedder", default="dlib-resnet", help="embedder of the first version (default dlib-resnet)")
    ap.add_argument("--head", default="logreg")
    ap.add_argument("--engine", default=None, help="local or ray (default: $FACEFORGE_ENGINE, else local)")
    ap.add_argument("--workers", type=int, default=None, help="embedding processes (default: all cores)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="results file (default benchmarks/results/retrain.json)")
    C.add_threads_arg(ap)
    args = ap.parse_args()
    C.apply_threads(args.threads)

    photos = pool(C.DATA)
    need = args.photos + args.added
    if len(photos) < need:
        raise SystemExit(f"only {len(photos)} photos under {C.DATA} (UTKFace, AT&T); {need} needed: lower --photos")
    random.Random(args.seed).shuffle(photos)
    day1, day2 = photos[:args.photos], photos[args.photos:need]

    with tempfile.TemporaryDirectory(prefix="ff-bench-retrain-") as tmp:
        root = Path(tmp)
        from faceforge._paths import cache_dir
        from faceforge.collect import retrain

        # a cold embedding cache, but the derived model files (ONNX conversions) of the usual cache
        fresh = root / "cache"
        fresh.mkdir()
        for f in cache_dir().glob("*.onnx"):
            (fresh / f.name).symlink_to(f.resolve())
        os.environ["FACEFORGE_CACHE"] = str(fresh)

        info = C.header("retrain: cold first version, warm retrain after new photos")
        dataset, model = root / "dataset", root / "models" / "people.ffm"
        link(day1, dataset)
        t0 = time.perf_counter()
        first = retrain(dataset, model, embedder=args.embedder, head=args.head, engine=args.engine,
                        workers=args.workers)
        cold = time.perf_counter() - t0
        link(day1 + day2, dataset)
        t0 = time.perf_counter()
        second = retrain(dataset, model, engine=args.engine, workers=args.workers)
        warm = time.perf_counter() - t0

        def summary(res: Any, seconds: float) -> dict[str, Any]:
            t = res.record.get("train") or {}
            return {"version": res.version, "seconds": round(seconds, 2), "promoted": res.promoted,
                    "reason": res.reason, "train_photos": t.get("photos"), "train_seconds": t.get("seconds"),
                    "cache_hits": t.get("cache_hits"), "cache_misses": t.get("cache_misses"),
                    "validation_photos": res.metrics.get("validation_photos"),
                    "photos": res.record["dataset_state"]["photos"],
                    "classes": len(res.record["dataset_state"]["classes"])}

        results = {"cold_first_retrain": summary(first, cold), "warm_retrain_after_added": summary(second, warm),
                   "added": len(day2), "embedder": args.embedder, "head": args.head,
                   "engine": args.engine or os.environ.get("FACEFORGE_ENGINE") or "local", "workers": args.workers}
    payload = {"command": info["command"], "machine": info["machine"], "date": info["date"], "git": info["git"],
               "versions": info["versions"], "results": results}
    C.write_json("retrain", payload, args.out)
    print(json.dumps(payload))


if __name__ == "__main__":
    main()
