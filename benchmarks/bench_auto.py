"""Feature search (issue 13): ``--embedder auto`` against every single embedder, on data faceforge never saw.

Sets (from ../shared/data; symlink folders in a temporary directory, nothing is copied):

* ``utk_gender``: UTKFace adults (age >= 18), 25 + 25 training photos (female / male) drawn
  seeded, tested on ``--utk-test`` per class of the rest.
* ``fer_happy_neutral``: FER2013 "happy" vs "neutral", 100 + 100 from ``emotion/fer2013/train``,
  tested on ``--fer-test`` per class from ``public_test`` (the draws of bench_expression.py, so its
  cached embeddings are reused).
* ``seed_emotion4``: Angry / Calm / Happy / Sad, a seeded stratified half to train, the rest to test.
* ``att_faces``: 40 people, 5 photos each to train, 5 to test.

Each single embedder is trained with :func:`faceforge.train.train` (default head, no validation
split) and ``embedder="auto"`` runs the search (:mod:`faceforge.train.auto`) on the training photos
only; each model is measured with :func:`faceforge.train.evaluate` on the test folder. The figure
is balanced accuracy of the head (top-1 on the known classes). Embeddings are cached, so the auto
search's time is mostly head fits once the singles ran.

Usage:
    python benchmarks/bench_auto.py                       # every set (~8 min on 2 cores, cache warm)
    python benchmarks/bench_auto.py --sets utk_gender
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
from bench_expression import _link, fer_split, half_split  # noqa: E402

SETS = ("utk_gender", "fer_happy_neutral", "seed_emotion4", "att_faces")


def utk_split(data: Path, dst: Path, n_train: int, n_test: int, seed: int) -> tuple[Path, Path]:
    rows = [r for r in csv.DictReader(open(data / "utkface" / "labels.csv"))
            if r["gender"] in ("male", "female") and int(r["age"]) >= 18]
    rng = random.Random(f"utk-{seed}")
    for g in ("female", "male"):
        files = sorted(data / "utkface" / "images" / r["file"] for r in rows if r["gender"] == g)
        rng.shuffle(files)
        _link(files[:n_train], dst / "train" / g)
        _link(files[n_train:n_train + n_test], dst / "test" / g)
    return dst / "train", dst / "test"


def att_split(data: Path, dst: Path) -> tuple[Path, Path]:
    for person in sorted(p for p in (data / "identity" / "att_faces").iterdir() if p.is_dir()):
        files = sorted(person.iterdir())
        _link(files[:5], dst / "train" / person.name)
        _link(files[5:10], dst / "test" / person.name)
    return dst / "train", dst / "test"


def run(name: str, embedder: str, train_dir: Path, test_dir: Path, out: Path, seed: int) -> dict[str, Any]:
    from faceforge.train import evaluate, train

    t = time.perf_counter()
    res = train(train_dir, out / f"{name}-{embedder}.ffm", embedder=embedder, val=0.0, seed=seed, progress=False,
                learning_curve=False)
    train_s = time.perf_counter() - t
    rep = evaluate(res.model_path, test_dir, progress=False)
    row = {"set": name, "embedder": embedder, "chosen_embedder": res.manifest["embedder"],
           "head": res.manifest["head"]["kind"], "train_images": res.manifest["data"]["images"],
           "test_images": rep.get("images"), "balanced_accuracy": rep.get("balanced_accuracy"),
           "train_s": round(train_s, 2)}
    if "auto" in res.report:
        row["search_s"] = res.report["auto"]["seconds"]
        row["leaderboard"] = res.report["auto"]["leaderboard"]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=C.DATA)
    ap.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    ap.add_argument("--utk-test", type=int, default=250, help="UTKFace test photos per class")
    ap.add_argument("--fer-test", type=int, default=250, help="FER2013 public_test photos per class")
    ap.add_argument("--seed", type=int, default=0)
    args, info = C.start(ap, "feature search: --embedder auto against every single embedder")
    from faceforge.train.auto import candidates

    embedders = candidates()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets:
            dst = Path(tmp) / name
            if name == "utk_gender":
                tr, te = utk_split(args.data, dst, 25, args.utk_test, args.seed)
            elif name == "fer_happy_neutral":
                tr, te = fer_split(args.data, dst, 100, args.fer_test, args.seed, args.seed)
            elif name == "seed_emotion4":
                tr, te = half_split(args.data / "emotion" / "seed_emotion4", dst, args.seed)
            else:
                tr, te = att_split(args.data, dst)
            for e in [*embedders, "auto"]:
                row = run(name, e, tr, te, Path(tmp), args.seed)
                rows.append(row)
                print(f"{name:18s} {e:13s} -> {row['chosen_embedder']:13s} {row['head']:7s} "
                      f"balanced {C.fmt_pct(row['balanced_accuracy'])}  ({row['train_s']:.1f} s)", flush=True)
    summary = []
    for name in args.sets:
        singles = [r for r in rows if r["set"] == name and r["embedder"] != "auto"]
        auto = next(r for r in rows if r["set"] == name and r["embedder"] == "auto")
        best = max(singles, key=lambda r: r["balanced_accuracy"])
        summary.append({"set": name, "auto": auto["balanced_accuracy"], "auto_choice":
                        f"{auto['chosen_embedder']} + {auto['head']}", "best_single": best["balanced_accuracy"],
                        "best_single_embedder": best["embedder"], "search_s": auto.get("search_s"),
                        "within_1_point": auto["balanced_accuracy"] >= best["balanced_accuracy"] - 0.01})
    print()
    print(C.md_table(["set", *embedders, "auto (choice)", "auto - best single", "search s"],
                     [[s["set"], *[C.fmt_pct(next(r["balanced_accuracy"] for r in rows if r["set"] == s["set"]
                                                  and r["embedder"] == e)) for e in embedders],
                       f"{C.fmt_pct(s['auto'])} ({s['auto_choice']})",
                       f"{100 * (s['auto'] - s['best_single']):+.1f}", s["search_s"]] for s in summary]))
    C.write_json("auto", {**info, "rows": rows, "summary": summary, "embedders": embedders}, args.out)


if __name__ == "__main__":
    main()
