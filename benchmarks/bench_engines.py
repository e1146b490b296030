"""The Ray engine against the local engine on this machine (issue 15): throughput and overhead.

* throughput: ``detect_files`` (yunet) over N real photos (the astronaut, Grace Hopper and
  coffee, shifted, mirrored and brightened, written as JPEG files), local process pool vs a
  local Ray with the same number of workers; each engine is run once untimed first (warm:
  models cached on disk, Ray already up), then timed;
* overhead of a tiny job (3 photos): wall time per job, local (a fresh pool each job) vs Ray
  (actors made each job on a running Ray), and the one-time cost of starting a local Ray.

    python benchmarks/bench_engines.py [--n 200] [--workers 0] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def photos(folder: Path, n: int) -> list[Path]:
    from matplotlib import cbook
    from PIL import Image
    from skimage import data

    from faceforge.sources import load_image

    bases = [data.astronaut(), load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), data.coffee()]
    out = []
    for i in range(n):
        img = np.roll(bases[i % 3], 5 * i, axis=1)
        if (i // 3) % 2:
            img = img[:, ::-1]
        img = np.clip(img.astype(np.float32) * (0.85 + 0.01 * (i % 30)), 0, 255).astype(np.uint8)
        p = folder / f"p{i:05d}.jpg"
        Image.fromarray(np.ascontiguousarray(img)).save(p, quality=90)
        out.append(p)
    return out


def timed(paths: list[Path], engine: object, workers: int | None) -> tuple[float, int]:
    from faceforge.tasks import detect_files

    t0 = time.perf_counter()
    n = sum(len(f) for f in detect_files(paths, engine=engine, workers=workers))
    return time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="photos for the throughput run")
    ap.add_argument("--workers", type=int, default=0, help="workers of both engines (0: one per core)")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per engine (the best is kept)")
    args = ap.parse_args()

    from faceforge.runner import LocalEngine, default_workers
    from faceforge.runner import ray_engine

    w = args.workers or default_workers()
    res: dict[str, object] = {"photos": args.n, "workers": w}
    with tempfile.TemporaryDirectory() as tmp:
        paths = photos(Path(tmp), args.n)
        tiny = paths[:3]
        t0 = time.perf_counter()
        ray_engine.connect(None, workers=w)
        res["ray_start_s"] = round(time.perf_counter() - t0, 2)
        engines = {"local": LocalEngine(w), "ray": ray_engine.RayEngine(workers=w)}
        for name, eng in engines.items():
            timed(tiny, eng, w)  # warm up: model files read once, imports done
            best, faces = min(timed(paths, eng, w) for _ in range(args.repeat))
            res[f"{name}_img_per_s"] = round(args.n / best, 1)
            res[f"{name}_faces"] = faces
            res[f"{name}_tiny_job_s"] = round(min(timed(tiny, eng, w)[0] for _ in range(3)), 2)
        res["ray_vs_local_throughput"] = round(float(res["ray_img_per_s"]) / float(res["local_img_per_s"]), 3)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
