"""Embeddings per second: dlib-bin (one core, in-process) versus faceforge's ONNX dlib-resnet.

Usage: python benchmarks/bench_embed_dlib.py [--seconds 3] [--rounds 3] [--batches 1 16]

Chips are real: the astronaut's face (scikit-image) cut by dlib's own detector, 5-point
shape predictor and get_face_chip, plus flipped / brighter / rotated / downscaled variants.
dlib-bin runs pinned to one core. The ONNX embedder runs on every core in its default mode
(``parallel="auto"``), then forced data parallel (one single-threaded session shared by one
worker thread per core, 8 chips per run) and forced intra-op (one session using every core).
Each setting runs ``--rounds`` times for ``--seconds`` each; the best round's rate is reported
(the least disturbed one on a shared machine), with the CPU milliseconds per embedding over
all rounds, which other processes barely change.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from _common import header, md_table, other_load_warning, write_json


def real_chips(n: int = 64) -> np.ndarray:
    """``(n, 150, 150, 3) uint8`` aligned chips of the astronaut and variants of her photo."""
    import dlib
    import skimage.data
    import skimage.transform

    from faceforge.registry import weight_path

    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(str(weight_path("dlib.shape5")))
    base = skimage.data.astronaut()
    variants = [
        base,
        base[:, ::-1].copy(),
        np.clip(base.astype(np.int16) + 40, 0, 255).astype(np.uint8),
        skimage.transform.rotate(base, 10, resize=True, preserve_range=True).astype(np.uint8),
        skimage.transform.rescale(base, 0.5, channel_axis=2, anti_aliasing=True,
                                  preserve_range=True).astype(np.uint8),
    ]
    chips = []
    for img in variants:
        rects, scores, _ = det.run(img, 1, 0)
        if len(rects):
            best = rects[int(np.argmax(scores))]
            chips.append(dlib.get_face_chip(img, sp(img, best), size=150, padding=0.25))
    chips = np.stack(chips)
    return chips[np.arange(n) % len(chips)]


def rate(fn, n_per_call: int, seconds: float, rounds: int) -> tuple[float, float]:
    """Best-of-``rounds`` embeddings per second, and CPU milliseconds per embedding."""
    fn()  # warm-up
    best, cpu, total = 0.0, 0.0, 0
    for _ in range(rounds):
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while (dt := time.perf_counter() - t0) < seconds:
            fn()
            n += n_per_call
        best = max(best, n / dt)
        cpu += time.process_time() - c0
        total += n
    return best, 1000.0 * cpu / total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="length of one timed round")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds per setting (best is reported)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16], help="chips per embed() call")
    ap.add_argument("--json", default=None, help="results file (default benchmarks/results/embed_dlib.json)")
    args = ap.parse_args()

    info = header("dlib-resnet embeddings per second")
    warn = other_load_warning()
    if warn:
        print(warn + "\n")

    import dlib

    from faceforge.embedders.dlib_resnet import DlibResNetEmbedder
    from faceforge.registry import weight_path
    from faceforge.registry.runtime import default_threads

    chips = real_chips(64)
    all_cores = os.sched_getaffinity(0)
    rows: list[dict] = []

    # dlib-bin on one core, in-process: pin the process to one CPU while it runs.
    rec = dlib.face_recognition_model_v1(str(weight_path("dlib-resnet")))
    os.sched_setaffinity(0, {min(all_cores)})
    try:
        i = iter(range(1 << 62))
        r, cpu = rate(lambda: rec.compute_face_descriptor(chips[next(i) % len(chips)]), 1,
                      args.seconds, args.rounds)
    finally:
        os.sched_setaffinity(0, all_cores)
    rows.append({"engine": "dlib-bin compute_face_descriptor", "cores": 1, "chips_per_call": 1,
                 "mode": "-", "embeddings_per_s": r, "cpu_ms_per_embedding": cpu})

    threads = default_threads()
    modes = {"auto": f"default (1 chip: intra-op, more: {threads} workers)",
             True: f"{threads} workers x 1 thread", False: f"1 session x {threads} threads"}
    for parallel, mode in modes.items():
        emb = DlibResNetEmbedder(threads=threads, parallel=parallel)
        for bs in args.batches:
            batch = chips[np.arange(bs) % len(chips)]
            r, cpu = rate(lambda emb=emb, batch=batch: emb.embed(batch), bs, args.seconds, args.rounds)
            rows.append({"engine": "faceforge dlib-resnet (ONNX)", "cores": threads, "chips_per_call": bs,
                         "mode": mode, "embeddings_per_s": r, "cpu_ms_per_embedding": cpu})

    print(md_table(["engine", "cores", "chips/call", "mode", "embeddings/s", "CPU ms/embedding"],
                   [[x["engine"], x["cores"], x["chips_per_call"], x["mode"], f"{x['embeddings_per_s']:.1f}",
                     f"{x['cpu_ms_per_embedding']:.1f}"] for x in rows]))
    print(f"\nload average at the end: {[round(x, 2) for x in os.getloadavg()]}")
    write_json("embed_dlib", {**info, "rows": rows, "load_average_at_end": os.getloadavg()}, args.json)


if __name__ == "__main__":
    main()
