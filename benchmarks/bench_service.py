"""Load test of the HTTP service on loopback: concurrent clients, errors, latency percentiles.

Starts ``faceforge.service`` with uvicorn on 127.0.0.1 (a fresh data directory), then runs
``--clients`` threads that each send ``--requests`` requests one after another to:

* ``GET /api/health`` (the server's own overhead),
* ``POST /api/detect`` with a 256x256 JPEG of the astronaut (one face, yunet),
* ``POST /api/analyze`` with the same photo (detection + gender + age + emotion),

and reports requests per second and p50 / p90 / p99 latency. Inference is serialised inside
the server (one request's models use the cores), so latency grows with the number of clients
while throughput stays at the single-request rate.

    python benchmarks/bench_service.py [--clients 8] [--requests 500] [--analyze-requests 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--analyze-requests", type=int, default=100)
    ap.add_argument("--data", type=Path, default=C.DATA, help="(unused: the photo ships with scikit-image)")
    args, info = C.start(ap, "HTTP service under load (loopback)")
    import io

    from PIL import Image
    from skimage import data

    from faceforge.service import create_app
    from faceforge.service.loadtest import BackgroundServer, run_load

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()[::2, ::2].copy()).save(buf, "JPEG", quality=90)
    files = {"file": ("astronaut.jpg", buf.getvalue(), "image/jpeg")}
    results = []
    with tempfile.TemporaryDirectory() as home, BackgroundServer(create_app(home=home, run_jobs=False)) as url:
        for name, path, n, kw in [("health", "api/health", args.requests, {}),
                                  ("detect", "api/detect", args.requests, {"files": files}),
                                  ("analyze", "api/analyze", args.analyze_requests, {"files": files})]:
            run_load(url + path, clients=1, requests=3, **kw)  # warm the models
            r = run_load(url + path, clients=args.clients, requests=n, max_seconds=1800, **kw).to_dict()
            results.append({"endpoint": name, **r})
            print(results[-1], flush=True)
    print(C.md_table(["endpoint", "clients x requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms"],
                     [[r["endpoint"], f"{r['clients']} x {r['requests'] // r['clients']}", r["errors"],
                       r["requests_per_s"], r["p50_ms"], r["p90_ms"], r["p99_ms"]] for r in results]))
    C.write_json("service", {**info, "results": results}, args.out)


if __name__ == "__main__":
    main()
