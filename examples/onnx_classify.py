"""Classify the faces of a photo with a `faceforge export` folder: onnxruntime, OpenCV and numpy only.

    python onnx_classify.py EXPORT_DIR PHOTO [--landmarks faces.json]

Faces come from EXPORT_DIR/detector.onnx when present, else from --landmarks (any detector's
output: [{"box": [x1, y1, x2, y2], "landmarks": [[x, y] x 5] or null}, ...]), else OpenCV's Haar
cascade (boxes only: the sidecar's margin crop). Prints one line per face: box, label, score.
"""
import argparse
import json
import pathlib

import cv2
import numpy as np
import onnxruntime as ort

ap = argparse.ArgumentParser()
ap.add_argument("export"), ap.add_argument("photo"), ap.add_argument("--landmarks")
args = ap.parse_args()
d, img = pathlib.Path(args.export), cv2.cvtColor(cv2.imread(args.photo), cv2.COLOR_BGR2RGB)
side = json.loads((d / "model.json").read_text())
detector = None  # the faceforge name of the detector the boxes come from, if known
if args.landmarks:
    faces = [(f["box"], f.get("landmarks")) for f in json.loads(pathlib.Path(args.landmarks).read_text())]
elif (d / "detector.onnx").exists():
    faces = list(zip(*ort.InferenceSession(str(d / "detector.onnx")).run(["boxes", "landmarks"], {"image": img})))
    detector = side["detector"]["model"]
else:
    haar = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    faces = [((x, y, x + w, y + h), None) for x, y, w, h in haar.detectMultiScale(grey, 1.1, 5, minSize=(40, 40))]


def chip(al, box, lm):  # faceforge's alignment: a least-squares similarity to the 5 points, or a margin crop
    s = al["size"]
    if lm is not None and al["method"] != "box":
        src, dst = np.float64(lm), np.float64(al["reference_points"])
        A = np.block([[src[:, :1], -src[:, 1:], np.ones((5, 1)), np.zeros((5, 1))],
                      [src[:, 1:], src[:, :1], np.zeros((5, 1)), np.ones((5, 1))]])
        a, b, tx, ty = np.linalg.lstsq(A, np.concatenate([dst[:, 0], dst[:, 1]]), rcond=None)[0]
        m = np.array([[a, -b, tx], [b, a, ty]])
    else:
        fb = al if al["method"] == "box" else al["fallback"]
        margin, shift = fb.get("framing", {}).get(detector, (fb["margin"], fb["shift"]))  # per-detector crop
        x1, y1, x2, y2 = map(float, box)
        k = s / (max(x2 - x1, y2 - y1, 1.0) * margin)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 + shift * (y2 - y1)
        m = np.array([[k, 0, s / 2 - k * cx], [0, k, s / 2 - k * cy]])
    return cv2.warpAffine(img, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


sess = ort.InferenceSession(str(d / "classifier.onnx"))
for box, lm in faces:
    feeds = {i["name"]: chip(i["alignment"], box, lm)[None] for i in side["inputs"]}
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    if side["task"] == "regression":
        label, score = f"{out['value'][0]:.1f}", float(out["value"][0])
    else:
        j = int(np.argmax(out["probabilities"][0]))
        label, score = side["labels"][j], float(out["probabilities"][0, j])
        if "accepted" in out and not out["accepted"][0]:
            label = side["rejected_label"]
            score = float(out["probabilities"][0, side["labels"].index(label)]) if label in side["labels"] else score
    print(" ".join(f"{v:.0f}" for v in box), label, f"{score:.3f}")
