"""Bootstrap end to end: 25 + 25 labelled UTKFace faces -> teacher -> autolabel the rest -> student.

The teacher is trained by ``faceforge train`` on 25 male + 25 female photos (seeded); ``autolabel``
labels the other 4,828 photos of ../shared/data/utkface with their labels hidden (kept at
confidence >= 0.6, ``balance="cap"``); ``distil`` trains a student on the kept crops. Both are
scored against the true labels of those 4,828 photos. Wall time per stage, cold embedding cache.

    python benchmarks/bench_bootstrap.py [--teacher-embedder agegender] [--student-embedder dlib-resnet]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=C.DATA)
    ap.add_argument("--teacher-embedder", default="agegender")
    ap.add_argument("--student-embedder", default="agegender")
    ap.add_argument("--student-detector", default="live")
    ap.add_argument("--min-confidence", type=float, default=0.6)
    ap.add_argument("--balance", default="cap")
    ap.add_argument("--seed", type=int, default=0)
    args, info = C.start(ap, "Bootstrap: 50 labels -> teacher -> autolabel -> student (UTKFace gender)")
    os.environ.setdefault("FACEFORGE_CACHE", tempfile.mkdtemp(prefix="ff-bench-cache-"))
    from faceforge.bootstrap import autolabel, distil
    from faceforge.train import train

    root = args.data / "utkface"
    rows = list(csv.DictReader(open(root / "labels.csv")))
    random.Random(args.seed).shuffle(rows)
    labelled = [r for r in rows if r["gender"] == "male"][:25] + [r for r in rows if r["gender"] == "female"][:25]
    names = {r["file"] for r in labelled}
    rest = [r for r in rows if r["file"] not in names]
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ff-bootstrap-") as tmp:
        tmp = Path(tmp)
        for r in labelled:
            d = tmp / "labelled" / r["gender"]
            d.mkdir(parents=True, exist_ok=True)
            (d / r["file"]).symlink_to(root / "images" / r["file"])
        (tmp / "unlabelled").mkdir()
        for r in rest:
            (tmp / "unlabelled" / r["file"]).symlink_to(root / "images" / r["file"])
        (tmp / "truth.csv").write_text("file,gender\n" + "".join(f"{tmp / 'unlabelled' / r['file']},{r['gender']}\n"
                                                                 for r in rest))
        t0 = time.perf_counter()
        train(tmp / "labelled", tmp / "teacher.ffm", embedder=args.teacher_embedder, val=0.0, learning_curve=False,
              target_far=None)
        times["teacher_train_s"] = time.perf_counter() - t0
        t = time.perf_counter()
        al = autolabel(tmp / "teacher.ffm", [tmp / "unlabelled"], tmp / "pseudo", min_confidence=args.min_confidence,
                       balance=args.balance)
        times["autolabel_s"] = time.perf_counter() - t
        t = time.perf_counter()
        ds = distil(tmp / "pseudo", tmp / "student.ffm", embedder=args.student_embedder, detector=args.student_detector,
                    test=tmp / "truth.csv", test_options={"label_column": "gender"})
        times["distil_and_test_s"] = time.perf_counter() - t
        times["total_s"] = time.perf_counter() - t0
    res = {"labelled": len(labelled), "unlabelled": len(rest), "kept": al.counts, "predicted": al.predicted,
           "skew_kept": al.skew, "histogram": al.histogram, **ds.to_dict(), "times": times,
           "settings": vars(args) | {"data": str(args.data)}}
    for name in ("teacher", "student"):
        r = ds.test[name]
        print(f"{name}: accuracy {r['accuracy']:.4f}, balanced {r['balanced_accuracy']:.4f}")
    print(f"kept {al.counts} of predicted {al.predicted}; agreement {ds.agreement}; latency {ds.latency_ms}")
    print({k: round(v, 1) for k, v in times.items()})
    C.write_json("bootstrap", {**info, **res}, args.out)


if __name__ == "__main__":
    main()
