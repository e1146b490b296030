"""Face verification (same person or not?): faceforge versus face_recognition, accuracy and speed.

Pair sets (from ../shared/data, read in place, never copied):

* ``deepface``: verification/deepface_pairs/master.csv (file_x, file_y, Decision Yes/No), 299
  labelled pairs of 62 celebrity photos (mostly "No": always answering "different" scores 87%).
* ``att``, ``yale``, ``tv``, ``knn``: identity/att_faces (40 x 10 grey 92x112 crops),
  identity/yalefaces (15 subjects x 11 conditions), identity/tv_characters (8 x 5 crops),
  identity/knn_examples/train (5 people, 1-2 photos). Per set: every same-identity pair (a
  seeded random sample of --cap when there are more) plus as many seeded random
  different-identity pairs.

Methods, per image (embeddings cached in memory per image, so each image is timed once):

* ``faceforge[<align>]``: ``FacePipeline("yunet", "dlib-resnet", whole_image_fallback=True)
  .main_face(path)`` (load, detect, align, embed; the largest face). ``--align`` picks how chips
  are cut by setting the embedder's ``alignment``: ``default`` (the registry's), ``dlib5``
  (dlib's 5-point predictor and chip geometry) or ``dlib150`` (our landmarks onto a dlib-like
  template).
* ``face_recognition`` (the peer, installed only in .venv-bench, see setup_bench_env.sh):
  ``load_image_file`` + ``face_locations`` (HOG, upsample 1) + ``face_encodings`` (1 jitter,
  "small" 5-point model); when it finds no face the whole image is used as the location (as a
  user would do with a face crop) and that is counted.

Accuracy: euclidean distance between the two images' main-face embeddings; threshold chosen by
10-fold cross-validation (best threshold on 9 folds, accuracy on the 10th, mean over folds), and
accuracy at the fixed threshold 0.6 (dlib's). Speed: seconds per image end to end (load, detect,
align, embed), mean and median, and the ratio face_recognition / faceforge.

Usage (in the benchmark environment, for the peer):
    bash benchmarks/setup_bench_env.sh && . .venv-bench/bin/activate
    python benchmarks/bench_verify.py                          # everything
    python benchmarks/bench_verify.py --limit 40 --sets deepface tv
    python benchmarks/bench_verify.py --align default dlib5 dlib150
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

import _common as C

SETS = ("deepface", "att", "yale", "tv", "knn")
_IMG_EXT = {".jpg", ".jpeg", ".png", ".pgm", ".gif", ".bmp", ".webp"}


# -- pairs -------------------------------------------------------------------------------------
def deepface_pairs(root: Path) -> list[tuple[Path, Path, bool]]:
    d = root / "verification" / "deepface_pairs"
    out = []
    with open(d / "master.csv", newline="") as f:
        for row in csv.DictReader(f):
            row = {k.strip(): (v or "").strip() for k, v in row.items()}
            out.append((d / row["file_x"], d / row["file_y"], row["Decision"].lower() == "yes"))
    return out


def identities(root: Path, name: str) -> dict[str, list[Path]]:
    base = root / "identity"
    groups: dict[str, list[Path]] = {}
    if name == "yale":
        for p in sorted((base / "yalefaces").iterdir()):
            if p.is_file() and p.name.startswith("subject") and "." in p.name:
                groups.setdefault(p.name.split(".")[0], []).append(p)
        return groups
    folder = {"att": base / "att_faces", "tv": base / "tv_characters", "knn": base / "knn_examples" / "train"}[name]
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(p for p in sub.iterdir() if p.is_file() and p.suffix.lower() in _IMG_EXT)
        if files:
            groups[sub.name] = files
    return groups


def identity_pairs(groups: dict[str, list[Path]], cap: int, rng: random.Random) -> list[tuple[Path, Path, bool]]:
    same = [(a, b, True) for files in groups.values() for a, b in itertools.combinations(files, 2)]
    if len(same) > cap:
        same = rng.sample(same, cap)
    ids = [k for k in groups if groups[k]]
    diff: set[tuple[Path, Path]] = set()
    possible = sum(len(groups[a]) * len(groups[b]) for a, b in itertools.combinations(ids, 2))
    while len(diff) < min(len(same), possible):
        i, j = rng.sample(ids, 2)
        a, b = rng.choice(groups[i]), rng.choice(groups[j])
        if (b, a) not in diff:
            diff.add((a, b))
    return same + [(a, b, False) for a, b in sorted(diff)]


# -- accuracy ----------------------------------------------------------------------------------
def best_threshold(d: np.ndarray, y: np.ndarray) -> float:
    """Threshold maximising accuracy of ``d <= t`` on (d, y); midpoints between sorted distances."""
    u = np.unique(d)
    cands = np.concatenate([[u[0] - 1e-6], (u[:-1] + u[1:]) / 2, [u[-1] + 1e-6]]) if len(u) else np.array([0.6])
    acc = ((d[None, :] <= cands[:, None]) == y[None, :]).mean(axis=1)
    best = np.flatnonzero(acc == acc.max())
    return float(cands[best[len(best) // 2]])  # middle of the best plateau


def cv_accuracy(d: np.ndarray, y: np.ndarray, folds: int, seed: int) -> dict[str, Any]:
    n = len(d)
    if n < folds:
        return {"cv_accuracy": None, "cv_std": None, "cv_thresholds": []}
    idx = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(idx, folds)
    accs, thrs = [], []
    for k in range(folds):
        test = parts[k]
        train = np.concatenate([parts[j] for j in range(folds) if j != k])
        t = best_threshold(d[train], y[train])
        thrs.append(t)
        accs.append(float(((d[test] <= t) == y[test]).mean()))
    return {"cv_accuracy": float(np.mean(accs)), "cv_std": float(np.std(accs)),
            "cv_threshold_mean": float(np.mean(thrs)), "cv_thresholds": [round(t, 4) for t in thrs]}


def score(d: np.ndarray, y: np.ndarray, folds: int, seed: int) -> dict[str, Any]:
    out = cv_accuracy(d, y, folds, seed)
    pred = d <= 0.6
    out.update({
        "n_pairs": int(len(d)), "n_same": int(y.sum()), "n_diff": int((~y).sum()),
        "accuracy_at_0.6": float((pred == y).mean()) if len(d) else None,
        "true_accept_at_0.6": float(pred[y].mean()) if y.any() else None,
        "true_reject_at_0.6": float((~pred[~y]).mean()) if (~y).any() else None,
        "best_possible_accuracy": float(((d <= best_threshold(d, y)) == y).mean()) if len(d) else None,
    })
    return out


# -- methods -----------------------------------------------------------------------------------
class Method:
    """One embedding method with an in-memory per-image cache and per-image timings."""

    def __init__(self, name: str, fn: Callable[[Path], tuple[np.ndarray, bool]]) -> None:
        self.name, self.fn = name, fn
        self.cache: dict[Path, np.ndarray | None] = {}
        self.seconds: dict[Path, float] = {}
        self.fallback: set[Path] = set()
        self.errors: dict[Path, str] = {}

    def embed(self, path: Path) -> np.ndarray | None:
        if path not in self.cache:
            t0 = time.perf_counter()
            try:
                emb, fell_back = self.fn(path)
            except Exception as e:  # noqa: BLE001 - one bad image must not end the benchmark
                self.errors[path] = f"{type(e).__name__}: {e}"
                self.cache[path] = None
                return None
            self.seconds[path] = time.perf_counter() - t0
            self.cache[path] = np.asarray(emb, np.float32)
            if fell_back:
                self.fallback.add(path)
        return self.cache[path]


def faceforge_method(align: str) -> tuple[str, Callable[[Path], tuple[np.ndarray, bool]], dict[str, Any]]:
    from faceforge.embedders import get_embedder
    from faceforge.pipeline import FacePipeline

    emb = get_embedder("dlib-resnet", cached=False)
    default = dict(type(emb).alignment)
    if align != "default":
        emb.alignment = {**default, "template": align}
    pipe = FacePipeline("yunet", emb, whole_image_fallback=True)
    label = f"faceforge[{align}" + (f"={default.get('template')}]" if align == "default" else "]")

    def run(path: Path) -> tuple[np.ndarray, bool]:
        face, e = pipe.main_face(path, str(path))
        return e, face.detector == "whole-image"

    return label, run, {"alignment": dict(emb.alignment)}


def face_recognition_method() -> Callable[[Path], tuple[np.ndarray, bool]]:
    import face_recognition as fr

    def run(path: Path) -> tuple[np.ndarray, bool]:
        img = fr.load_image_file(str(path))
        locs = fr.face_locations(img)  # HOG, number_of_times_to_upsample=1
        fell_back = not locs
        if fell_back:
            h, w = img.shape[:2]
            locs = [(0, w, h, 0)]  # (top, right, bottom, left): the whole image
        main = max(locs, key=lambda t: (t[2] - t[0]) * (t[1] - t[3]))
        return fr.face_encodings(img, [main])[0], fell_back  # num_jitters=1, model="small"

    return run


# -- main --------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=C.DATA)
    ap.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    ap.add_argument("--align", nargs="+", choices=["default", "dlib5", "dlib150", "arcface112"],
                    default=["default", "dlib5", "dlib150"],
                    help="faceforge chip alignments to compare (the embedder's alignment template)")
    ap.add_argument("--cap", type=int, default=300, help="same-identity pairs per identity set at most")
    ap.add_argument("--limit", type=int, default=None, help="at most N pairs per set (seeded sample)")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-peer", action="store_true", help="skip face_recognition")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/verify[_limitN][_tT].json)")
    C.add_threads_arg(ap)
    args = ap.parse_args()
    C.apply_threads(args.threads)

    info = C.header("Face verification: faceforge vs face_recognition")
    if w := C.other_load_warning():
        print(w + "\n")
    if not args.data.exists():
        sys.exit(f"{args.data} not found: this benchmark needs ../shared/data (or --data / $FACEFORGE_DATA).")

    rng = random.Random(args.seed)
    pairs: dict[str, list[tuple[Path, Path, bool]]] = {}
    for s in args.sets:
        p = deepface_pairs(args.data) if s == "deepface" else identity_pairs(identities(args.data, s), args.cap, rng)
        if args.limit and len(p) > args.limit:
            p = random.Random(args.seed).sample(p, args.limit)
        pairs[s] = p
        print(f"set {s}: {len(p)} pairs ({sum(y for *_, y in p)} same, {sum(not y for *_, y in p)} different), "
              f"{len({x for a, b, _ in p for x in (a, b)})} images")
    print()

    methods: list[Method] = []
    method_info: dict[str, Any] = {}
    seen_templates: dict[str, str] = {}
    for a in dict.fromkeys(args.align):
        try:
            label, fn, extra = faceforge_method(a)
        except Exception as e:  # noqa: BLE001
            method_info[f"faceforge[{a}]"] = {"available": False, "error": f"{type(e).__name__}: {e}"}
            print(f"faceforge[{a}]: UNAVAILABLE ({type(e).__name__}: {e})")
            continue
        tpl = repr(sorted(extra["alignment"].items()))
        if tpl in seen_templates:  # e.g. default == dlib150: measure once
            print(f"{label}: same alignment as {seen_templates[tpl]}, not measured twice")
            continue
        seen_templates[tpl] = label
        methods.append(Method(label, fn))
        method_info[label] = {"available": True, **extra}
    if not args.no_peer:
        try:
            methods.append(Method("face_recognition", face_recognition_method()))
            method_info["face_recognition"] = {"available": True, "options": "hog upsample 1, 1 jitter, small model"}
        except Exception as e:  # noqa: BLE001
            method_info["face_recognition"] = {
                "available": False, "error": f"{type(e).__name__}: {e} (run benchmarks/setup_bench_env.sh and "
                                             f"use .venv-bench)"}
            print(f"face_recognition: UNAVAILABLE ({type(e).__name__}: {e}); run benchmarks/setup_bench_env.sh "
                  f"and use .venv-bench/bin/python")

    # warm-up (model loading) on one image, untimed, then drop it from the caches
    first = next(iter(pairs.values()))[0][0] if pairs else None
    for m in list(methods):
        if first is None:
            break
        m.embed(first)
        if first in m.errors:
            print(f"{m.name}: UNAVAILABLE (warm-up failed: {m.errors[first]})")
            method_info[m.name] = {"available": False, "error": m.errors[first]}
            methods.remove(m)
            continue
        m.cache.clear(), m.seconds.clear(), m.fallback.clear()

    results: dict[str, dict[str, Any]] = {}
    for s, plist in pairs.items():
        images = list(dict.fromkeys(x for a, b, _ in plist for x in (a, b)))
        results[s] = {}
        for m in methods:
            for path in tqdm(images, desc=f"{s:>8} {m.name:>26}", leave=False, file=sys.stderr):
                m.embed(path)
            d, y = [], []
            for a, b, same in plist:
                ea, eb = m.cache.get(a), m.cache.get(b)
                if ea is None or eb is None:
                    continue
                d.append(float(np.linalg.norm(ea - eb)))
                y.append(same)
            r = score(np.array(d), np.array(y, bool), args.folds, args.seed)
            secs = [m.seconds[p] for p in images if p in m.seconds]
            r.update({
                "pairs_skipped_errors": len(plist) - len(d),
                "images": len(images),
                "whole_image_fallbacks": sum(p in m.fallback for p in images),
                "errors": {str(p): m.errors[p] for p in images if p in m.errors},
                "s_per_image_mean": float(np.mean(secs)) if secs else None,
                "s_per_image_median": float(np.median(secs)) if secs else None,
            })
            results[s][m.name] = r

    # pooled over every set: accuracy of one threshold for everything, speed over every image
    pooled: dict[str, Any] = {}
    for m in methods:
        d, y = [], []
        for plist in pairs.values():
            for a, b, same in plist:
                ea, eb = m.cache.get(a), m.cache.get(b)
                if ea is not None and eb is not None:
                    d.append(float(np.linalg.norm(ea - eb)))
                    y.append(same)
        r = score(np.array(d), np.array(y, bool), args.folds, args.seed)
        secs = list(m.seconds.values())
        r.update({"images": len(m.cache), "whole_image_fallbacks": len(m.fallback), "errors": len(m.errors),
                  "s_per_image_mean": float(np.mean(secs)) if secs else None,
                  "s_per_image_median": float(np.median(secs)) if secs else None})
        pooled[m.name] = r
    results["all"] = pooled

    peer = "face_recognition" if any(m.name == "face_recognition" for m in methods) else None
    rows = []
    for s, by in results.items():
        for name, r in by.items():
            ratio = ""
            if peer and name != peer and r.get("s_per_image_mean") and by.get(peer, {}).get("s_per_image_mean"):
                ratio = f"{by[peer]['s_per_image_mean'] / r['s_per_image_mean']:.2f}x"
                r["speedup_vs_face_recognition"] = by[peer]["s_per_image_mean"] / r["s_per_image_mean"]
            cv = "n/a" if r["cv_accuracy"] is None else f"{100 * r['cv_accuracy']:.1f} ± {100 * r['cv_std']:.1f}"
            rows.append([s, f"`{name}`", f"{r['n_pairs']} ({r['n_same']}/{r['n_diff']})", cv,
                         C.fmt_pct(r["accuracy_at_0.6"]),
                         f"{C.fmt_pct(r['true_accept_at_0.6'])} / {C.fmt_pct(r['true_reject_at_0.6'])}",
                         f"{r['whole_image_fallbacks']}/{r['images']}",
                         "n/a" if r["s_per_image_mean"] is None else f"{1e3 * r['s_per_image_mean']:.0f}",
                         "n/a" if r["s_per_image_median"] is None else f"{1e3 * r['s_per_image_median']:.0f}",
                         ratio])
    print()
    print(C.md_table(["set", "method", "pairs (same/diff)", f"acc % ({args.folds}-fold CV)", "acc % @0.6",
                      "TAR / TRR % @0.6", "no face (whole image)", "ms/image mean", "ms/image median",
                      "speed vs face_recognition"], rows))
    print()
    print("acc (CV): threshold chosen on 9 folds, accuracy on the 10th, mean ± std over folds. TAR / TRR: same")
    print("pairs accepted / different pairs rejected at 0.6. 'no face': images where the detector found no")
    print("face and the whole image was embedded. ms/image: load + detect + align + embed, first (uncached)")
    print("embedding of each image, one process. 'speed vs face_recognition' = its ms/image mean / this row's")
    print(f"(> 1: faceforge is faster). load average at the end: {[round(x, 2) for x in os.getloadavg()]}")
    for m in methods:
        if m.errors:
            print(f"{m.name}: {len(m.errors)} images failed, e.g. {next(iter(m.errors.items()))}")

    name = "verify" + (f"_limit{args.limit}" if args.limit else "")
    name += f"_t{args.threads}" if args.threads else ""
    C.write_json(name, {**info, "data": str(args.data), "sets": args.sets, "cap": args.cap, "limit": args.limit,
                        "folds": args.folds, "seed": args.seed, "methods": method_info, "results": results}, args.out)


if __name__ == "__main__":
    main()
