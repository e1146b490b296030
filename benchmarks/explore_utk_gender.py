"""UTKFace gender with every pretrained feature faceforge has: how far do frozen features go?

Same split as bench_train.py (1,000 seeded training photos, the other 3,878 for testing).
Features come from faceforge's embedding cache (``embed_dataset``), plus the Cydral gender net's
hidden layers read from its ONNX graph. Heads are scikit-learn on standardised features; the
stack combines out-of-fold scores of each feature set. Prints balanced accuracy per row, overall
and by age group.

    python benchmarks/explore_utk_gender.py
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def gender_net_features(paths: list[str]) -> dict[str, np.ndarray]:
    """Cydral gender net on faceforge's chips: logits, last hidden layer (16), pooled convs (4096)."""
    import cv2

    from faceforge.embedders.agegender import _net_input, _session
    from faceforge.pipeline import FacePipeline
    from faceforge.sources import load_image

    sess = _session("agegender.gender", ["layer_5_multiply", "layer_3_relu", "logits"], None)
    pipe = FacePipeline("photo", "agegender", crops="auto")
    out: dict[str, list[np.ndarray]] = {"logits": [], "hidden16": [], "conv4096": []}
    for p in paths:
        faces, det, _ = pipe.finder.find_scaled(load_image(p))
        chip = pipe.chips(det, faces[:1])[0]
        x = _net_input(cv2.resize(chip, (32, 32), interpolation=cv2.INTER_AREA)[None])
        conv, hid, logit = sess.run(["layer_5_multiply", "layer_3_relu", "logits"], {sess.get_inputs()[0].name: x})
        out["conv4096"].append(conv.reshape(-1))
        out["hidden16"].append(hid.reshape(-1))
        out["logits"].append(logit.reshape(-1))
    return {k: np.stack(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=C.DATA)
    ap.add_argument("--seed", type=int, default=0)
    args, info = C.start(ap, "UTKFace gender from frozen features")
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from faceforge.data import embed_dataset, load_dataset

    warnings.filterwarnings("ignore")
    d = args.data / "utkface"
    ds = load_dataset(d / "labels.csv", image_root=d / "images", path_column="file", label_column="gender")
    feats: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    paths = None
    for name, emb, aug in (("dlib-resnet", "dlib-resnet", ["flip"]), ("effnet-lite0", "effnet-lite0", []),
                           ("agegender", "agegender", [])):
        e = embed_dataset(ds, embedder=emb, augment=aug, progress=True)
        a = np.asarray(e.augmented, bool)
        order = np.argsort(np.asarray(e.paths)[~a], kind="stable")
        X = e.X[~a][order]
        Xf = None
        if a.any():
            fo = np.argsort(np.asarray(e.paths)[a], kind="stable")
            Xf = e.X[a][fo]
        feats[name] = (X, Xf)
        if paths is None:
            paths = list(np.asarray(e.paths)[~a][order])
            y = np.asarray(e.y)[~a][order]
            male = e.classes.index("male")
    g = gender_net_features(paths)
    feats["gender net hidden16"] = (g["hidden16"], None)
    feats["gender net conv4096"] = (g["conv4096"], None)
    rows = list(csv.DictReader(open(d / "labels.csv")))
    random.Random(args.seed).shuffle(rows)
    train_files = {str((d / "images" / r["file"]).resolve()) for r in rows[:1000]}
    age = {str((d / "images" / r["file"]).resolve()): float(r["age"]) for r in rows}
    tr = np.array([str(Path(p).resolve()) in train_files for p in paths])
    te = ~tr
    ages = np.array([age[str(Path(p).resolve())] for p in paths])
    yb = (y == male).astype(int)

    def report(name: str, pred: np.ndarray) -> dict[str, float]:
        r = {"all": balanced_accuracy_score(yb[te], pred)}
        for lo, hi in ((0, 10), (10, 18), (18, 60), (60, 200)):
            m = te & (ages >= lo) & (ages < hi)
            r[f"{lo}-{hi}"] = float(np.mean(pred[m[te]] == yb[m])) if m.any() else float("nan")
        print(f"{name:<48} " + "  ".join(f"{k} {v:.3f}" for k, v in r.items()), flush=True)
        return r

    results = {}
    zs = g["logits"].argmax(1)  # Cydral labels: 0 female, 1 male
    results["gender net zero-shot"] = report("gender net zero-shot", zs[te])

    def member(X, Xf, C_, tri, tei):
        sc = StandardScaler().fit(X[tri])
        Xt, yt = sc.transform(X[tri]), yb[tri]
        if Xf is not None:
            Xt, yt = np.vstack([Xt, sc.transform(Xf[tri])]), np.concatenate([yt, yt])
        m = LogisticRegression(C=C_, max_iter=5000, class_weight="balanced").fit(Xt, yt)
        s = m.decision_function(sc.transform(X[tei]))
        if Xf is not None:
            s = (s + m.decision_function(sc.transform(Xf[tei]))) / 2
        return s

    Cs = {"dlib-resnet": 0.1, "effnet-lite0": 0.01, "agegender": 0.1, "gender net hidden16": 0.1,
          "gender net conv4096": 0.001}
    tri, tei = np.flatnonzero(tr), np.flatnonzero(te)
    test_scores, oof = {}, {}
    for name, (X, Xf) in feats.items():
        test_scores[name] = member(X, None, Cs[name], tri, tei)
        results[f"{name} logreg"] = report(f"{name} logreg", (test_scores[name] > 0).astype(int))
        if Xf is not None:
            s = member(X, Xf, Cs[name], tri, tei)
            results[f"{name} logreg + flips"] = report(f"{name} logreg + flips (train and test)", (s > 0).astype(int))
        oof[name] = np.zeros(len(tri))
        for a, b in StratifiedKFold(5, shuffle=True, random_state=0).split(tri, yb[tri]):
            oof[name][b] = member(X, None, Cs[name], tri[a], tri[b])
    sc = StandardScaler().fit(feats["dlib-resnet"][0][tr])
    svm = SVC(C=3, class_weight="balanced").fit(sc.transform(feats["dlib-resnet"][0][tr]), yb[tr])
    results["dlib-resnet RBF SVM"] = report("dlib-resnet RBF SVM",
                                            svm.predict(sc.transform(feats["dlib-resnet"][0][te])))
    names = list(feats)
    st = LogisticRegression(C=1, class_weight="balanced").fit(np.stack([oof[k] for k in names], 1), yb[tri])
    stacked = st.predict(np.stack([test_scores[k] for k in names], 1))
    results["stack of all"] = report("stack of all (out-of-fold scores)", stacked)
    C.write_json("explore_utk_gender", {**info, "results": results}, args.out)


if __name__ == "__main__":
    main()
