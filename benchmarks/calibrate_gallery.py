"""Calibrate the gallery and pair-verification thresholds for a target false-accept rate (issue 13).

A gallery accepts a face as a person when the face's distance to the NEAREST enrolled face of the
whole gallery is within the threshold, so a stranger is falsely accepted when any enrolled face is
close enough: the false-accept rate (FAR) grows with the number of people enrolled. This script
measures that rule on real development identities and fits, per identity embedder:

* ``far_thresholds``: target FAR -> distance threshold for a gallery of ``--gallery-size`` people
  enrolled with ``--photos`` photos each (the rule :class:`faceforge.gallery.Gallery` applies);
* ``pair_far_thresholds``: the same for one-to-one verification (``faceforge verify``: two faces,
  one distance).

Identities (faces found with :class:`faceforge.pipeline.FacePipeline`, as galleries find them)
come from ``identity/att_faces``, ``identity/yalefaces``, ``identity/tv_characters``,
``identity/knn_examples`` and ``verification/deepface_pairs`` (identities joined from its
"Yes" pairs; photos in no labelled pair are left out). To measure the procedure on people it never
saw, the identities are split in half ``--splits`` times at random (stratified by data set): the
thresholds are fitted on one half and the false-accept and true-accept rates are measured on the
other. The shipped table is the same fit on every identity. Only numbers are written; no image or
embedding leaves the data folder (embeddings are cached under ``--cache``, outside the repository).

Usage::

    python benchmarks/calibrate_gallery.py [--data ../shared/data] [--gallery-size 30] [--photos 3]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, md_table, start, write_json  # noqa: E402

#: target false-accept rates of the shipped tables
FARS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1]
#: multi-face photos of knn_examples/test and who their main face is
KNN_TEST = {"johnsnow_test1.jpg": "kit_harington", "obama1.jpg": "obama", "alex_lacamoire1.jpg": "alex_lacamoire"}


def collect(data: Path) -> list[tuple[str, str, Path]]:
    """``[(data set, identity, photo), ...]`` of the development identities."""
    out: list[tuple[str, str, Path]] = []
    for ds in ("att_faces", "tv_characters"):
        root = data / "identity" / ds
        for d in sorted(p for p in root.iterdir() if p.is_dir()):
            out += [(ds, f"{ds}/{d.name}", f) for f in sorted(d.iterdir()) if f.is_file() and f.name != "README"]
    yale = data / "identity" / "yalefaces"
    out += [("yalefaces", f"yalefaces/{f.name.split('.')[0]}", f) for f in sorted(yale.iterdir())
            if f.is_file() and f.name.startswith("subject") and "." in f.name and not f.name.endswith(".txt")]
    knn = data / "identity" / "knn_examples"
    for d in sorted((knn / "train").iterdir()):
        out += [("knn_examples", f"knn/{d.name}", f) for f in sorted(d.iterdir())]
    out += [("knn_examples", f"knn/{who}", knn / "test" / f) for f, who in KNN_TEST.items()]
    pairs = data / "verification" / "deepface_pairs"
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    labelled: set[str] = set()
    for table in ("master.csv", "face-recognition-pivot.csv"):
        with open(pairs / table, newline="") as fh:
            for row in csv.DictReader(fh):
                x, y = Path(row["file_x"]).name, Path(row["file_y"]).name
                decision = (row.get("Decision") or row.get("decision") or "").strip()
                labelled |= {x, y}
                a, b = find(x), find(y)
                if decision == "Yes" and a != b:
                    parent[a] = b
    # photos in no labelled pair have no known identity: they can be neither genuine nor strangers
    for f in sorted(pairs.glob("img*.jpg")):
        if f.name in labelled:
            out.append(("deepface_pairs", f"deepface/{find(f.name)}", f))
    return out


def embed_all(items: list[tuple[str, str, Path]], embedder: str, cache: Path) -> dict[str, Any]:
    """Main-face embeddings of every photo (cached in ``cache``); photos without a face are dropped."""
    from faceforge.pipeline import FacePipeline

    path = cache / f"calibration_{embedder}.npz"
    keys = [str(p) for _, _, p in items]
    if path.exists():
        z = np.load(path, allow_pickle=False)
        if list(z["keys"]) == keys:
            return {"emb": z["emb"], "ok": z["ok"], "whole": z["whole"], "seconds": float(z["seconds"])}
    pipe = FacePipeline("photo", embedder)
    emb = np.zeros((len(items), pipe.embedder.dim), np.float32)
    ok = np.zeros(len(items), bool)
    whole = np.zeros(len(items), bool)
    t0 = time.perf_counter()
    for i, (_, _, p) in enumerate(items):
        faces = pipe.embed(p, main_only=True)
        if len(faces):
            emb[i], ok[i], whole[i] = faces.embedding[0], True, bool(faces.whole_image[0])
        if (i + 1) % 100 == 0:
            print(f"  embedded {i + 1}/{len(items)}", flush=True)
    seconds = time.perf_counter() - t0
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, keys=np.array(keys), emb=emb, ok=ok, whole=whole, seconds=seconds)
    return {"emb": emb, "ok": ok, "whole": whole, "seconds": seconds}


def distances(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """``(len(a), len(b))`` distances in the embedder's metric."""
    if metric == "cosine":
        an = a / np.linalg.norm(a, axis=1, keepdims=True)
        bn = b / np.linalg.norm(b, axis=1, keepdims=True)
        return 1.0 - an @ bn.T
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def gallery_trials(ids: np.ndarray, D: np.ndarray, people: list[str], size: int, photos: int, draws: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simulated galleries over the identities ``people``.

    Each draw enrols ``size`` people (``photos`` random photos each, among people with at least
    ``photos + 1``); their other photos are genuine probes, every photo of the people left out is a
    stranger probe. Returns the strangers' nearest-face distances and, per genuine probe, its
    nearest-face distance and whether that face is the right person.
    """
    by = {p: np.flatnonzero(ids == p) for p in people}
    eligible = [p for p in people if len(by[p]) > photos]
    size = min(size, len(eligible))
    imp, gen, right = [], [], []
    for _ in range(draws):
        chosen = rng.choice(len(eligible), size, replace=False)
        enrolled, owner, probes, probe_owner = [], [], [], []
        for j, c in enumerate(chosen):
            idx = rng.permutation(by[eligible[c]])
            enrolled += list(idx[:photos])
            owner += [j] * photos
            probes += list(idx[photos:])
            probe_owner += [j] * (len(idx) - photos)
        inside = {eligible[c] for c in chosen}
        strangers = np.concatenate([by[p] for p in people if p not in inside] or [np.zeros(0, int)])
        enrolled_a, owner_a = np.array(enrolled), np.array(owner)
        if len(strangers):
            imp.append(D[np.ix_(strangers, enrolled_a)].min(1))
        d = D[np.ix_(np.array(probes), enrolled_a)]
        gen.append(d.min(1))
        right.append(owner_a[d.argmin(1)] == np.array(probe_owner))
    return np.concatenate(imp), np.concatenate(gen), np.concatenate(right)


def pair_trials(ids: np.ndarray, D: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distances of every different-person pair and every same-person pair among ``rows``."""
    sub = D[np.ix_(rows, rows)]
    same = ids[rows][:, None] == ids[rows][None]
    iu = np.triu_indices(len(rows), 1)
    return sub[iu][~same[iu]], sub[iu][same[iu]]


def fit_table(impostor: np.ndarray, ndigits: int = 4) -> list[list[float]]:
    """``[[far, threshold], ...]``: the largest distance whose false-accept rate is at most ``far``.

    The shipped table is rounded to 2 decimals (``ndigits=2``): the held-out spread between
    identity splits is several hundredths, so more digits would claim a precision it does not have.
    """
    s = np.sort(impostor)
    table = []
    for far in FARS:
        k = int(np.floor(far * len(s)))  # accept at most k impostors
        thr = float(s[k] - 1e-6) if k < len(s) else float(s[-1])
        table.append([far, round(max(thr, 0.0), ndigits)])
    return table


def rates(impostor: np.ndarray, genuine: np.ndarray, right: np.ndarray | None, thr: float) -> dict[str, float]:
    far = float((impostor <= thr).mean()) if len(impostor) else float("nan")
    ok = genuine <= thr if right is None else (genuine <= thr) & right
    return {"far": round(far, 5), "tar": round(float(ok.mean()), 5), "impostors": int(len(impostor)),
            "genuine": int(len(genuine))}


def split(ids: np.ndarray, dsets: np.ndarray, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Identities in two random halves, each data set split evenly."""
    a: list[str] = []
    b: list[str] = []
    for ds in sorted(set(dsets)):
        first = int(rng.integers(2))  # odd-sized data sets give their extra person to either half
        for k, p in enumerate(rng.permutation(sorted(set(ids[dsets == ds])))):
            (a if (k + first) % 2 == 0 else b).append(str(p))
    return a, b


def spread(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, float)
    return {"mean": round(float(v.mean()), 5), "min": round(float(v.min()), 5), "max": round(float(v.max()), 5)}


def calibrate(name: str, items: list[tuple[str, str, Path]], args: Any) -> dict[str, Any]:
    from faceforge.registry import get_spec

    metric = get_spec(name).input.get("metric", "euclidean")
    e = embed_all(items, name, args.cache)
    ok = e["ok"]
    ids = np.array([i for _, i, _ in items])[ok]
    dsets = np.array([d for d, _, _ in items])[ok]
    D = distances(e["emb"][ok], e["emb"][ok], metric)
    everyone = sorted(set(ids.tolist()))
    print(f"\n### {name}: {int(ok.sum())}/{len(items)} photos with a face ({int(e['whole'][ok].sum())} "
          f"whole-image) of {len(everyone)} identities, embedded in {e['seconds']:.0f} s")
    rng = np.random.default_rng(args.seed)
    n, k = args.gallery_size, args.photos
    # the shipped fit: every identity
    imp, gen, right = gallery_trials(ids, D, everyone, n, k, args.draws * 3, rng)
    p_imp, p_gen = pair_trials(ids, D, np.arange(len(ids)))
    shipped = {"far_thresholds": fit_table(imp, 2), "pair_far_thresholds": fit_table(p_imp, 2),
               "gallery_size": n, "photos_per_person": k}
    old = {str(s): rates(*gallery_trials(ids, D, everyone, s, k, args.draws, rng), 0.6) for s in args.sizes}
    old_pairs = rates(p_imp, p_gen, None, 0.6)
    # the procedure on held-out identities
    held: dict[str, dict[str, list[float]]] = {f"{f:g}": {"far": [], "tar": [], "pair_far": [], "pair_tar": [],
                                                          "thr": [], "pair_thr": []} for f in FARS}
    by_size: dict[str, dict[str, list[float]]] = {str(s): {"far": [], "tar": []} for s in args.sizes}
    for _ in range(args.splits):
        fit, test = split(ids, dsets, rng)
        f_imp, _, _ = gallery_trials(ids, D, fit, n, k, args.draws, rng)
        table = fit_table(f_imp, 2)
        ptable = fit_table(pair_trials(ids, D, np.flatnonzero(np.isin(ids, fit)))[0], 2)
        h_imp, h_gen, h_right = gallery_trials(ids, D, test, n, k, args.draws, rng)
        hp_imp, hp_gen = pair_trials(ids, D, np.flatnonzero(np.isin(ids, test)))
        for (far, thr), (_, pthr) in zip(table, ptable):
            r, pr = rates(h_imp, h_gen, h_right, thr), rates(hp_imp, hp_gen, None, pthr)
            h = held[f"{far:g}"]
            h["far"].append(r["far"]), h["tar"].append(r["tar"]), h["thr"].append(thr)
            h["pair_far"].append(pr["far"]), h["pair_tar"].append(pr["tar"]), h["pair_thr"].append(pthr)
        thr1 = dict(table)[0.01]
        for s in args.sizes:
            r = rates(*gallery_trials(ids, D, test, s, k, args.draws // 3, rng), thr1)
            by_size[str(s)]["far"].append(r["far"]), by_size[str(s)]["tar"].append(r["tar"])
    held_out = {f: {key: spread(v) for key, v in h.items()} for f, h in held.items()}
    sizes = {s: {key: spread(v) for key, v in h.items()} for s, h in by_size.items()}
    print(f"\nheld out: fitted on half of the identities, measured on the other half, {args.splits} random "
          f"splits (mean [min-max]); galleries of {n} people x {k} photos; TAR = the right person accepted")

    def cell(d: dict[str, float], pct: bool = True) -> str:
        f = (lambda x: f"{100 * x:.1f}%") if pct else (lambda x: f"{x:.3f}")
        return f"{f(d['mean'])} [{f(d['min'])}-{f(d['max'])}]"

    rows = []
    for (far, thr), (_, pthr) in zip(shipped["far_thresholds"], shipped["pair_far_thresholds"]):
        h = held_out[f"{far:g}"]
        rows.append([f"{100 * far:g}%", thr, cell(h["far"]), cell(h["tar"]), pthr, cell(h["pair_far"]),
                     cell(h["pair_tar"])])
    print(md_table(["target FAR", "gallery threshold (shipped)", "gallery FAR held out", "gallery TAR held out",
                    "pair threshold (shipped)", "pair FAR held out", "pair TAR held out"], rows))
    print("\nheld out, threshold fitted for 1% at the calibrated size, by gallery size:")
    print(md_table(["people enrolled", "FAR", "TAR"], [[s, cell(v["far"]), cell(v["tar"])] for s, v in sizes.items()]))
    print("\nthe old default 0.6, every identity:")
    print(md_table(["people enrolled", "FAR", "TAR"],
                   [[s, f"{100 * v['far']:.1f}%", f"{100 * v['tar']:.1f}%"] for s, v in old.items()]
                   + [["pairs", f"{100 * old_pairs['far']:.1f}%", f"{100 * old_pairs['tar']:.1f}%"]]))
    print(f"\nshipped far_thresholds      = {shipped['far_thresholds']}")
    print(f"shipped pair_far_thresholds = {shipped['pair_far_thresholds']}")
    return {"photos": int(ok.sum()), "whole_image": int(e["whole"][ok].sum()), "identities": len(everyone),
            "shipped": shipped, "held_out": held_out, "held_out_by_gallery_size_at_1pct": sizes,
            "old_default_0.6": {"gallery_by_size": old, "pairs": old_pairs}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--embedders", nargs="+", default=["dlib-resnet"],
                    help="identity embedders to calibrate (those a gallery can use)")
    ap.add_argument("--gallery-size", type=int, default=30, help="people enrolled in the calibrated gallery")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 10, 20, 30],
                    help="gallery sizes at which the held-out FAR of the 1%% threshold is reported")
    ap.add_argument("--photos", type=int, default=3, help="photos enrolled per person")
    ap.add_argument("--draws", type=int, default=300, help="simulated galleries per fit")
    ap.add_argument("--splits", type=int, default=10, help="random half-splits of the identities")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/faceforge_calibration"),
                    help="where embeddings are cached (outside the repository)")
    args, info = start(ap, "gallery calibration (issue 13)")
    items = collect(args.data)
    print(f"{len(items)} photos of {len({i for _, i, _ in items})} identities")
    results: dict[str, Any] = {**info, "gallery_size": args.gallery_size, "photos_per_person": args.photos,
                               "draws": args.draws, "splits": args.splits, "seed": args.seed, "embedders": {}}
    for name in args.embedders:
        results["embedders"][name] = calibrate(name, items, args)
    write_json("gallery_calibration", results, args.out)


if __name__ == "__main__":
    main()
