"""Small-set validation (issue 13): does the printed 95% interval hold the accuracy users get?

For each seed, a small training set is drawn (UTKFace gender: 25 + 25 photos; AT&T: a few photos
of each of the 40 people), validated exactly as ``faceforge train`` does by default (repeated
stratified k-fold under 300 photos, :mod:`faceforge.train.validation`), and the final head (fitted
on the whole small set) is scored on the rest of the data. The table counts how often the interval
contains that accuracy, its mean width, and how far the old default (one 20% hold-out) strayed.

Every photo is embedded once (cached, default embedder dlib-resnet, default detector); only heads
are fitted per seed, through the same steps as ``train`` (``faceforge.train.steps``).

Usage:
    python benchmarks/bench_small_val.py                       # both sets, default seeds
    python benchmarks/bench_small_val.py --utk-seeds 20 --att-seeds 10 --utk-limit 0
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def _embed(data: Any, embedder: str, workers: int | None) -> Any:
    from faceforge.data import EmbeddingCache, embed_dataset

    return embed_dataset(data, embedder=embedder, cache=EmbeddingCache(), workers=workers, progress=True)


def _utk(root: Path, limit: int, seed: int, tmp: Path) -> Any:
    from faceforge.data import load_dataset

    rows = [r for r in csv.DictReader(open(root / "utkface" / "labels.csv")) if r["gender"] in ("male", "female")]
    rng = np.random.default_rng(seed)
    rng.shuffle(rows)  # type: ignore[arg-type]
    if limit:
        rows = rows[:limit]
    path = tmp / "utk.csv"
    path.write_text("file,gender\n" + "".join(f"{r['file']},{r['gender']}\n" for r in rows))
    return load_dataset(path, image_root=root / "utkface" / "images", task="classification")


def _att(root: Path) -> Any:
    from faceforge.data import load_dataset

    return load_dataset(root / "identity" / "att_faces", task="classification")


def _one(ed: Any, train_idx: np.ndarray, test_idx: np.ndarray, seed: int, head: str | None) -> dict[str, Any]:
    """Validate on ``train_idx`` as ``train`` does by default; score the final head on ``test_idx``."""
    from sklearn.metrics import balanced_accuracy_score

    from faceforge.train import TrainConfig, steps

    X, y = np.asarray(ed.X)[train_idx], np.asarray(ed.y)[train_idx]
    groups = np.asarray(ed.paths)[train_idx]
    classes = list(ed.classes)
    emb = steps.Embedded(SimpleNamespace(task="classification"), X, y, groups, np.zeros(len(y), bool), [], 0.0)
    plan = steps.Plan("classification", head or "logreg", {"normalize": True}, classes)
    out: dict[str, Any] = {}
    for name, cfg in (("default", TrainConfig(seed=seed, learning_curve=False, target_far=None, head=head)),
                      ("holdout_0.2", TrainConfig(seed=seed, val=0.2, learning_curve=False, target_far=None,
                                                  head=head))):
        t0 = time.perf_counter()
        splits = steps.split(emb, cfg)
        fitted = steps.fit(emb, splits, plan, cfg)
        rep = steps.report(fitted, splits, steps.Calibration(None, None))
        v = rep["validation"]
        out[name] = {"method": v["method"], "folds": v["folds"], "repeats": v["repeats"], "n": v["n"],
                     "mean": v.get("mean"), "ci95": v.get("ci95"), "warning": bool(v.get("warning")),
                     "seconds": round(time.perf_counter() - t0, 2)}
        if name == "default":
            yt = np.asarray(ed.y)[test_idx]
            pred = np.argmax(fitted.head.predict_proba(np.asarray(ed.X)[test_idx]), axis=1)
            out["test_balanced_accuracy"] = float(balanced_accuracy_score(yt, pred))
            out["test_n"] = int(len(test_idx))
    lo, hi = out["default"]["ci95"]
    out["contains"] = bool(lo - 1e-9 <= out["test_balanced_accuracy"] <= hi + 1e-9)
    return out


def _summary(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    t = np.array([r["test_balanced_accuracy"] for r in runs])
    d = runs[0]["default"]
    means = np.array([r["default"]["mean"] for r in runs])
    widths = np.array([r["default"]["ci95"][1] - r["default"]["ci95"][0] for r in runs])
    hold = np.array([r["holdout_0.2"]["mean"] for r in runs])
    return {"set": name, "runs": len(runs), "scheme": f"{d['folds']}-fold x {d['repeats']} repeats over {d['n']}",
            "contains": int(sum(r["contains"] for r in runs)), "mean_width": float(widths.mean()),
            "mean_estimate": float(means.mean()), "mean_test": float(t.mean()),
            "mean_abs_error": float(np.abs(means - t).mean()), "holdout_mean_abs_error": float(np.abs(hold - t).mean()),
            "holdout_n": runs[0]["holdout_0.2"]["n"], "holdout_range": [float(hold.min()), float(hold.max())],
            "warned": int(sum(r["default"]["warning"] for r in runs)),
            "seconds_per_run": float(np.mean([r["default"]["seconds"] for r in runs]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=C.DATA)
    ap.add_argument("--utk-seeds", type=int, default=20)
    ap.add_argument("--att-seeds", type=int, default=10)
    ap.add_argument("--att-per-person", type=int, nargs="+", default=[2, 3])
    ap.add_argument("--utk-limit", type=int, default=1500, help="UTKFace photos embedded (0: all)")
    ap.add_argument("--embedder", default="dlib-resnet")
    ap.add_argument("--head", default=None, help="head (default: train's default)")
    ap.add_argument("--workers", type=int, default=None)
    args, info = C.start(ap, "Small-set validation (issue 13)")
    warnings.filterwarnings("ignore", category=UserWarning, module="sklearn")  # 40 classes of 2 photos
    t_start = time.perf_counter()
    results: dict[str, Any] = {"header": info, "settings": {k: v for k, v in vars(args).items() if k != "data"},
                               "sets": {}}
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        ed = _embed(_utk(args.data, args.utk_limit, 0, Path(tmp)), args.embedder, args.workers)
        y = np.asarray(ed.y)
        runs = []
        for seed in range(args.utk_seeds):
            rng = np.random.default_rng(1000 + seed)
            tr = np.concatenate([rng.choice(np.flatnonzero(y == c), 25, replace=False) for c in (0, 1)])
            te = np.setdiff1d(np.arange(len(y)), tr)
            runs.append(_one(ed, tr, te, seed, args.head))
        results["sets"]["utk_gender_25+25"] = {"summary": _summary("UTKFace gender, 25 + 25", runs), "runs": runs}
        ed = _embed(_att(args.data), args.embedder, args.workers)
        y = np.asarray(ed.y)
        for per in args.att_per_person:
            runs = []
            for seed in range(args.att_seeds):
                rng = np.random.default_rng(2000 + seed)
                tr = np.concatenate([rng.choice(np.flatnonzero(y == c), per, replace=False) for c in np.unique(y)])
                te = np.setdiff1d(np.arange(len(y)), tr)
                runs.append(_one(ed, tr, te, seed, args.head))
            key = f"att_{per}_per_person"
            results["sets"][key] = {"summary": _summary(f"AT&T, {per} photos x 40 people", runs), "runs": runs}
    for s in results["sets"].values():
        m = s["summary"]
        table.append([m["set"], m["scheme"], f"{m['contains']}/{m['runs']}", C.fmt_pct(m["mean_width"] / 2),
                      C.fmt_pct(m["mean_estimate"]), C.fmt_pct(m["mean_test"]), C.fmt_pct(m["mean_abs_error"]),
                      f"{C.fmt_pct(m['holdout_mean_abs_error'])} (n={m['holdout_n']}, "
                      f"{C.fmt_pct(m['holdout_range'][0])}-{C.fmt_pct(m['holdout_range'][1])})",
                      f"{m['warned']}/{m['runs']}", f"{m['seconds_per_run']:.1f}"])
    results["total_s"] = round(time.perf_counter() - t_start, 1)
    print(C.md_table(["set", "default validation", "95% CI holds test", "mean +- (points)", "estimate %",
                      "test %", "|estimate - test|", "old 20% hold-out: |error| (n, range)", "warned",
                      "s per run"], table))
    print(f"\ntotal {results['total_s']} s")
    C.write_json("small_val", results, args.out)


if __name__ == "__main__":
    main()
