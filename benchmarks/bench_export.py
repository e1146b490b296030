"""Size and per-face latency of the exported classifier.onnx (ONNX Runtime, 1 thread) vs faceforge's own path.

For each default embedder: a logreg model trained on 3 real people (skimage's astronaut and
cameraman, matplotlib's Grace Hopper; 4 variants each), exported; chips cut by faceforge's aligner.
faceforge's path = the embedder (1 thread) + the head and unknown check in numpy. Also a kNN head
with a large reference set (random unit vectors in place of the training embeddings) to show what
the constant costs.

    FACEFORGE_THREADS=1 python benchmarks/bench_export.py [--repeats 20] [--json results/export.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("FACEFORGE_THREADS", "1")
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

EMBEDDERS = ("dlib-resnet", "effnet-lite0", "expression", "agegender", "gendernet")


def _people() -> dict[str, np.ndarray]:
    from matplotlib import cbook
    from skimage import data

    from faceforge.sources import load_image

    return {"astronaut": data.astronaut(), "camera": np.repeat(data.camera()[:, :, None], 3, axis=2),
            "grace": load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))}


def _timeit(fn, repeats: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def bench(clf, res, chips1: dict, repeats: int) -> dict:
    from faceforge.export.parity import reference, session

    sess = session(res.classifier, threads=1)
    inputs = res.sidecar["inputs"]
    out = {"classifier_onnx_bytes": res.sizes["classifier.onnx"], "opset": res.opset}
    for batch in (1, 16):
        feeds = {k: np.repeat(v[:1], batch, axis=0) for k, v in chips1.items()}
        t_onnx = _timeit(lambda feeds=feeds: sess.run(None, feeds), repeats)
        t_ff = _timeit(lambda feeds=feeds: reference(clf, feeds, inputs), repeats)
        out[f"batch{batch}_ms_per_face"] = {"onnx": round(1e3 * t_onnx / batch, 3),
                                           "faceforge": round(1e3 * t_ff / batch, 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from PIL import Image

    from conftest import variants
    from faceforge.export import export_model
    from faceforge.export.parity import chips_from_image
    from faceforge.heads import make_head
    from faceforge.train import load_classifier, train
    from faceforge.train.classifier import FaceClassifier

    people = _people()
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, img in people.items():
            (root / "data" / name).mkdir(parents=True)
            for i, v in enumerate(variants(img, 4)):
                Image.fromarray(v).save(root / "data" / name / f"{i}.jpg", quality=92)
        for emb in EMBEDDERS:
            path = root / f"{emb}.ffm"
            train(root / "data", path, embedder=emb, val=0.0, learning_curve=False, workers=1, progress=False)
            clf = load_classifier(path)
            res = export_model(clf, root / f"out_{emb}")
            chips = chips_from_image(clf, people["astronaut"], res.sidecar["inputs"])
            results[emb] = bench(clf, res, chips, args.repeats)
            print(emb, json.dumps(results[emb]), flush=True)
        base = load_classifier(root / "dlib-resnet.ffm")
        rng = np.random.default_rng(0)
        for n in (1_000, 10_000, 60_000):
            X = rng.normal(size=(n, 128)).astype(np.float32)
            head = make_head("knn", n_neighbors=5).fit(X, rng.integers(0, 3, n), classes=base.classes)
            clf = FaceClassifier(base.manifest, head, base.openset, "")
            res = export_model(clf, root / f"knn{n}")
            chips = chips_from_image(clf, people["astronaut"], res.sidecar["inputs"])
            results[f"dlib-resnet knn {n} refs"] = bench(clf, res, chips, max(3, args.repeats // 4))
            print(f"knn {n}", json.dumps(results[f"dlib-resnet knn {n} refs"]), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
