"""More identity accuracy from the same weights (issue 19.1): test-time augmentation, alignment, score normalisation.

Every variant embeds the same main face (found once per image by ``FacePipeline("yunet", "dlib-resnet",
whole_image_fallback=True)``'s finder, as ``benchmarks/bench_verify.py`` does) with dlib-resnet, and is scored on
the pair sets of ``bench_verify.py`` (its pair construction is reused: ``deepface`` = verification/deepface_pairs,
``att``/``yale``/``tv``/``knn`` = same-identity pairs of ``identity/*`` plus as many seeded different-identity pairs):

* ``fast``: today's default (template ``dlib150``, 150 px chip, one embedding);
* ``flip``: the chip and its mirror embedded, the two embeddings averaged (plain mean, as dlib's ``num_jitters``
  averages); ``flip_rn``: the same mean rescaled to the two embeddings' mean norm;
* ``jitter5`` / ``jitter10``: dlib's ``jitter_image`` idea (k seeded crops: +-2% shift, 0.97-1.0 scale, +-3 deg
  rotation, a mirror half of the time; the first is the plain chip), averaged;
* alignment: ``dlib5`` (dlib's own 5-point predictor and ``get_face_chip`` geometry, padding 0.25, what the
  ResNet was trained on), its padding 0.2 / 0.3, and ``dlib150`` with the face 5% smaller / larger in the chip
  (``dlib150@0.95`` = more context); and the best alignment with ``flip``;
* score normalisation (on ``fast`` and ``flip``): symmetric z-norm (``snorm``) and adaptive s-norm over the
  50 nearest cohort faces (``asnorm50``), the cohort being the faces of the OTHER pair sets (never the set
  scored). A normalised score has no "default" threshold: only its cross-validated accuracy is reported.

Accuracy: euclidean distance (or normalised score) per pair; threshold chosen by 10-fold cross-validation (LFW
protocol: best threshold on 9 folds, accuracy on the 10th, mean over folds; leave-one-out for a set with fewer
than 10 pairs, i.e. ``knn``) and accuracy at dlib's default 0.6.
Also threshold-free: equal error rate and (1 - ROC AUC), and "dense" versions of att / yale / tv (every
same-identity pair, as many different pairs: the same images, far more pairs, less noise).

Operating points (``--calibrate``): calibrate_gallery.py's photos and procedure (81 development identities) fit
each variant's false-accept tables (pairs; galleries of 30 people x 3 photos) and give the share of genuine
pairs / probes accepted at 1% and 0.1% FAR; for ``fast`` this reproduces the tables shipped in the registry.

Cost: milliseconds per face of align + embed for each variant, measured in a separate pass on --time-faces faces,
every variant on the same face in turn (so other load hits them alike), with the default embedder (every core)
and a single-threaded one, plus detection per image (the same for every variant), single process. Note the load
average printed with the results. Embeddings are cached in --cache (outside the repository).

Usage::

    nice python benchmarks/bench_accurate_identity.py [--sets deepface att yale tv knn] [--limit N]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import bench_verify as BV  # noqa: E402

SIZE = 150


# -- chip geometry -----------------------------------------------------------------------------
def _scaled_template(f: float):
    from faceforge.align import TEMPLATES, Template

    t = TEMPLATES["dlib150"]
    return Template(f"dlib150@{f}", (0.5 + (t.points - 0.5) * f).astype(np.float32), t.size, t.fallback_margin / f,
                    t.fallback_shift)


def base_matrix(align: str, image: np.ndarray, faces: Any) -> np.ndarray:
    """``(n, 2, 3)`` image-to-chip affines of alignment ``align``."""
    from faceforge.align import face_transforms
    from faceforge.align.dlib_chip import dlib5_transforms

    if align.startswith("dlib5"):
        pad = float(align.split("@")[1]) if "@" in align else 0.25
        return dlib5_transforms(image, faces, SIZE, pad)
    if align.startswith("dlib150@"):
        return face_transforms(faces, _scaled_template(float(align.split("@")[1])), SIZE)
    return face_transforms(faces, "dlib150", SIZE)


def jitters(k: int, seed: int = 0) -> list[np.ndarray]:
    """k chip-to-chip ``(3, 3)`` affines after dlib's ``jitter_image`` (the first is the identity)."""
    rng = np.random.default_rng(seed)
    out = [np.eye(3)]
    c = (SIZE - 1) / 2
    inner = SIZE - 6  # dlib: shrink_rect(get_rect(img), 3)
    while len(out) < k:
        tx, ty = rng.uniform(-0.02, 0.02, 2) * inner
        scale = rng.uniform(0.97, 0.99999)  # box side = inner / scale: a slightly wider view
        ang = np.deg2rad(rng.uniform(-3, 3))
        s = scale * SIZE / inner  # chip px per source px
        # source square centred at (c + tx, c + ty), rotated by ang, mapped onto the chip
        ca, sa = np.cos(ang) * s, np.sin(ang) * s
        m = np.array([[ca, sa, 0], [-sa, ca, 0], [0, 0, 1.0]])
        m[:2, 2] = np.array([c, c]) - m[:2, :2] @ np.array([c + tx, c + ty])
        if rng.random() > 0.5:
            m = np.array([[-1, 0, SIZE - 1], [0, 1, 0], [0, 0, 1.0]]) @ m
        out.append(m)
    return out


FLIP = [np.eye(3), np.array([[-1, 0, SIZE - 1], [0, 1, 0], [0, 0, 1.0]])]


def make_variant(align: str, aug: list[np.ndarray], renorm: bool = False) -> Callable[..., np.ndarray]:
    from faceforge.align import warp_chips

    def run(emb: Any, image: np.ndarray, faces: Any) -> np.ndarray:
        base = base_matrix(align, image, faces)[0]
        b3 = np.vstack([base, [0, 0, 1]])
        if len(aug) == 1:
            chips = warp_chips(image, base[None], SIZE)
        elif aug is FLIP:  # exactly the mirrored chip
            c = warp_chips(image, base[None], SIZE)
            chips = np.concatenate([c, c[:, :, ::-1]])
        else:
            chips = warp_chips(image, np.stack([(a @ b3)[:2] for a in aug]), SIZE)
        e = np.asarray(emb.embed(np.ascontiguousarray(chips)), np.float32)
        m = e.mean(0)
        if renorm:
            m = m * (np.linalg.norm(e, axis=1).mean() / max(float(np.linalg.norm(m)), 1e-12))
        return m

    return run


def variants(best_align: str | None = None) -> dict[str, Callable[..., np.ndarray]]:
    one = [np.eye(3)]
    v = {
        "fast": make_variant("dlib150", one),
        "flip": make_variant("dlib150", FLIP),
        "flip_rn": make_variant("dlib150", FLIP, renorm=True),
        "jitter5": make_variant("dlib150", jitters(5)),
        "jitter10": make_variant("dlib150", jitters(10)),
        "dlib5": make_variant("dlib5", one),
        "dlib5@0.2": make_variant("dlib5@0.2", one),
        "dlib5@0.3": make_variant("dlib5@0.3", one),
        "dlib150@0.95": make_variant("dlib150@0.95", one),
        "dlib150@1.05": make_variant("dlib150@1.05", one),
        "dlib5+flip": make_variant("dlib5", FLIP),
        "dlib5@0.3+flip": make_variant("dlib5@0.3", FLIP),
        "dlib150@0.95+flip": make_variant("dlib150@0.95", FLIP),
    }
    return v


def auc_eer(d: np.ndarray, y: np.ndarray) -> dict[str, float | None]:
    """Threshold-free separation: ROC AUC (P[impostor distance > genuine distance]) and equal error rate."""
    g, i = d[y], d[~y]
    if not len(g) or not len(i):
        return {"auc": None, "eer": None}
    order = np.argsort(np.concatenate([g, i]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    auc = 1.0 - (ranks[: len(g)].sum() - len(g) * (len(g) + 1) / 2) / (len(g) * len(i))
    ts = np.unique(d)
    frr = np.array([(g > t).mean() for t in ts])
    far = np.array([(i <= t).mean() for t in ts])
    k = int(np.argmin(np.abs(frr - far)))
    return {"auc": float(auc), "eer": float((frr[k] + far[k]) / 2)}


def load_cache(path: Path | None) -> dict[str, np.ndarray]:
    if path is None or not path.exists():
        return {}
    z = np.load(path, allow_pickle=False)
    return {k: z[k] for k in z.files}


def save_cache(path: Path | None, cache: dict[str, np.ndarray]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **cache)


# -- score normalisation -----------------------------------------------------------------------
def cohort_stats(e: np.ndarray, cohort: np.ndarray, top: int | None) -> tuple[np.ndarray, np.ndarray]:
    d = np.linalg.norm(e[:, None, :] - cohort[None], axis=2)
    if top:
        d = np.sort(d, axis=1)[:, :top]
    return d.mean(1), d.std(1).clip(1e-6)


def normalised(d: np.ndarray, sa: tuple, sb: tuple) -> np.ndarray:
    return 0.5 * ((d - sa[0]) / sa[1] + (d - sb[0]) / sb[1])


# -- calibration -------------------------------------------------------------------------------
def calibrate(args: Any, V: dict[str, Callable[..., np.ndarray]], emb: Any, cache: dict[str, np.ndarray]
              ) -> dict[str, Any]:
    """False-accept tables and TAR at 1% FAR of ``fast`` and the ``--calibrate`` variants, with
    calibrate_gallery.py's procedure and photos (faces found by ``FacePipeline("photo", ...)``, no
    whole-image fallback); the TAR is measured on the identities the table is fitted on."""
    import calibrate_gallery as CG
    from faceforge.pipeline import FacePipeline
    from faceforge.sources import load_image

    items = CG.collect(args.data)
    finder = FacePipeline("photo", emb).finder
    names = ["fast"] + [v for v in args.calibrate if v != "fast"]
    E: dict[str, list[np.ndarray]] = {k: [] for k in names}
    ok = []
    for _, _, p in items:
        if all(f"cal|{k}|{p}" in cache for k in names):
            ok.append(cache[f"cal|fast|{p}"].size > 0)
        else:
            faces, det_img, _ = finder.find_scaled(load_image(p))
            ok.append(bool(len(faces)))
            for k in names:
                cache[f"cal|{k}|{p}"] = V[k](emb, det_img, faces[:1]) if len(faces) else np.zeros(0, np.float32)
        if ok[-1]:
            for k in names:
                E[k].append(cache[f"cal|{k}|{p}"])
    save_cache(args.cache, cache)
    ok_a = np.array(ok)
    ids = np.array([i for _, i, _ in items])[ok_a]
    out: dict[str, Any] = {"photos": int(ok_a.sum()), "identities": len(set(ids.tolist()))}
    print(f"\ncalibration: {out['photos']} photos of {out['identities']} identities (calibrate_gallery.py's)")
    rows = []
    for name in names:
        D = CG.distances(np.stack(E[name]), np.stack(E[name]), "euclidean")
        rng = np.random.default_rng(args.seed)
        imp, gen, right = CG.gallery_trials(ids, D, sorted(set(ids.tolist())), 30, 3, 900, rng)
        p_imp, p_gen = CG.pair_trials(ids, D, np.arange(len(ids)))
        r = out[name] = {"far_thresholds": CG.fit_table(imp, 2), "pair_far_thresholds": CG.fit_table(p_imp, 2)}
        for far in (0.001, 0.01):
            r[f"pair_tar_at_{far:g}"] = CG.rates(p_imp, p_gen, None, dict(CG.fit_table(p_imp, 4))[far])["tar"]
            r[f"gallery_tar_at_{far:g}"] = CG.rates(imp, gen, right, dict(CG.fit_table(imp, 4))[far])["tar"]
        rows.append([f"`{name}`", f"{100 * r['pair_tar_at_0.01']:.2f}", f"{100 * r['pair_tar_at_0.001']:.2f}",
                     f"{100 * r['gallery_tar_at_0.01']:.2f}", f"{100 * r['gallery_tar_at_0.001']:.2f}",
                     dict(r["pair_far_thresholds"])[0.01], dict(r["far_thresholds"])[0.01]])
        # the same procedure on people the table never saw: fitted on half of the identities (each
        # data set split evenly), measured on the other half; the same splits for every variant
        dsets = np.array([d for d, _, _ in items])[ok_a]
        srng = np.random.default_rng(args.seed + 1)
        held: dict[str, list[float]] = {"pair_far": [], "pair_tar": [], "gallery_far": [], "gallery_tar": []}
        for _ in range(args.splits):
            fit, test = CG.split(ids, dsets, srng)
            f_imp = CG.gallery_trials(ids, D, fit, 30, 3, 300, srng)[0]
            f_pimp = CG.pair_trials(ids, D, np.flatnonzero(np.isin(ids, fit)))[0]
            h_imp, h_gen, h_right = CG.gallery_trials(ids, D, test, 30, 3, 300, srng)
            hp_imp, hp_gen = CG.pair_trials(ids, D, np.flatnonzero(np.isin(ids, test)))
            g = CG.rates(h_imp, h_gen, h_right, dict(CG.fit_table(f_imp, 4))[0.01])
            pr = CG.rates(hp_imp, hp_gen, None, dict(CG.fit_table(f_pimp, 4))[0.01])
            held["gallery_far"].append(g["far"]), held["gallery_tar"].append(g["tar"])
            held["pair_far"].append(pr["far"]), held["pair_tar"].append(pr["tar"])
        r["held_out_at_0.01"] = {k: CG.spread(v) for k, v in held.items()}
        print(f"{name}: held out ({args.splits} half-splits), 1% FAR: " + ", ".join(
            f"{k} {100 * v['mean']:.2f}% [{100 * v['min']:.2f}-{100 * v['max']:.2f}]"
            for k, v in r["held_out_at_0.01"].items()))
        print(f"{name}: pair_far_thresholds = {r['pair_far_thresholds']}")
        print(f"{name}: far_thresholds      = {r['far_thresholds']}")
    print()
    print(C.md_table(["variant", "pair TAR % @1% FAR", "pair TAR % @0.1% FAR", "gallery-of-30 TAR % @1% FAR",
                      "gallery TAR % @0.1% FAR", "pair threshold @1%", "gallery threshold @1%"], rows))
    return out


V_FAST = make_variant("dlib150", [np.eye(3)])


# -- main --------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=C.DATA)
    ap.add_argument("--sets", nargs="+", choices=BV.SETS, default=list(BV.SETS))
    ap.add_argument("--cap", type=int, default=300, help="same-identity pairs per identity set at most")
    ap.add_argument("--limit", type=int, default=None, help="at most N pairs per set (seeded sample)")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cohort", type=int, default=300, help="cohort faces (from the other sets) for score norms")
    ap.add_argument("--time-faces", type=int, default=40, help="faces in the cost pass")
    ap.add_argument("--time-rounds", type=int, default=3)
    ap.add_argument("--dense-cap", type=int, default=5000,
                    help="the 'dense' pair sets: up to this many same pairs per identity set (every one there "
                         "is, for these sets) and as many different pairs; less noisy than the --cap sets")
    ap.add_argument("--calibration-only", action="store_true",
                    help="only the false-accept tables (calibrate_gallery.py's photos) and their held-out check")
    ap.add_argument("--splits", type=int, default=20, help="random half-splits of the identities (held out)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/faceforge_accurate_identity.npz"),
                    help="embeddings cache (outside the repository; delete it after changing a variant)")
    ap.add_argument("--calibrate", nargs="*", default=["flip", "jitter5", "dlib5@0.3+flip"],
                    help="variants whose false-accept tables are fitted (calibrate_gallery.py's procedure) beside "
                         "fast's; none to skip")
    args, info = C.start(ap, "Accurate identity: flip / jitter TTA, alignment, score normalisation (dlib-resnet)")
    if w := C.other_load_warning():
        print(w + "\n")

    from faceforge.embedders import get_embedder
    from faceforge.pipeline import FacePipeline
    from faceforge.sources import load_image

    rng = random.Random(args.seed)
    pairs: dict[str, list[tuple[Path, Path, bool]]] = {}
    for s in args.sets:
        p = BV.deepface_pairs(args.data) if s == "deepface" else BV.identity_pairs(
            BV.identities(args.data, s), args.cap, rng)
        if args.limit and len(p) > args.limit:
            p = random.Random(args.seed).sample(p, args.limit)
        pairs[s] = p
    for s in args.sets:  # the dense sets: the same images, many more pairs
        if s in ("att", "yale", "tv"):
            pairs[f"{s}-dense"] = BV.identity_pairs(BV.identities(args.data, s), args.dense_cap,
                                                    random.Random(args.seed + 7))
    for s, p in pairs.items():
        print(f"set {s}: {len(p)} pairs ({sum(y for *_, y in p)} same), "
              f"{len({x for a, b, _ in p for x in (a, b)})} images")

    emb = get_embedder("dlib-resnet")
    pipe = FacePipeline("yunet", emb, whole_image_fallback=True)
    V = variants()
    if args.calibration_only:  # the false-accept tables and their held-out check alone
        cache = load_cache(args.cache)
        cal = calibrate(args, V, emb, cache)
        C.write_json("accurate_identity_calibration", {**info, "calibration": cal, "seed": args.seed,
                                                       "splits": args.splits}, args.out)
        return
    images = list(dict.fromkeys(x for pl in pairs.values() for a, b, _ in pl for x in (a, b)))
    found: dict[Path, tuple[np.ndarray, Any]] = {}
    det_s: list[float] = []
    E: dict[str, dict[Path, np.ndarray]] = {k: {} for k in V}
    cache = load_cache(args.cache)
    t_start = time.perf_counter()
    for i, path in enumerate(images):
        t0 = time.perf_counter()
        img = load_image(path)
        faces, det_img, _ = pipe.finder.find_scaled(img)
        det_s.append(time.perf_counter() - t0)
        faces = faces[:1]
        if not len(faces):
            continue
        found[path] = (det_img, faces)
        for k, fn in V.items():
            ck = f"{k}|{path}"
            if ck not in cache:
                cache[ck] = fn(emb, det_img, faces)
            E[k][path] = cache[ck]
        if (i + 1) % 100 == 0:
            print(f"  {i + 1}/{len(images)} images, {time.perf_counter() - t_start:.0f} s", flush=True)
    save_cache(args.cache, cache)
    print(f"{len(found)}/{len(images)} images with a face; whole-image fallbacks: "
          f"{sum(f.detector == 'whole-image' for _, f in found.values())}")

    # -- accuracy ----------------------------------------------------------------------------
    set_images = {s: set(x for a, b, _ in pl for x in (a, b)) for s, pl in pairs.items()}
    results: dict[str, dict[str, Any]] = {}
    for s, plist in pairs.items():
        results[s] = {}
        ok = [(a, b, y) for a, b, y in plist if a in found and b in found]
        y = np.array([t for *_, t in ok], bool)
        for k in V:
            d = np.array([float(np.linalg.norm(E[k][a] - E[k][b])) for a, b, _ in ok])
            results[s][k] = {**BV.score(d, y, min(args.folds, len(d)), args.seed), **auc_eer(d, y)}
        others = [p for p in found if p not in set_images[s]]
        cohort_paths = random.Random(args.seed).sample(others, min(args.cohort, len(others)))
        for k in ("fast", "flip"):
            cohort = np.stack([E[k][p] for p in cohort_paths])
            for nm, top in (("snorm", None), ("asnorm50", 50)):
                ea = np.stack([E[k][a] for a, _, _ in ok])
                eb = np.stack([E[k][b] for _, b, _ in ok])
                d = np.linalg.norm(ea - eb, axis=1)
                sc = normalised(d, cohort_stats(ea, cohort, top), cohort_stats(eb, cohort, top))
                r = BV.cv_accuracy(sc, y, min(args.folds, len(sc)), args.seed)
                r.update({"n_pairs": int(len(sc)), "accuracy_at_0.6": None, "cohort": len(cohort_paths)})
                results[s][f"{k}+{nm}"] = r
    # pooled: one threshold for all sets
    pooled = {}
    for k in V:
        d, y = [], []
        for plist in (pl for s, pl in pairs.items() if not s.endswith("-dense")):
            for a, b, t in plist:
                if a in found and b in found:
                    d.append(float(np.linalg.norm(E[k][a] - E[k][b])))
                    y.append(t)
        pooled[k] = {**BV.score(np.array(d), np.array(y, bool), args.folds, args.seed),
                     **auc_eer(np.array(d), np.array(y, bool))}
    results["all"] = pooled

    # -- cost --------------------------------------------------------------------------------
    # every variant on the same face in turn (load changes hit them alike), with the default embedder
    # (every core) and a single-threaded one (CPU cost per face, what throughput on a busy machine pays)
    tpaths = random.Random(args.seed + 1).sample(list(found), min(args.time_faces, len(found)))
    emb1 = get_embedder("dlib-resnet", threads=1)
    cost: dict[str, dict[str, list[float]]] = {"default": {k: [] for k in V}, "1thread": {k: [] for k in V}}
    for _ in range(args.time_rounds):
        for p in tpaths:
            det_img, faces = found[p]
            for mode, e in (("default", emb), ("1thread", emb1)):
                for k, fn in V.items():
                    t0 = time.perf_counter()
                    fn(e, det_img, faces)
                    cost[mode][k].append(time.perf_counter() - t0)
    det_ms = 1e3 * float(np.median(det_s))
    costs: dict[str, dict[str, float]] = {}
    for k in V:
        c = costs[k] = {}
        for mode in ("default", "1thread"):
            v = cost[mode][k]
            c[f"align_embed_ms_median_{mode}"] = 1e3 * float(np.median(v))
            c[f"x_fast_align_embed_{mode}"] = float(np.median(v) / np.median(cost[mode]["fast"]))
        c["align_embed_ms_median"] = c["align_embed_ms_median_default"]
        c["x_fast_align_embed"] = c["x_fast_align_embed_default"]
        c["per_face_ms_with_detection"] = c["align_embed_ms_median"] + det_ms
        c["x_fast_per_face"] = c["per_face_ms_with_detection"] / costs["fast"]["per_face_ms_with_detection"]

    # -- report ------------------------------------------------------------------------------
    sets = list(pairs) + ["all"]
    rows = []
    names = list(V) + [f"{k}+{n}" for k in ("fast", "flip") for n in ("snorm", "asnorm50")]
    for k in names:
        row = [f"`{k}`"]
        for s in sets:
            r = results[s].get(k)
            if r is None or r.get("cv_accuracy") is None:
                row.append("n/a")
                continue
            base = results[s]["fast"]["cv_accuracy"]
            at = r.get("accuracy_at_0.6")
            row.append(f"{100 * r['cv_accuracy']:.2f} ({100 * (r['cv_accuracy'] - base):+.2f})"
                       + ("" if at is None else f" / {100 * at:.1f}"))
        base_k = k.split("+snorm")[0].split("+asnorm50")[0]
        c = costs.get(base_k)
        row.append("n/a" if c is None else f"{c['align_embed_ms_median']:.1f} ({c['x_fast_align_embed']:.2f}x)")
        row.append("n/a" if c is None else
                   f"{c['align_embed_ms_median_1thread']:.1f} ({c['x_fast_align_embed_1thread']:.2f}x)")
        row.append("n/a" if c is None else f"{c['x_fast_per_face']:.2f}x")
        rows.append(row)
    print()
    print(C.md_table(["variant"] + [f"{s} CV % (vs fast) / @0.6" for s in sets]
                     + ["align+embed ms/face (x fast)", "1 thread: align+embed ms/face (x fast)",
                        "per face with detection (x fast)"], rows))
    print("\nthreshold-free: EER % (lower is better) / AUC x 1e4 errors ((1 - AUC) x 10^4)")
    print(C.md_table(["variant"] + sets, [[f"`{k}`"] + [
        "n/a" if results[s][k].get("eer") is None else
        f"{100 * results[s][k]['eer']:.2f} / {1e4 * (1 - results[s][k]['auc']):.1f}" for s in sets] for k in V]))
    print("\npairs: " + ", ".join(f"{s} {results[s]['fast']['n_pairs']}" for s in sets))
    print(f"detection: {det_ms:.1f} ms/image median. load average at the end: "
          f"{[round(x, 2) for x in os.getloadavg()]}")
    calibration = calibrate(args, V, emb, cache) if args.calibrate else None
    C.write_json("accurate_identity", {**info, "data": str(args.data), "sets": args.sets, "cap": args.cap,
                                       "calibration": calibration, "limit": args.limit, "folds": args.folds,
                                       "seed": args.seed,
                                       "cohort": args.cohort, "detection_ms_per_image_median": det_ms,
                                       "results": results, "cost": costs,
                                       "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}, args.out)


if __name__ == "__main__":
    main()
