import dlib
import numpy as np
import glob
from pathlib import Path
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
from faceforge.registry import weight_path
from faceforge.detectors.base import get_detector
from faceforge.sources.image import load_image
from faceforge.align.core import fit_template, warp_chips
sp = dlib.shape_predictor(str(weight_path("dlib.shape5")))
det = get_detector("yunet")

def chip_affine(cd, sign):
    r = cd.rect
    c = r.center()
    w = r.width()
    a = cd.angle * sign
    cx, cy = c.x, c.y
    s = cd.cols / w
    ca, sa = np.cos(a), np.sin(a)
    # image point -> rotate by a around centre -> scale -> shift to chip centre
    R = np.array([[ca, -sa], [sa, ca]])
    M = np.zeros((2, 3))
    M[:, :2] = s * R
    M[:, 2] = np.array([cd.cols/2, cd.rows/2]) - s * R @ np.array([cx, cy])
    return M

files = sorted(
    glob.glob(str(SHARED) + '/identity/knn_examples/**/*.jpg', recursive=True)
    + glob.glob(str(SHARED) + '/photos/face_recognition_examples/*')
    + glob.glob(str(SHARED) + '/verification/deepface_pairs/*.jpg')
    + glob.glob(str(SHARED) + '/photos/facenet_samples/test_images/*/*')
)
lms, mats = [], []
errs = {1: [], -1: []}
for f in files:
    img = load_image(f)
    faces = det(img)
    for i in range(len(faces)):
        if faces.height[i] < 60:
            continue
        x1, y1, x2, y2 = faces.xyxy[i]
        shape = sp(img, dlib.rectangle(int(x1), int(y1), int(x2), int(y2)))
        cd = dlib.get_face_chip_details(shape, 150, 0.25)
        ref = dlib.get_face_chip(img, shape, 150, 0.25)
        best = None
        for sign in (1, -1):
            M = chip_affine(cd, sign)
            mine = warp_chips(img, M[None], 150)[0]
            e = np.abs(mine.astype(int) - ref.astype(int))[10:-10, 10:-10].mean()
            errs[sign].append(e)
            if best is None or e < best[0]:
                best = (e, M)
        lms.append(faces.landmarks[i])
        mats.append(best[1])
print(len(files), 'files', len(lms), 'faces')
print({k: np.mean(v) for k, v in errs.items()})
t = fit_template(np.array(lms), np.array(mats), 150)
print(np.round(t, 4).tolist())
pts = np.stack([np.asarray(lm) @ m[:, :2].T + m[:, 2] for lm, m in zip(lms, mats)]) / 150
print('spread (std) per point', np.round(pts.std(0), 4).tolist())
