"""Gender and age with test-time augmentation and an age calibration (issue 19, point 3), measured.

Every UTKFace photo of ../shared/data/utkface goes through what ``Analyzer`` does (the photo
finder, the main face, dlib's 5-point 64x64 chip, the ``agegender`` embedder); per face the chip
and its variants (mirror image, small scale / shift / rotation jitters;
:mod:`faceforge.attributes.tta`) are embedded once and cached (``--cache``). Then, all in numpy:

* the shipped gender and age heads on the fixed held-out fifth (``scripts/train_attributes.py``
  never trains on it) with each averaging: the embeddings' mean, or the heads' outputs' mean;
* the same averagings on development data only (out-of-fold heads on the training photos):
  what chose the preset (:data:`faceforge.attributes.tta.ACCURATE_JITTERS`);
* age calibrations fitted on out-of-fold predictions of the *training* photos only (isotonic,
  and two maps that invert the bias conditional on the true age), applied to the shipped head's
  output on the held-out fifth;
* MAE overall and by age band, gender accuracy (overall, adults, under 13), per-face cost.

    nice python benchmarks/bench_accurate_attributes.py [--limit N] [--cache /tmp/utk_tta.npz]
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
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import _common as C  # noqa: E402
from train_attributes import held_out  # noqa: E402

#: The jitters measured, by name (see faceforge.attributes.tta.Jitter).
JITTERS: dict[str, tuple[float, float, float, float]] = {
    "scale0.95": (0.95, 0, 0, 0), "scale1.05": (1.05, 0, 0, 0),
    "left": (1, -0.03, 0, 0), "right": (1, 0.03, 0, 0), "up": (1, 0, -0.03, 0), "down": (1, 0, 0.03, 0),
    "rot-5": (1, 0, 0, -5), "rot+5": (1, 0, 0, 5),
}
BANDS = ((0, 13), (13, 20), (20, 40), (40, 60), (60, 200))


def embed_all(data: Path, limit: int | None, cache: Path) -> dict[str, np.ndarray]:
    """Per photo: held-out flag, labels, and the embeddings of every chip variant (cached)."""
    if cache.is_file():
        z = dict(np.load(cache, allow_pickle=False))
        if limit is None or len(z["name"]) >= limit:
            print(f"embeddings from {cache}", flush=True)
            return {k: v[:limit] if limit else v for k, v in z.items()}
    from faceforge.attributes import load_attribute
    from faceforge.attributes.tta import augmented_chips, chip_transforms
    from faceforge.pipeline import FaceFinder
    from faceforge.sources import load_image

    rows = list(csv.DictReader(open(data / "utkface" / "labels.csv")))[:limit]
    clf = load_attribute("age")
    pipe = clf.pipeline
    emb = pipe.embedder
    alignment = {**emb.alignment, **pipe.alignment}
    finder = FaceFinder("photo", crops="auto")
    E, secs = [], []
    for i, r in enumerate(rows):
        img = load_image(data / "utkface" / "images" / r["file"])
        faces, det, _ = finder.find_scaled(img)
        faces = faces[:1]
        t0 = time.perf_counter()
        mats, size = chip_transforms(det, faces, alignment)
        chips = augmented_chips(det, mats, size, flip=True, jitters=list(JITTERS.values()))[0]
        if i < 5:  # variant 0 is exactly the chip the fast path embeds
            np.testing.assert_array_equal(chips[0], pipe.chips(det, faces)[0])
        E.append(emb.embed(chips))
        secs.append(time.perf_counter() - t0)
        if i % 500 == 0:
            print(f"  {i}/{len(rows)}", flush=True)
    out = {"name": np.array([r["file"] for r in rows]), "held": np.array([held_out(r["file"]) for r in rows]),
           "age": np.array([float(r["age"]) for r in rows]), "gender": np.array([r["gender"] for r in rows]),
           "E": np.stack(E).astype(np.float32), "secs": np.array(secs)}
    np.savez(cache, **out)
    return out


def variant_index(flip: bool, jitters: tuple[str, ...]) -> list[int]:
    """Indices into the cached variants: 0 the chip, 1.. the jitters, then the mirror images of all."""
    names = ["chip", *JITTERS]
    idx = [0] + [names.index(j) for j in jitters]
    return idx + [i + len(names) for i in idx] if flip else idx


def _band(lo: int, hi: int) -> str:
    return f"{lo}-{hi - 1}" if hi < 200 else f"{lo}+"


def gender_age(g_true: np.ndarray, g_pred: np.ndarray, a_true: np.ndarray, a_pred: np.ndarray) -> dict[str, Any]:
    err = np.abs(a_true - a_pred)
    return {"age_mae": float(err.mean()),
            "age_bias": float(np.mean(a_pred - a_true)),
            "age_mae_by_band": {_band(lo, hi): float(err[(a_true >= lo) & (a_true < hi)].mean()) for lo, hi in BANDS},
            "age_bias_by_band": {_band(lo, hi): float((a_pred - a_true)[(a_true >= lo) & (a_true < hi)].mean())
                                 for lo, hi in BANDS},
            "gender_accuracy": float(np.mean(g_true == g_pred)),
            "gender_balanced_accuracy": float(np.mean([np.mean(g_pred[g_true == c] == c) for c in np.unique(g_true)])),
            "gender_accuracy_adults": float(np.mean((g_true == g_pred)[a_true >= 18])),
            "gender_accuracy_under_13": float(np.mean((g_true == g_pred)[a_true < 13]))}


def oof_predictions(E: np.ndarray, age: np.ndarray, gender: np.ndarray, configs: dict[str, Any]) -> dict[str, Any]:
    """Development data only: 5-fold out-of-fold ridge (alpha 10, the shipped model's choice) and
    logistic (C 0.1, balanced) heads on the fast embeddings of the training photos, read on each
    averaging of the held-back fold; returns per config the age and male-probability predictions."""
    from sklearn.linear_model import LogisticRegression, Ridge

    from faceforge.heads.splits import internal_folds

    g = (gender == "male").astype(int)
    out = {k: (np.zeros(len(age)), np.zeros(len(age))) for k in configs}
    for tr, te in internal_folds(age, None, 0, max_folds=5):
        x0 = E[tr, 0].astype(np.float64)
        mu, sd = x0.mean(0), x0.std(0) + 1e-12
        r = Ridge(alpha=10.0).fit((x0 - mu) / sd, age[tr])
        lg = LogisticRegression(C=0.1, class_weight="balanced", max_iter=1000).fit((x0 - mu) / sd, g[tr])
        for k, (flip, jit) in configs.items():
            z = (E[te][:, variant_index(flip, jit)].mean(axis=1) - mu) / sd
            out[k][0][te], out[k][1][te] = r.predict(z), lg.predict_proba(z)[:, 1]
    return out


def piecewise(values: np.ndarray, kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
    """Piecewise-linear map through the knots, slope 1 past the ends."""
    v = np.asarray(values, np.float64)
    out = np.interp(v, kx, ky)
    return np.where(v < kx[0], ky[0] + v - kx[0], np.where(v > kx[-1], ky[-1] + v - kx[-1], out))


def calibrations(oof: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Age maps fitted on out-of-fold predictions ``oof`` of the training photos (never the held-out fifth).

    * isotonic: E[age | prediction], monotone, read at 16 quantile knots (what a regression
      calibration does; a ridge is already close to it);
    * linear inverse: fit prediction = a + b * age, predict (prediction - a) / b (removes the
      bias conditional on the true age, the "regression to the mean" at both ends);
    * binned inverse: mean prediction per sixth of the ages, inverted piecewise-linearly.
    """
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(out_of_bounds="clip").fit(oof, y)
    kx = np.unique(np.quantile(oof, np.linspace(0, 1, 16)))
    maps: dict[str, Any] = {"isotonic (16 knots)": (lambda p, kx=kx, ky=iso.predict(kx): piecewise(p, kx, ky))}
    b, a = np.polyfit(y, oof, 1)
    maps[f"linear inverse (b={b:.2f})"] = lambda p, a=a, b=b: (p - a) / b
    qs = np.quantile(y, np.linspace(0, 1, 7))
    ys = np.array([np.median(y[(y >= qs[i]) & (y <= qs[i + 1])]) for i in range(6)])
    gs = np.array([np.mean(oof[(y >= qs[i]) & (y <= qs[i + 1])]) for i in range(6)])
    gs = np.maximum.accumulate(gs) + np.arange(6) * 1e-6
    maps["binned inverse (6 bins)"] = lambda p, gs=gs, ys=ys: piecewise(p, gs, ys)
    return maps


def row(name: str, r: dict[str, Any]) -> list[Any]:
    return [name, r.get("chips_per_face", 1), f"{r['age_mae']:.2f}",
            *[f"{x:.2f}" for x in r["age_mae_by_band"].values()],
            f"{r['age_bias_by_band']['60+']:+.2f}", C.fmt_pct(r["gender_accuracy"]),
            C.fmt_pct(r["gender_accuracy_adults"]), C.fmt_pct(r["gender_accuracy_under_13"])]


HEADERS = ["setting", "chips", "MAE", *[f"MAE {_band(lo, hi)}" for lo, hi in BANDS],
           "bias 60+", "gender %", "adults %", "<13 %"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=C.DATA)
    ap.add_argument("--limit", type=int, default=None, help="only the first N photos of labels.csv")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/faceforge_utk_tta.npz"))
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--end-to-end", action="store_true",
                    help="only Analyzer(quality=fast|accurate) on the held-out fifth's photo files: the whole "
                         "preset, its accurate face finder included")
    args, info = C.start(ap, "Gender and age: test-time augmentation and age calibration (UTKFace held out)")
    if args.end_to_end:
        end_to_end(args, info)
        return
    from faceforge.attributes import load_attribute
    from faceforge.attributes.tta import ACCURATE_FLIP, ACCURATE_JITTERS

    z = embed_all(args.data, args.limit, args.cache)
    held, E, age, gender = z["held"], z["E"], z["age"], z["gender"]
    g_head, a_head = load_attribute("gender").head, load_attribute("age").head
    classes = np.array(load_attribute("gender").classes)
    configs = {"fast (the chip)": (False, ()), "flip": (True, ()),
               **{f"jitter {k}": (False, (k,)) for k in JITTERS},
               "shift x4": (False, ("left", "right", "up", "down")),
               "flip + shift x4": (True, ("left", "right", "up", "down")),
               "flip + scale x2": (True, ("scale0.95", "scale1.05")),
               "flip + rot x2": (True, ("rot-5", "rot+5")),
               "flip + all 8": (True, tuple(JITTERS))}
    chosen = next(k for k, (f, j) in configs.items()
                  if f == ACCURATE_FLIP and [JITTERS[x] for x in j] == [tuple(v) for v in ACCURATE_JITTERS])

    # 1. development data: out-of-fold on the training photos (what chose the preset)
    dev = {}
    oof = oof_predictions(E[~held], age[~held], gender[~held], configs)
    for k, (a_p, m_p) in oof.items():
        dev[k] = {"chips_per_face": len(variant_index(*configs[k])),
                  **gender_age(gender[~held], np.where(m_p > 0.5, "male", "female"), age[~held], a_p)}
    print("## development data (out-of-fold, training photos)")
    print(C.md_table(HEADERS, [row(k, r) for k, r in dev.items()]))

    # 2. the held-out fifth, the shipped heads
    Et, g_true, a_true = E[held], gender[held], age[held]
    test: dict[str, Any] = {}
    for k, (flip, jit) in configs.items():
        idx = variant_index(flip, jit)
        mean_emb = Et[:, idx].mean(axis=1)
        test[k] = {"chips_per_face": len(idx), **gender_age(g_true, classes[g_head.predict_proba(mean_emb).argmax(1)],
                                                           a_true, a_head.predict(mean_emb))}
        if len(idx) > 1:  # the heads' outputs averaged instead (the same for the linear age head)
            n, v = len(Et), len(idx)
            p = g_head.predict_proba(Et[:, idx].reshape(n * v, -1)).reshape(n, v, -1).mean(axis=1)
            test[k]["gender_accuracy_output_mean"] = float(np.mean(classes[p.argmax(1)] == g_true))
    print("\n## held-out fifth (shipped heads, embedding mean)")
    print(C.md_table(HEADERS, [row(k, r) for k, r in test.items()]))

    # 3. age calibrations fitted on development data, applied on the held-out fifth
    cal: dict[str, Any] = {}
    for k in ("fast (the chip)", chosen):
        maps = calibrations(oof[k][0], age[~held])
        idx = variant_index(*configs[k])
        base = a_head.predict(Et[:, idx].mean(axis=1))
        g_pred = classes[g_head.predict_proba(Et[:, idx].mean(axis=1)).argmax(1)]
        cal[k] = test[k]
        for m, f in maps.items():
            cal[f"{k} + {m}"] = {"chips_per_face": len(idx), **gender_age(g_true, g_pred, a_true, f(base))}
    print("\n## age calibrations (fitted out-of-fold on the training photos), held-out fifth")
    print(C.md_table(HEADERS, [row(k, r) for k, r in cal.items()]))

    cost = {"chips: transforms + warps + agegender embedding of all 18 variants, median ms per face":
            round(float(np.median(z["secs"]) * 1e3), 2), **per_face_cost(args.runs)}
    print(cost)
    warn = C.other_load_warning()
    C.write_json("accurate_attributes", {**info, "load_warning": warn, "held_out_faces": int(held.sum()),
                                         "train_faces": int((~held).sum()), "jitters": JITTERS, "chosen": chosen,
                                         "development": dev, "held_out": test, "calibration": cal, "cost": cost},
                 args.out)


def end_to_end(args: Any, info: dict[str, Any]) -> None:
    """Both presets as users run them (``Analyzer(["gender", "age"], quality=)`` on the photo file:
    its own face finder, the main face) on the held-out fifth."""
    from faceforge.attributes import Analyzer

    rows = [r for r in csv.DictReader(open(args.data / "utkface" / "labels.csv")) if held_out(r["file"])]
    rows = rows[: args.limit] if args.limit else rows
    out: dict[str, Any] = {}
    for q in ("fast", "accurate"):
        an = Analyzer(["gender", "age"], quality=q)
        g, a, t0 = [], [], time.perf_counter()
        for r in rows:
            f = an.analyze(args.data / "utkface" / "images" / r["file"])
            g.append(f.predictions["gender"][0].label)
            a.append(float(f.predictions["age"][0].value))
        out[q] = {"chips_per_face": 1 if q == "fast" else 6, "seconds": time.perf_counter() - t0,
                  **gender_age(np.array([r["gender"] for r in rows]), np.array(g),
                               np.array([float(r["age"]) for r in rows]), np.array(a))}
    print(f"## end to end: Analyzer on the {len(rows)} held-out photo files")
    print(C.md_table(HEADERS, [row(k, r) for k, r in out.items()]))
    C.write_json("accurate_attributes_end_to_end", {**info, "photos": len(rows), "results": out}, args.out)


def per_face_cost(runs: int) -> dict[str, Any]:
    """Gender + age per face on the astronaut photo: fast vs accurate (``Analyzer``'s own path)."""
    from skimage import data as skdata

    from faceforge.attributes import Analyzer
    from faceforge.pipeline import run_models

    img = skdata.astronaut()
    out = {}
    for q in ("fast", "accurate"):
        an = Analyzer(["gender", "age"], quality=q)
        faces, det, _ = an.finder.find_scaled(img)
        out[f"gender + age, {q} (ms per face)"] = C.stats_ms(C.time_calls(
            lambda an=an, det=det, faces=faces: run_models(det, faces, an.models), runs))
    return out


if __name__ == "__main__":
    main()
