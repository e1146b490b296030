"""Legitimate detect latency while other clients send decompression bombs (issue 14).

Starts ``faceforge.service`` with uvicorn on 127.0.0.1 (a fresh data directory, the service's
default limits), then:

1. **quiet**: ``--clients`` threads each send ``--requests`` ``POST /api/detect`` with a 256x256
   JPEG of the astronaut (one face), one after another;
2. **under attack**: the same legitimate load while ``--bomb-clients`` more threads send bombs
   back to back until the legitimate clients are done, cycling through

   * a 9999x9999 one-bit PNG (about 12 KB),
   * a 6300x6300 (39.7 MP) one-bit PNG (about 5 KB),
   * the same with 200 rows of noise (so its bytes-per-pixel ratio passes the bomb check and
     only the decode cap stops it),
   * a 6300x6300 uniform grey JPEG (decoded reduced by ``max_decode_pixels``).

It reports legitimate p50 / p99 in both phases, their ratio (target: p99 under attack within 3x
of quiet), the bombs' answers and time per answer, and the peak resident memory of this process
(the server runs in it). Every legitimate request must answer 200.

    python benchmarks/bench_bombs.py [--clients 8] [--requests 500] [--bomb-clients 3]
"""

from __future__ import annotations

import argparse
import io
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def one_bit_png(w: int, h: int, noise_rows: int = 0) -> bytes:
    import numpy as np
    from PIL import Image

    img = Image.new("1", (w, h), 1)
    if noise_rows:
        rng = np.random.default_rng(0)
        img.paste(Image.fromarray(rng.integers(0, 2, (noise_rows, w), dtype=np.uint8) * 255).convert("1"), (0, 0))
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def grey_jpeg(w: int, h: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (w, h), 128).convert("RGB").save(buf, "JPEG", quality=50)
    return buf.getvalue()


def bombs() -> list[tuple[str, bytes, str]]:
    return [("png_9999x9999", one_bit_png(9999, 9999), "image/png"),
            ("png_40mp", one_bit_png(6300, 6300), "image/png"),
            ("png_40mp_noisy", one_bit_png(6300, 6300, noise_rows=200), "image/png"),
            ("jpeg_40mp", grey_jpeg(6300, 6300), "image/jpeg")]


def attack(url: str, kinds: list[tuple[str, bytes, str]], stop: threading.Event, out: dict[str, Any],
           lock: threading.Lock, offset: int) -> None:
    import httpx

    i = offset
    with httpx.Client(timeout=120, trust_env=False) as c:
        while not stop.is_set():
            name, data, mime = kinds[i % len(kinds)]
            i += 1
            t0 = time.perf_counter()
            try:
                status = c.post(url, files={"file": (name, data, mime)}).status_code
            except httpx.HTTPError as e:
                status = type(e).__name__
            ms = (time.perf_counter() - t0) * 1000
            with lock:
                row = out.setdefault(name, {"bytes": len(data), "answers": {}, "ms": []})
                row["answers"][str(status)] = row["answers"].get(str(status), 0) + 1
                row["ms"].append(ms)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--bomb-clients", type=int, default=3)
    ap.add_argument("--data", type=Path, default=C.DATA, help="(unused: the photo ships with scikit-image)")
    args, info = C.start(ap, "detect latency while clients send decompression bombs (loopback)")
    import numpy as np
    from PIL import Image
    from skimage import data

    from faceforge.service import create_app
    from faceforge.service.loadtest import BackgroundServer, run_load

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()[::2, ::2].copy()).save(buf, "JPEG", quality=90)
    files = {"file": ("astronaut.jpg", buf.getvalue(), "image/jpeg")}
    kinds = bombs()
    phases: dict[str, Any] = {}
    attacks: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as home, BackgroundServer(create_app(home=home, run_jobs=False)) as url:
        detect = url + "api/detect"
        run_load(detect, clients=1, requests=5, files=files)  # warm the models
        phases["quiet"] = run_load(detect, clients=args.clients, requests=args.requests, files=files,
                                   max_seconds=1800).to_dict()
        print("quiet", phases["quiet"], flush=True)
        rss_quiet = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        stop, lock = threading.Event(), threading.Lock()
        threads = [threading.Thread(target=attack, args=(detect, kinds, stop, attacks, lock, k), daemon=True)
                   for k in range(args.bomb_clients)]
        for t in threads:
            t.start()
        phases["attack"] = run_load(detect, clients=args.clients, requests=args.requests, files=files,
                                    max_seconds=1800).to_dict()
        stop.set()
        for t in threads:
            t.join(timeout=180)
        print("attack", phases["attack"], flush=True)
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    q, a = phases["quiet"], phases["attack"]
    ratio = a["p99_ms"] / max(q["p99_ms"], 1e-9)
    print(C.md_table(["phase", "legit clients x requests", "errors", "req/s", "p50 ms", "p99 ms"],
                     [[k, f"{r['clients']} x {r['requests'] // max(r['clients'], 1)}", r["errors"],
                       r["requests_per_s"], r["p50_ms"], r["p99_ms"]] for k, r in phases.items()]))
    rows = []
    for name, r in attacks.items():
        ms = np.asarray(r["ms"])
        rows.append([name, r["bytes"], sum(r["answers"].values()), r["answers"],
                     round(float(np.median(ms)), 1), round(float(ms.max()), 1)])
    print(C.md_table(["bomb", "bytes", "sent", "answers", "median ms", "max ms"], rows))
    print(f"\nlegitimate p99 under attack / quiet: {ratio:.2f}x (target <= 3x); peak RSS {rss_peak:.0f} MB "
          f"(after the quiet phase {rss_quiet:.0f} MB)")
    C.write_json("bombs", {**info, "phases": phases,
                           "bombs": {k: {**v, "ms": None, "median_ms": float(np.median(v["ms"]))}
                                     for k, v in attacks.items()},
                           "p99_ratio": round(ratio, 3), "peak_rss_mb": round(rss_peak), "rss_after_quiet_mb":
                           round(rss_quiet)}, args.out)


if __name__ == "__main__":
    main()
