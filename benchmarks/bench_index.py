"""Gallery identify at 10k / 100k (/ 1M) enrolled faces: brute force against the FAISS index.

Faces: the dlib-resnet embeddings of the development identities (AT&T 400 faces of 40 people and the
TV characters, 40 of 8; embedded by faceforge, cached), padded with synthetic identities: each copy of
the whole real set is rotated by a random orthogonal 128x128 matrix about the set's mean
(``mu + R (x - mu)``) plus N(0, 0.01) noise per coordinate. A rotation keeps every distance inside a
copy (same within-person spread, same distances between its people), and copies sit from each other
about as far as different real people do, so a copy is a new set of 48 plausible people.
Enrolled: as many copies as fill ``--faces`` (written to a real gallery SQLite file). Queries: 200
enrolled faces with N(0, 0.03) noise (new photos of known people) and 100 faces of copies that are
not enrolled (strangers).

Measured per size: the brute force (``faceforge.gallery.index.brute_force_nearest``, vectorised over
faces) and the index (``GalleryIndex.nearest``, the path ``Gallery.identify`` takes, SQLite change check
included), one query per call (ms: median / p90); recall@1 of the index's nearest person against brute
force's; the index's build time, file size and reopen (load + check against SQLite) time.

    python benchmarks/bench_index.py --faces 10000 100000          # the default sizes
    python benchmarks/bench_index.py --faces 10000 100000 1000000  # and a million (about 1 GB of SQLite)
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def real_embeddings(data: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(X, person)`` of the development identity sets (dlib-resnet, main face per photo)."""
    from faceforge.data import embed_dataset, load_dataset

    Xs, ys, base = [], [], 0
    for name in ("att_faces", "tv_characters"):
        e = embed_dataset(load_dataset(data / "identity" / name), progress=False)
        Xs.append(e.X.astype(np.float32))
        ys.append(np.asarray(e.y) + base)
        base += len(e.classes)
    return np.concatenate(Xs), np.concatenate(ys)


def padded(X0: np.ndarray, y0: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` faces: rotated copies of the real set about its mean (see the module docs), with labels."""
    rng = np.random.default_rng(seed)
    mu, people = X0.mean(0), int(y0.max()) + 1
    Xs, ys, have, c = [], [], 0, 0
    while have < n:
        Q, _ = np.linalg.qr(rng.standard_normal((X0.shape[1], X0.shape[1])))
        Xs.append((mu + (X0 - mu) @ Q.T + rng.normal(0, 0.01, X0.shape)).astype(np.float32))
        ys.append(y0 + c * people)
        have, c = have + len(X0), c + 1
    return np.concatenate(Xs)[:n], np.concatenate(ys)[:n]


def write_gallery(path: Path, X: np.ndarray, y: np.ndarray) -> None:
    from faceforge.gallery import Gallery

    Gallery(path, "bench")  # the schema
    with sqlite3.connect(path) as db:
        pids = {}
        for p in np.unique(y).tolist():
            pids[p] = db.execute("INSERT INTO people (gallery, name, created) VALUES ('bench', ?, 0)",
                                 (f"p{p:07d}",)).lastrowid
        db.executemany("INSERT INTO faces (person, embedding, sha256, source, created) VALUES (?,?,?,'s',0)",
                       ((pids[int(p)], x.tobytes(), str(i)) for i, (x, p) in enumerate(zip(X, y))))


#: the label a user sees is the nearest person within this distance, else "unknown" (the default
#: gallery threshold of dlib-resnet at a 1% false-accept rate in a 30-person gallery; larger galleries
#: use a stricter one, which only makes the check easier to agree on)
DECISION_THRESHOLD = 0.46


def run_size(n: int, X0: np.ndarray, y0: np.ndarray, brute_queries: int, exact_max: int) -> dict:
    from faceforge.gallery.index import GalleryIndex, brute_force_nearest, index_path

    rng = np.random.default_rng(1)
    X, y = padded(X0, y0, n)
    strangers, _ = padded(X0, y0, 100, seed=99)
    Q = np.concatenate([X[rng.choice(n, 200, replace=False)] + rng.normal(0, 0.03, (200, X.shape[1])),
                        strangers]).astype(np.float32)
    order = np.argsort(y, kind="stable")
    names = [f"p{p:07d}" for p in np.unique(y).tolist()]
    owner = np.searchsorted(np.unique(y), y[order])
    stored = X[order]

    def dist(a, b):
        return np.linalg.norm(a - b, axis=1)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "g.db"
        t0 = time.perf_counter()
        write_gallery(path, X, y)
        load_s = time.perf_counter() - t0
        idx = GalleryIndex(path, "bench", exact_max)
        t0 = time.perf_counter()
        idx.nearest(Q[:1], 3, "euclidean", dist)
        build_s = time.perf_counter() - t0
        got = [idx.nearest(q[None], 3, "euclidean", dist)[0] for q in Q]
        lat_index = C.time_calls(lambda: idx.nearest(Q[rng.integers(len(Q))][None], 3, "euclidean", dist), 300)
        nb = min(brute_queries, len(Q))
        want = [brute_force_nearest(names, owner, stored, q[None], 3, dist)[0] for q in Q[:nb]]
        lat_brute = C.time_calls(lambda: brute_force_nearest(names, owner, stored, Q[:1], 3, dist), min(nb, 20), 1)
        t0 = time.perf_counter()
        fresh = GalleryIndex(path, "bench", exact_max)
        fresh.nearest(Q[:1], 3, "euclidean", dist)
        reopen_s = time.perf_counter() - t0
        kind = idx._index.kind if idx._index is not None else "none"
        size_mb = index_path(path, "bench").stat().st_size / 2**20
    same = np.array([a[0][0] == b[0][0] for a, b in zip(got[:nb], want)])
    recall = float(same.mean())
    known = np.arange(nb) < 200  # the first 200 queries are enrolled people's new photos, then strangers
    # what a user sees: the label after the threshold (the nearest person, or unknown above it)
    thr = DECISION_THRESHOLD
    said = [a[0][0] if a[0][1] <= thr else "unknown" for a in got[:nb]]
    truth = [b[0][0] if b[0][1] <= thr else "unknown" for b in want]
    agree = float(np.mean([s_ == t_ for s_, t_ in zip(said, truth)]))
    return {"faces": n, "people": len(names), "index": kind, "recall_at_1": recall, "recall_queries": nb,
            "recall_at_1_known": float(same[known].mean()) if known.any() else None,
            "recall_at_1_strangers": float(same[~known].mean()) if (~known).any() else None,
            "decision_agreement": agree, "decision_threshold": thr,
            "index_ms": C.stats_ms(lat_index), "brute_ms": C.stats_ms(lat_brute), "build_s": round(build_s, 2),
            "reopen_s": round(reopen_s, 2), "index_file_mb": round(size_mb, 1), "sqlite_load_s": round(load_s, 1),
            "reopen_rebuilt": fresh.rebuilds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=C.DATA)
    ap.add_argument("--faces", type=int, nargs="+", default=[10_000, 100_000], help="gallery sizes")
    ap.add_argument("--exact-max", type=int, default=None,
                    help="largest gallery searched exactly (default faceforge's EXACT_MAX); small: try IVF")
    ap.add_argument("--brute-queries", type=int, default=300, help="queries answered by brute force too")
    args, info = C.start(ap, "Gallery identify: brute force vs the FAISS index")
    from faceforge.gallery.index import EXACT_MAX

    X0, y0 = real_embeddings(args.data)
    results = []
    for n in args.faces:
        results.append(run_size(n, X0, y0, args.brute_queries, args.exact_max or EXACT_MAX))
        print(results[-1], flush=True)
    print(C.md_table(["faces", "index", "recall@1 (all)", "recall@1 known / strangers", "same label at 0.46",
                      "index ms (median / p90)", "brute ms (median)", "build s", "reopen s", "file MB"],
                     [[r["faces"], r["index"], f"{r['recall_at_1']:.4f}",
                       f"{r['recall_at_1_known']:.3f} / {r['recall_at_1_strangers']:.3f}",
                       f"{r['decision_agreement']:.4f}",
                       f"{r['index_ms']['median_ms']} / {r['index_ms']['p90_ms']}", r["brute_ms"]["median_ms"],
                       r["build_s"], r["reopen_s"], r["index_file_mb"]] for r in results]))
    C.write_json("index", {**info, "method": __doc__.split("\n\n")[1], "results": results}, args.out)


if __name__ == "__main__":
    main()
