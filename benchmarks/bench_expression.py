"""Expression embedder (issue 13): every embedder with the default head on two expression sets.

Sets (from ../shared/data; symlink folders in a temporary directory, nothing is copied):

* ``fer_happy_neutral``: FER2013 "happy" vs "neutral" (a stand-in for smiles), 100 + 100 training
  photos drawn (seeded) from ``emotion/fer2013/train``, tested on 500 + 500 drawn from
  ``emotion/fer2013/public_test``. faceforge's emotion network was trained on FER2013's training
  split (not on public_test), so the test faces are new to every embedder.
* ``seed_emotion4``: web-scraped Angry / Calm / Happy / Sad x 60, split by a seeded stratified half
  (30 per class to train, 30 to test).

Each embedder is trained with :func:`faceforge.train.train` (default head and settings, no
validation split) and measured with :func:`faceforge.train.evaluate` on the test folder, as a user
would; the figure is balanced accuracy. A second table (``expression`` only, from the same cached
embeddings through :func:`faceforge.data.embed_dataset` and :func:`faceforge.heads.make_head`)
compares the layouts that were considered: the 256 penultimate features alone, the 7 class
probabilities alone, both (what the embedder gives), with and without L2 normalisation before the
head.

Usage:
    python benchmarks/bench_expression.py                          # everything (~5 min on 2 cores)
    python benchmarks/bench_expression.py --embedders expression   # one embedder
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

SETS = ("fer_happy_neutral", "seed_emotion4")
EMBEDDERS = ("dlib-resnet", "agegender", "gendernet", "effnet-lite0", "expression")


def _link(files: list[Path], dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for f in files:
        (dst / f.name).symlink_to(f.resolve())


def _sample(folder: Path, n: int | None, rng: random.Random) -> list[Path]:
    files = sorted(f for f in folder.iterdir() if f.is_file())
    rng.shuffle(files)
    return files if n is None else files[:n]


def fer_split(data: Path, dst: Path, n_train: int, n_test: int, train_seed: int,
              test_seed: int) -> tuple[Path, Path]:
    """``n_train`` per class from FER2013 train, ``n_test`` per class from public_test (happy, neutral).

    The two draws have their own seeds, so other training draws can be tested on the same faces.
    """
    fer = data / "emotion" / "fer2013"
    for cls in ("happy", "neutral"):
        _link(_sample(fer / "train" / cls, n_train, random.Random(f"train-{train_seed}-{cls}")), dst / "train" / cls)
        _link(_sample(fer / "public_test" / cls, n_test, random.Random(f"test-{test_seed}-{cls}")), dst / "test" / cls)
    return dst / "train", dst / "test"


def half_split(root: Path, dst: Path, seed: int) -> tuple[Path, Path]:
    """A seeded stratified half: the first half of each shuffled class trains, the rest tests."""
    rng = random.Random(seed)
    for cls in sorted(p for p in root.iterdir() if p.is_dir()):
        files = _sample(cls, None, rng)
        k = len(files) // 2
        _link(files[:k], dst / "train" / cls.name)
        _link(files[k:], dst / "test" / cls.name)
    return dst / "train", dst / "test"


def run_one(name: str, embedder: str, train_dir: Path, test_dir: Path, out_dir: Path, seed: int) -> dict[str, Any]:
    from faceforge.train import evaluate, train

    t = time.perf_counter()
    res = train(train_dir, out_dir / f"{name}-{embedder}.ffm", embedder=embedder, val=0.0, seed=seed,
                progress=False)
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    rep = evaluate(res.model_path, test_dir, progress=False)
    return {"set": name, "embedder": embedder, "head": res.manifest.get("head", {}).get("kind"),
            "train_images": res.manifest.get("data", {}).get("images"), "test_images": rep.get("images"),
            "balanced_accuracy": rep.get("balanced_accuracy"), "accuracy": rep.get("accuracy"),
            "face_sources": rep.get("face_sources"), "train_s": train_s, "eval_s": time.perf_counter() - t}


def layouts(name: str, splits: list[tuple[Path, Path]], seed: int) -> list[dict[str, Any]]:
    """Balanced accuracy of the default head on parts of the ``expression`` embedding, per split.

    Returns one row per (columns, normalisation) with the mean and standard deviation over the
    splits (embeddings come from the cache).
    """
    import numpy as np
    from sklearn.metrics import balanced_accuracy_score

    from faceforge.data import EmbeddingCache, embed_dataset, load_dataset
    from faceforge.embedders.expression import LAYOUT
    from faceforge.heads import make_head

    def xy(folder: Path) -> tuple[Any, Any, list[str]]:
        ed = embed_dataset(load_dataset(folder), embedder="expression", cache=EmbeddingCache(), progress=False)
        return ed.X, ed.y, list(ed.classes)

    f, p = LAYOUT["features"], LAYOUT["probs"]
    parts = {"features (256)": np.r_[f], "probs (7)": np.r_[p], "features + probs (263)": np.r_[f, p]}
    scores: dict[tuple[str, bool], list[float]] = {(part, n): [] for part in parts for n in (False, True)}
    for train_dir, test_dir in splits:
        Xtr, ytr, ctr = xy(train_dir)
        Xte, yte, cte = xy(test_dir)
        if ctr != cte:
            raise SystemExit(f"{name}: train classes {ctr} differ from test classes {cte}")
        for (part, normalize), out in scores.items():
            head = make_head("logreg", seed=seed, normalize=normalize).fit(Xtr[:, parts[part]], ytr)
            pred = np.argmax(head.predict_proba(Xte[:, parts[part]]), axis=1)
            out.append(float(balanced_accuracy_score(yte, pred)))
    return [{"set": name, "columns": part, "normalize": normalize, "splits": len(v),
             "balanced_accuracy_mean": float(np.mean(v)), "balanced_accuracy_sd": float(np.std(v)),
             "balanced_accuracy": v} for (part, normalize), v in scores.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=C.DATA)
    ap.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    ap.add_argument("--embedders", nargs="+", default=list(EMBEDDERS))
    ap.add_argument("--fer-train", type=int, default=100, help="FER2013 training photos per class")
    ap.add_argument("--fer-test", type=int, default=500, help="FER2013 public_test photos per class")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layout-splits", type=int, default=5,
                    help="training draws (FER) / halves (seed_emotion4) for the layout comparison")
    args, info = C.start(ap, "Expression embedder: every embedder on expression sets")
    cache = os.environ.setdefault("FACEFORGE_CACHE", tempfile.mkdtemp(prefix="ff-bench-cache-"))
    print(f"embedding cache: {cache} (cold at the start unless FACEFORGE_CACHE was set)\n")
    t0 = time.perf_counter()
    results: list[dict[str, Any]] = []
    ablation: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ff-bench-expression-") as tmp:
        tmpdir = Path(tmp)

        def split(name: str, seed: int) -> tuple[Path, Path]:
            dst = tmpdir / f"{name}-{seed}"
            if name == "fer_happy_neutral":
                # the test photos stay those of --seed: only the 100 + 100 training photos change
                return fer_split(args.data, dst, args.fer_train, args.fer_test, seed, args.seed)
            return half_split(args.data / "emotion" / "seed_emotion4", dst, seed)

        for name in args.sets:
            tr, te = split(name, args.seed)
            for emb in args.embedders:
                print(f"--- {name} / {emb}", flush=True)
                row = run_one(name, emb, tr, te, tmpdir, args.seed)
                print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
                results.append(row)
            if "expression" in args.embedders and args.layout_splits > 0:
                print(f"--- {name} / expression layouts over {args.layout_splits} splits", flush=True)
                more = [(tr, te)] + [split(name, args.seed + 1 + i) for i in range(args.layout_splits - 1)]
                ablation += layouts(name, more, args.seed)
    total_s = time.perf_counter() - t0
    sets = list(dict.fromkeys(r["set"] for r in results))
    by = {(r["set"], r["embedder"]): r for r in results}
    print(C.md_table(["embedder", *[f"{s} balanced %" for s in sets]],
                     [[e, *[C.fmt_pct(by[(s, e)]["balanced_accuracy"]) if (s, e) in by else "" for s in sets]]
                      for e in args.embedders]))
    if ablation:
        print()
        print(C.md_table(["set", "expression columns", "L2-normalised", "balanced % (mean ± sd over splits)"],
                         [[a["set"], a["columns"], "yes" if a["normalize"] else "no",
                           f"{100 * a['balanced_accuracy_mean']:.1f} ± {100 * a['balanced_accuracy_sd']:.1f}"]
                          for a in ablation]))
    print(f"\ntotal {total_s:.0f} s")
    C.write_json("expression", {**info, "settings": vars(args) | {"data": str(args.data)}, "results": results,
                                "expression_layouts": ablation, "total_s": total_s}, args.out)


if __name__ == "__main__":
    main()
