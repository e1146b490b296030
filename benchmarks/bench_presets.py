"""What the one switch costs: the fast default against the accurate preset (issue 19, point 4).

Per photo, interleaved (fast, accurate, accurate, fast, ...) so that both see the same machine:

* ``detect``: the face finder alone (``FaceFinder(quality=)``);
* ``identity``: find + align + embed every face with dlib-resnet (``FacePipeline(quality=)``);
* ``analyze``: find + gender, age and emotion of every face (``Analyzer(quality=)``).

Per face: the same steps with detection taken out (the stage's own time on the faces the fast
finder found), so the per-face cost of the embedding / attribute presets shows on its own.

Photos: the face_recognition examples and the TV group shots of ../shared/data/photos (real
photos from 240p to 1080p, 1 to 6 faces), and skimage's astronaut.

Usage:
    python benchmarks/bench_presets.py             # 3 rounds over every photo
    python benchmarks/bench_presets.py --rounds 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

import _common as C


def photos(data: Path) -> list[tuple[str, np.ndarray]]:
    from skimage import data as skdata

    from faceforge.sources import load_image

    out = [("astronaut", skdata.astronaut())]
    for sub in ("face_recognition_examples", "tv_group_shots"):
        for f in sorted((data / "photos" / sub).iterdir()):
            if f.suffix.lower() in (".jpg", ".jpeg", ".png"):
                out.append((f"{sub}/{f.name}", load_image(f)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=C.DATA)
    ap.add_argument("--rounds", type=int, default=3)
    args, info = C.start(ap, "The presets' cost: fast against accurate, per photo and per face")
    if w := C.other_load_warning():
        print(w + "\n")
    from faceforge.attributes import Analyzer
    from faceforge.pipeline import FaceFinder, FacePipeline, run_models

    imgs = photos(args.data)
    stages: dict[str, dict[str, Any]] = {}
    for q in ("fast", "accurate"):
        pipe = FacePipeline("photo", "dlib-resnet", quality=q)
        an = Analyzer(("gender", "age", "emotion"), quality=q)
        stages[q] = {"finder": FaceFinder("photo", quality=q), "pipe": pipe, "an": an}
    # per face: the fast finder's faces, then each preset's stage on them
    found = []
    for _, img in imgs:
        f, det_img, _s = stages["fast"]["pipe"].finder.find_scaled(img)
        found.append((det_img, f))

    def steps(q: str) -> dict[str, Callable[[int], Any]]:
        st = stages[q]
        return {
            "detect": lambda i: st["finder"].find(imgs[i][1]),
            "identity": lambda i: st["pipe"].embed(imgs[i][1]),
            "analyze": lambda i: st["an"].analyze(imgs[i][1]),
            "identity per face": lambda i: st["pipe"].embed_chips(*found[i]),
            "attributes per face": lambda i: run_models(found[i][0], found[i][1], st["an"].models, 3),
        }

    runs = {q: steps(q) for q in stages}
    times: dict[str, dict[str, list[float]]] = {q: {k: [] for k in runs[q]} for q in runs}
    faces_seen: dict[str, dict[str, int]] = {q: {} for q in runs}
    for q in runs:  # warm-up: models load
        for fn in runs[q].values():
            fn(0)
    for r in range(args.rounds):
        for i in range(len(imgs)):
            order = ("fast", "accurate") if (i + r) % 2 == 0 else ("accurate", "fast")
            for k in runs["fast"]:
                for q in order:
                    t0 = time.perf_counter()
                    res = runs[q][k](i)
                    times[q][k].append(time.perf_counter() - t0)
                    if r == 0 and k == "detect":
                        faces_seen[q][imgs[i][0]] = len(res)
        print(f"round {r + 1} done", file=sys.stderr)
    n_faces = sum(len(f) for _, f in found)
    rows, out = [], {}
    for k in runs["fast"]:
        per_face = k.endswith("per face")
        f_ms = 1000 * np.sum(times["fast"][k]) / (args.rounds * (n_faces if per_face else len(imgs)))
        a_ms = 1000 * np.sum(times["accurate"][k]) / (args.rounds * (n_faces if per_face else len(imgs)))
        out[k] = {"fast_ms": f_ms, "accurate_ms": a_ms, "ratio": a_ms / f_ms, "per": "face" if per_face else "photo"}
        rows.append([k, "face" if per_face else "photo", f"{f_ms:.1f}", f"{a_ms:.1f}", f"{a_ms / f_ms:.2f}x"])
    print(C.md_table(["step", "per", "fast ms", "accurate ms", "accurate / fast"], rows))
    tot = {q: sum(faces_seen[q].values()) for q in faces_seen}
    print(f"\n{len(imgs)} photos, {n_faces} faces found by the fast finder; the accurate finder found "
          f"{tot['accurate']} (fast: {tot['fast']}). Means over {args.rounds} rounds, interleaved.")
    print(f"load average at the end: {[round(x, 2) for x in os.getloadavg()]}")
    C.write_json("presets", {**info, "photos": [n for n, _ in imgs], "faces": n_faces, "rounds": args.rounds,
                             "faces_found": faces_seen, "steps": out}, args.out)


if __name__ == "__main__":
    main()
