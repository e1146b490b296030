"""Train-and-classify benchmarks on ../shared/data, each beside a tutorial-style baseline.

faceforge: detect (photo default) -> align -> embed (dlib-resnet for identity; agegender, the
Cydral age/gender nets' features, and dlib-resnet for UTKFace; effnet-lite0 for emotion) -> head,
on cached embeddings. Baseline, as the tutorials did it: Haar cascade crop
(scaleFactor 1.3, minNeighbors 5; the whole image when Haar finds nothing), EfficientNet-Lite0
features of the whole crop (the tutorials retrained Inception / MobileNet on whole crops), and a
logistic-regression last layer.

Splits are built as symlink folders / CSVs in a temporary directory (nothing is copied into the
repository). Reports accuracy / balanced accuracy (MAE for age), training time with a cold and a
warm embedding cache, and classification throughput.

Usage:
    python benchmarks/bench_train.py                       # every set
    python benchmarks/bench_train.py --sets att tv         # some
    python benchmarks/bench_train.py --utk-limit 2000      # smaller UTKFace test set
    python benchmarks/bench_train.py --qualities fast accurate --no-baseline   # the presets side by side
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

SETS = ("att", "tv", "seed_emotion4", "utk_gender", "utk_age", "fer2013")

FACEFORGE = {"detector": "photo"}
BASELINE = {"detector": "haar", "embedder": "effnet-lite0", "alignment": {"template": "margin", "margin": 1.0}}


def _link_split(root: Path, dst: Path, per_class_train: int, seed: int) -> tuple[Path, Path]:
    """Folder-per-class split into dst/train and dst/test (symlinks), first n per class to train."""
    rng = random.Random(seed)
    for cls in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(f for f in cls.iterdir() if f.is_file())
        rng.shuffle(files)
        for part, chunk in (("train", files[:per_class_train]), ("test", files[per_class_train:])):
            d = dst / part / cls.name
            d.mkdir(parents=True, exist_ok=True)
            for f in chunk:
                (d / f.name).symlink_to(f.resolve())
    return dst / "train", dst / "test"


def _utk_csvs(data: Path, dst: Path, n_train: int, limit: int | None, seed: int) -> tuple[Path, Path]:
    rows = list(csv.DictReader(open(data / "utkface" / "labels.csv")))
    random.Random(seed).shuffle(rows)
    train, test = rows[:n_train], rows[n_train:]
    if limit:
        test = test[:limit]
    for name, part in (("train.csv", train), ("test.csv", test)):
        with open(dst / name, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["file", "age", "gender"])
            w.writeheader()
            for r in part:
                w.writerow({"file": r["file"], "age": r["age"], "gender": r["gender"]})
    return dst / "train.csv", dst / "test.csv"


def run_one(name: str, method: str, train_src: Path, test_src: Path | None, opts: dict[str, Any],
            out_dir: Path, folds: int = 0, **dsopts: Any) -> dict[str, Any]:
    from faceforge.train import evaluate, load_classifier, train

    model = out_dir / f"{name}-{method}.ffm"
    common = dict(opts)
    rows: dict[str, Any] = {"set": name, "method": method}
    t = time.perf_counter()
    res = train(train_src, model, val=0.0 if test_src else 0.2, folds=folds, progress=True, **common, **dsopts)
    rows["train_s_first"] = time.perf_counter() - t
    rows["cache_first"] = f"{res.timings['cache_hits']} hit / {res.timings['cache_misses']} miss"
    t = time.perf_counter()
    res = train(train_src, model, val=0.0 if test_src else 0.2, folds=folds, progress=False, **common, **dsopts)
    rows["train_s_warm"] = time.perf_counter() - t
    if test_src is not None:
        t = time.perf_counter()
        rep = evaluate(model, test_src, progress=True, **dsopts)
        rows["eval_s"] = time.perf_counter() - t
        rows["images_per_s"] = rep.get("images", 0) / rows["eval_s"] if rows["eval_s"] else None
    else:
        rep = res.report
    rows.update({k: rep.get(k) for k in ("accuracy", "balanced_accuracy", "mae", "images")})
    rows["face_sources"] = rep.get("face_sources") or res.manifest.get("data", {}).get("face_sources")
    val = res.report.get("validation")
    rows["validation"] = "test split" if test_src else (val.get("description") if isinstance(val, dict) else val)
    # classification throughput on raw image files (detect + align + embed + head)
    clf = load_classifier(model)
    files = []
    src = test_src if test_src is not None and test_src.is_dir() else train_src
    if src.is_dir():
        files = sorted(p for p in src.rglob("*") if p.is_file())[:100]
    if files:
        clf.classify(files[0])
        t = time.perf_counter()
        for f in files:
            clf.classify(f)
        rows["classify_img_per_s"] = len(files) / (time.perf_counter() - t)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=C.DATA)
    ap.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    ap.add_argument("--utk-train", type=int, default=1000)
    ap.add_argument("--utk-limit", type=int, default=None, help="at most N UTKFace test images")
    ap.add_argument("--fer-train-limit", type=int, default=None, help="at most N FER2013 train images per class")
    ap.add_argument("--utk-embedders", nargs="+", default=["agegender", "dlib-resnet"],
                    help="faceforge embedders to run on UTKFace (one row each)")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--qualities", nargs="+", choices=["fast", "accurate"], default=["fast"],
                    help="train faceforge with each preset (train --accurate), on the same splits")
    args, info = C.start(ap, "Train and classify: faceforge vs tutorial baseline")
    cache = os.environ.setdefault("FACEFORGE_CACHE", tempfile.mkdtemp(prefix="ff-bench-cache-"))
    print(f"embedding cache: {cache} (cold at the start unless FACEFORGE_CACHE was set)\n")
    d = args.data
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ff-bench-train-") as tmp:
        tmp = Path(tmp)
        plans: list[tuple[str, Path, Path | None, dict[str, Any], dict[str, Any], int]] = []
        if "att" in args.sets:
            tr, te = _link_split(d / "identity" / "att_faces", tmp / "att", 5, args.seed)
            plans.append(("att", tr, te, {"embedder": "dlib-resnet"}, {}, 0))
        if "tv" in args.sets:
            plans.append(("tv", d / "identity" / "tv_characters", None, {"embedder": "dlib-resnet"}, {}, 5))
        if "seed_emotion4" in args.sets:
            plans.append(("seed_emotion4", d / "emotion" / "seed_emotion4", None, {"embedder": "effnet-lite0"}, {}, 5))
        if "utk_gender" in args.sets or "utk_age" in args.sets:
            (tmp / "utk").mkdir()
            tr, te = _utk_csvs(d, tmp / "utk", args.utk_train, args.utk_limit, args.seed)
            root = {"image_root": d / "utkface" / "images", "path_column": "file"}
            for emb in args.utk_embedders:
                if "utk_gender" in args.sets:
                    plans.append(("utk_gender", tr, te, {"embedder": emb}, {**root, "label_column": "gender"}, 0))
                if "utk_age" in args.sets:
                    plans.append(("utk_age", tr, te, {"embedder": emb},
                                  {**root, "label_column": "age", "task": "regression"}, 0))
        if "fer2013" in args.sets:
            fer = d / "emotion" / "fer2013"
            tr = fer / "train"
            if args.fer_train_limit:
                tr = tmp / "fer_train"
                rng = random.Random(args.seed)
                for cls in sorted(p for p in (fer / "train").iterdir() if p.is_dir()):
                    files = sorted(cls.iterdir())
                    rng.shuffle(files)
                    (tr / cls.name).mkdir(parents=True)
                    for f in files[: args.fer_train_limit]:
                        (tr / cls.name / f.name).symlink_to(f)
            plans.append(("fer2013", tr, fer / "public_test", {"embedder": "effnet-lite0"}, {}, 0))
        done_baseline: set[str] = set()
        for name, tr, te, opts, dsopts, folds in plans:
            methods = [(f"faceforge ({opts['embedder']}{', accurate' if q == 'accurate' else ''})",
                        {**FACEFORGE, **opts, **({} if q == "fast" else {"quality": q})}) for q in args.qualities]
            if not args.no_baseline and name not in done_baseline:
                done_baseline.add(name)
                methods.append(("baseline", {**BASELINE, **{k: v for k, v in opts.items() if k == "crops"}}))
            for method, o in methods:
                print(f"--- {name} / {method}: {o}", flush=True)
                row = run_one(name, method, tr, te, o, tmp, folds=folds, **dsopts)
                print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
                results.append(row)
    headers = ["set", "method", "validation", "accuracy %", "balanced acc %", "MAE", "train s (cold)",
               "train s (warm)", "classify img/s"]
    table = [[r["set"], r["method"], r["validation"], C.fmt_pct(r.get("accuracy")),
              C.fmt_pct(r.get("balanced_accuracy")),
              f"{r['mae']:.2f}" if r.get("mae") is not None else "", f"{r['train_s_first']:.1f}",
              f"{r['train_s_warm']:.1f}", f"{r['classify_img_per_s']:.1f}" if r.get("classify_img_per_s") else ""]
             for r in results]
    print(C.md_table(headers, table))
    C.write_json("train", {**info, "results": results}, args.out)


if __name__ == "__main__":
    main()
