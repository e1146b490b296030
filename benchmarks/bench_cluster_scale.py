"""Clustering at 10k / 100k (/ 1M) faces: time, peak memory and pairwise F of ``cluster_embeddings``.

Faces: the development identities' dlib-resnet embeddings padded with rotated copies, exactly as in
``bench_index.py`` (each copy of the real 448-face set rotated about its mean by a random orthogonal
matrix, plus N(0, 0.01) noise: 48 new plausible people per copy); the truth is the copy's person.
Above ``faceforge.bootstrap.graph.GRAPH_ABOVE`` faces ``cluster_embeddings`` takes the FAISS kNN graph
with Chinese whispers and the average-linkage cleanup; ``--dense-max`` also runs today's dense
average linkage (sklearn) on sizes up to it for comparison (its memory grows as n^2: 1.6 GB at 20k).

Each (size, method) runs in a fresh subprocess so that its peak resident memory (``ru_maxrss``) is its
own. Pairwise F is computed from the contingency table (no n x n matrix; noise faces are singletons).

    python benchmarks/bench_cluster_scale.py --faces 10000 100000
    python benchmarks/bench_cluster_scale.py --faces 10000 100000 1000000 --dense-max 20000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
from bench_index import padded, real_embeddings  # noqa: E402


def pairwise_f(truth: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Pairwise precision / recall / F from counts (noise, -1, as singletons)."""
    lab = labels.astype(np.int64).copy()
    noise = lab < 0
    lab[noise] = lab.max(initial=0) + 1 + np.arange(int(noise.sum()))

    def pairs(c: np.ndarray) -> float:
        return float(np.sum(c.astype(np.float64) * (c - 1) / 2))

    _, joint = np.unique(np.stack([truth.astype(np.int64), lab]), axis=1, return_counts=True)
    tp = pairs(joint)
    p = tp / max(pairs(np.unique(lab, return_counts=True)[1]), 1.0)
    r = tp / max(pairs(np.unique(truth, return_counts=True)[1]), 1.0)
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def one(n: int, method: str, data: Path) -> dict:
    """Cluster ``n`` padded faces with ``method`` ("auto": cluster_embeddings; "dense": sklearn)."""
    X0, y0 = real_embeddings(data)
    X, y = padded(X0, y0, n)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    if method == "dense":
        from sklearn.cluster import AgglomerativeClustering

        from faceforge.bootstrap.graph import by_size

        raw = AgglomerativeClustering(n_clusters=None, distance_threshold=0.55, linkage="average",
                                      metric="euclidean").fit_predict(X.astype(np.float64))
        lab = by_size(raw, 2)
    else:
        from faceforge.bootstrap import cluster_embeddings

        lab = cluster_embeddings(X)
    secs = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"faces": n, "method": method, "seconds": round(secs, 2), "peak_rss_mb": round(peak / 1024, 1),
            "rss_before_mb": round(base / 1024, 1), "groups": int(lab.max() + 1), "noise": int((lab < 0).sum()),
            "people": int(len(np.unique(y))), **{k: round(v, 4) for k, v in pairwise_f(y, lab).items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=C.DATA)
    ap.add_argument("--faces", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--dense-max", type=int, default=10_000, help="run dense average linkage up to this size")
    ap.add_argument("--one", nargs=2, metavar=("N", "METHOD"), help=argparse.SUPPRESS)
    if "--one" in sys.argv:
        a = ap.parse_args()
        print(json.dumps(one(int(a.one[0]), a.one[1], a.data)))
        return
    args, info = C.start(ap, "Clustering at scale: time, memory, pairwise F")
    results = []
    for n in args.faces:
        for method in ["auto"] + (["dense"] if n <= args.dense_max else []):
            cmd = [sys.executable, __file__, "--one", str(n), method, "--data", str(args.data)]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode:
                print(p.stderr[-2000:], file=sys.stderr)
                results.append({"faces": n, "method": method, "error": p.stderr.strip().splitlines()[-1:]})
                continue
            results.append(json.loads(p.stdout.strip().splitlines()[-1]))
            print(results[-1], flush=True)
    ok = [r for r in results if "error" not in r]
    print(C.md_table(["faces", "method", "seconds", "peak RSS MB", "groups", "people", "precision", "recall", "F"],
                     [[r["faces"], r["method"], r["seconds"], r["peak_rss_mb"], r["groups"], r["people"],
                       r["precision"], r["recall"], r["f1"]] for r in ok]))
    C.write_json("cluster_scale", {**info, "results": results}, args.out)


if __name__ == "__main__":
    main()
