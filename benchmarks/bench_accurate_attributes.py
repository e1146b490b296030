"""Gender and age with test-time augmentation and an age calibration (issue 19, point 3), measured.

Every UTKFace photo of ../shared/data/utkface goes through what ``Analyzer`` does (the photo
finder, the main face, dlib's 5-point 64x64 chip, the ``agegender`` embedder); per face the chip
and its variants (mirror image, small scale / shift / rotation jitters;
:mod:`faceforge.attributes.tta`) are embedded once and cached (``--cache``). Then, all in numpy:

* the shipped gender and age heads on the fixed held-out fifth (``scripts/train_attributes.py``
  never trains on it) with each averaging: the embeddings' mean, or the heads' outputs' mean;
* an age calibration (a monotone piecewise-linear map fitted by isotonic regression on
  out-of-fold ridge predictions of the *training* photos only, as ``RidgeHead(calibrate=True)``
  fits it) applied to the shipped head's output, alone and after each averaging;
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


def gender_age(g_true: np.ndarray, g_pred: np.ndarray, a_true: np.ndarray, a_pred: np.ndarray) -> dict[str, Any]:
    err = np.abs(a_true - a_pred)
    return {"age_mae": float(err.mean()),
            "age_bias": float(np.mean(a_pred - a_true)),
            "age_mae_by_band": {f"{lo}-{hi - 1}" if hi < 200 else f"{lo}+": float(err[(a_true >= lo) & (a_true < hi)].mean())
                                for lo, hi in BANDS},
            "age_bias_by_band": {f"{lo}-{hi - 1}" if hi < 200 else f"{lo}+":
                                 float((a_pred - a_true)[(a_true >= lo) & (a_true < hi)].mean()) for lo, hi in BANDS},
            "gender_accuracy": float(np.mean(g_true == g_pred)),
            "gender_balanced_accuracy": float(np.mean([np.mean(g_pred[g_true == c] == c) for c in np.unique(g_true)])),
            "gender_accuracy_adults": float(np.mean((g_true == g_pred)[a_true >= 18])),
            "gender_accuracy_under_13": float(np.mean((g_true == g_pred)[a_true < 13]))}


def oof_calibration(E_train: np.ndarray, y: np.ndarray, idx: list[int], knots: int | None = None) -> Any:
    """The calibration ``RidgeHead(calibrate=True)`` fits (as the shipped age head: no L2
    normalisation, standardised), on the training photos' (averaged) embeddings."""
    from faceforge.heads import regression as R

    old = R.CALIBRATION_KNOTS
    R.CALIBRATION_KNOTS = knots or old
    try:
        head = R.RidgeHead(calibrate=True, normalize=False).fit(E_train[:, idx].mean(axis=1), y)
    finally:
        R.CALIBRATION_KNOTS = old
    return head.arrays_["calib_x"], head.arrays_["calib_y"], head.fit_info_


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=C.DATA)
    ap.add_argument("--limit", type=int, default=None, help="only the first N photos of labels.csv")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/faceforge_utk_tta.npz"))
    args, info = C.start(ap, "Gender and age: test-time augmentation and age calibration (UTKFace held out)")
    from faceforge.attributes import load_attribute

    z = embed_all(args.data, args.limit, args.cache)
    held = z["held"]
    E, age, gender = z["E"], z["age"], z["gender"]
    g_head, a_head = load_attribute("gender").head, load_attribute("age").head
    classes = np.array(load_attribute("gender").classes)
    g_true, a_true = gender[held], age[held]
    Et = E[held]
    configs = {"fast (chip)": (False, ()), "flip": (True, ()),
               **{f"jitter {k}": (False, (k,)) for k in JITTERS},
               "shift x4": (False, ("left", "right", "up", "down")),
               "flip + shift x4": (True, ("left", "right", "up", "down")),
               "flip + scale x2": (True, ("scale0.95", "scale1.05")),
               "flip + rot x2": (True, ("rot-5", "rot+5")),
               "flip + all 8": (True, tuple(JITTERS))}
    calib_cache: dict[tuple[int, ...], Any] = {}
    res: dict[str, Any] = {}
    for name, (flip, jit) in configs.items():
        idx = variant_index(flip, jit)
        mean_emb = Et[:, idx].mean(axis=1)
        n, v = Et.shape[0], len(idx)
        flat = Et[:, idx].reshape(n * v, -1)
        modes = {"embedding mean": (g_head.predict_proba(mean_emb), a_head.predict(mean_emb)),
                 "output mean": (g_head.predict_proba(flat).reshape(n, v, -1).mean(axis=1),
                                 a_head.predict(flat).reshape(n, v).mean(axis=1))}
        for mode, (gp, ap_) in modes.items():
            if v == 1 and mode == "output mean":
                continue
            key = name if v == 1 else f"{name}, {mode}"
            res[key] = {"chips_per_face": v, **gender_age(g_true, classes[gp.argmax(1)], a_true, ap_)}
            for cal_name, cal_idx in (("fast", [0]), ("same", idx)):
                if cal_name == "same" and v == 1:
                    continue
                ck = tuple(cal_idx)
                if ck not in calib_cache:
                    calib_cache[ck] = oof_calibration(E[~held], age[~held], cal_idx)
                cx, cy, _ = calib_cache[ck]
                from faceforge.heads.regression import apply_calibration

                label = " + calibration" + ("" if v == 1 else f" (fitted on {cal_name})")
                res[key + label] = {"chips_per_face": v, **gender_age(g_true, classes[gp.argmax(1)], a_true,
                                                                      apply_calibration(ap_, cx, cy))}
    from faceforge.heads.regression import apply_calibration

    base = a_head.predict(Et[:, 0])
    knots = {}
    for k in (4, 8, 16, 32, 64):
        cx, cy, _ = oof_calibration(E[~held], age[~held], [0], k)
        knots[k] = float(np.mean(np.abs(apply_calibration(base, cx, cy) - a_true)))
    print("held-out MAE of the fast head + calibration, by knots:", knots)
    cost = float(np.median(z["secs"]) * 1e3)
    res_cost = {"all 18 variants: chip transforms + warps + agegender embedding, median ms per face": cost}
    res_cost.update(per_face_cost())
    headers = ["setting", "chips", "MAE", *[f"MAE {lo}-{hi - 1}" if hi < 200 else f"MAE {lo}+" for lo, hi in BANDS],
               "bias 60+", "gender", "adults", "<13"]
    rows = [[k, r["chips_per_face"], f"{r['age_mae']:.2f}", *[f"{x:.2f}" for x in r["age_mae_by_band"].values()],
             f"{r['age_bias_by_band']['60+']:+.2f}", C.fmt_pct(r["gender_accuracy"]),
             C.fmt_pct(r["gender_accuracy_adults"]), C.fmt_pct(r["gender_accuracy_under_13"])] for k, r in res.items()]
    print(C.md_table(headers, rows))
    print(res_cost)
    _, _, fit_info = calib_cache[(0,)]
    C.write_json("accurate_attributes", {**info, "held_out_faces": int(held.sum()), "train_faces": int((~held).sum()),
                                         "jitters": JITTERS, "results": res, "cost": res_cost,
                                         "calibration_fit_info": fit_info,
                                         "calibration_knots_heldout_mae": knots}, args.out)


def per_face_cost(runs: int = 30) -> dict[str, Any]:
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
            lambda an=an: run_models(det, faces, an.models), runs))
    return out


if __name__ == "__main__":
    main()
