"""Clustering faces by person: pairwise F-measure against the true identities, per threshold.

AT&T (40 people x 10 photos) and the TV characters (8 x 5), every photo's main face embedded by
faceforge (dlib-resnet, cached), then grouped by ``faceforge.bootstrap.cluster_embeddings``.

    python benchmarks/bench_cluster.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

THRESHOLDS = (0.45, 0.5, 0.55, 0.6, 0.65)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=C.DATA)
    args, info = C.start(ap, "Clustering faces by person (pairwise F-measure)")
    from faceforge.bootstrap import cluster_embeddings, pairwise_f1
    from faceforge.data import embed_dataset, load_dataset

    results = []
    for name in ("att_faces", "tv_characters"):
        e = embed_dataset(load_dataset(args.data / "identity" / name), progress=False)
        for t in THRESHOLDS:
            t0 = time.perf_counter()
            lab = cluster_embeddings(e.X, t)
            secs = time.perf_counter() - t0
            r = pairwise_f1(e.y, lab)
            results.append({"set": name, "faces": len(e.X), "people": len(e.classes), "threshold": t,
                            "groups": int(len(set(lab.tolist()) - {-1})), "noise": int((lab < 0).sum()),
                            **r, "cluster_s": secs})
            print(results[-1], flush=True)
    print(C.md_table(["set", "faces", "people", "threshold", "groups", "noise", "precision", "recall", "F"],
                     [[r["set"], r["faces"], r["people"], r["threshold"], r["groups"], r["noise"],
                       f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}"] for r in results]))
    C.write_json("cluster", {**info, "results": results}, args.out)


if __name__ == "__main__":
    main()
