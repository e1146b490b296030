"""Per-stage latency at 640x480 (a webcam frame): decode, detect, align, embed, end to end.

The frame is a real photo from ../shared/data (default photos/face_recognition_examples/
obama-480p.jpg) scaled to cover 640x480 and centre-cropped, with at least one face; without the
shared data, scikit-image's astronaut (public domain) scaled to 480x480 and padded to 640x480.
It is JPEG-encoded once (quality 90) in memory; "decode" turns those bytes into RGB with
``faceforge.sources.load_image``.

Stages (median / mean / p90 over --runs timed calls after --warmup untimed ones, one process):

* decode: JPEG bytes -> RGB array.
* detect: every detector (``get_detector`` names, options after a colon as in
  bench_detect.py) and the peer ``dlib-hog`` (dlib's HOG detector, upsample 1, as
  face_recognition uses it).
* align: cutting the main face's chip with each template (dlib5: dlib's 5-point predictor +
  chip geometry; arcface112, dlib150: similarity transform of yunet's 5 landmarks).
* embed: each embedder on one chip (batch 1), cut as that embedder expects.
* end to end: JPEG bytes -> embeddings of every face, ``FacePipeline(detector, embedder).embed``,
  for the photo and the live default detector; and the peer face_recognition
  (load_image_file + face_locations + face_encodings) when it is installed (.venv-bench).

Usage:
    python benchmarks/bench_latency.py                 # 50 runs per stage
    python benchmarks/bench_latency.py --runs 10       # quick
    FACEFORGE_THREADS=1 python benchmarks/bench_latency.py   # one inference thread
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

import _common as C

DETECTORS = ["yunet", "blazeface.short", "blazeface.full", "mtcnn", "haar", "dlib-hog"]
TEMPLATES = ["dlib5", "arcface112", "dlib150"]
EMBEDDERS = ["dlib-resnet", "effnet-lite0"]
W, H = 640, 480


def frame_from_photo(path: Path) -> np.ndarray:
    import cv2

    from faceforge.sources import load_image

    img = load_image(path)
    h, w = img.shape[:2]
    s = max(W / w, H / h)
    img = cv2.resize(img, (max(W, round(w * s)), max(H, round(h * s))),
                     interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    y0, x0 = (img.shape[0] - H) // 2, (img.shape[1] - W) // 2
    return np.ascontiguousarray(img[y0 : y0 + H, x0 : x0 + W])


def frame_astronaut() -> np.ndarray:
    import cv2
    import skimage.data

    img = cv2.resize(skimage.data.astronaut(), (H, H), interpolation=cv2.INTER_AREA)
    pad = (W - H) // 2
    return cv2.copyMakeBorder(img, 0, 0, pad, W - H - pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))


def jpeg(img: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def detector_fn(spec: str) -> Callable[[np.ndarray], Any]:
    name, opts = C.parse_spec(spec)
    if name == "dlib-hog":
        import dlib

        hog = dlib.get_frontal_face_detector()
        up = int(opts.get("upsample", 1))
        return lambda img: hog(img, up)
    from faceforge.detectors import get_detector

    return get_detector(name, cached=False, **opts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photo", type=Path, default=C.DATA / "photos" / "face_recognition_examples" / "obama-480p.jpg")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--detectors", nargs="+", default=DETECTORS)
    ap.add_argument("--templates", nargs="+", default=TEMPLATES)
    ap.add_argument("--embedders", nargs="+", default=EMBEDDERS)
    ap.add_argument("--no-peer", action="store_true", help="skip face_recognition end to end")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/latency.json)")
    C.add_threads_arg(ap)
    args = ap.parse_args()
    C.apply_threads(args.threads)

    info = C.header(f"Per-stage latency at {W}x{H}")
    if w := C.other_load_warning():
        print(w + "\n")

    from faceforge.align import align_faces
    from faceforge.detectors import DEFAULT_LIVE_DETECTOR, DEFAULT_PHOTO_DETECTOR, get_detector
    from faceforge.embedders import DEFAULT_EMBEDDER, get_embedder
    from faceforge.pipeline import FacePipeline
    from faceforge.sources import load_image

    frame, source = None, "skimage.data.astronaut() scaled to 480x480, padded to 640x480"
    if args.photo.exists():
        frame = frame_from_photo(args.photo)
        if len(get_detector(DEFAULT_PHOTO_DETECTOR)(frame)) == 0:
            print(f"no face found in {args.photo} after cropping to {W}x{H}; using the astronaut")
            frame = None
        else:
            source = f"{args.photo} scaled to cover {W}x{H} and centre-cropped"
    if frame is None:
        frame = frame_astronaut()
    data = jpeg(frame)
    ref = get_detector(DEFAULT_PHOTO_DETECTOR)(load_image(data))
    print(f"frame: {source}; JPEG q90 {len(data) / 1024:.0f} KiB; {len(ref)} face(s) found by "
          f"{DEFAULT_PHOTO_DETECTOR}, main face {ref.sorted('area')[0].height[0]:.0f} px tall\n")
    img = load_image(data)
    main_face = ref.sorted("area")[0]

    rows: list[dict[str, Any]] = []

    def bench(stage: str, variant: str, make: Callable[[], Callable[[], Any]], note: str = "") -> None:
        try:
            fn = make()
            secs = C.time_calls(fn, args.runs, args.warmup)
        except Exception as e:  # noqa: BLE001 - report and go on
            rows.append({"stage": stage, "variant": variant, "available": False, "error": f"{type(e).__name__}: {e}"})
            print(f"  {stage} {variant}: UNAVAILABLE ({type(e).__name__}: {e})", file=sys.stderr)
            return
        rows.append({"stage": stage, "variant": variant, "available": True, "note": note, **C.stats_ms(secs)})
        bar.update(1)

    n_steps = 1 + len(args.detectors) + len(args.templates) + len(args.embedders) + 3
    bar = tqdm(total=n_steps, desc="stages", leave=False, file=sys.stderr)

    bench("decode", "JPEG -> RGB (load_image)", lambda: (lambda: load_image(data)))

    n_found: dict[str, int] = {}
    for spec in args.detectors:
        def make_det(spec: str = spec) -> Callable[[], Any]:
            fn = detector_fn(spec)
            n_found[spec] = len(fn(img))
            return lambda: fn(img)

        bench("detect", spec, make_det)
        if spec in n_found:
            rows[-1]["faces_found"] = n_found[spec]

    for tpl in args.templates:
        bench("align", tpl, lambda tpl=tpl: (lambda: align_faces(img, main_face, template=tpl)),
              "main face, 150 px chip" if tpl.startswith("dlib") else "main face")

    for name in args.embedders:
        def make_emb(name: str = name) -> Callable[[], Any]:
            emb = get_embedder(name, cached=False)
            a = dict(emb.alignment)
            chip = align_faces(img, main_face, template=a.get("template", "arcface112"), size=a.get("size"),
                               margin=a.get("margin"))[:1]
            return lambda: emb.embed(chip)

        bench("embed", name, make_emb, "batch 1")

    for det in dict.fromkeys([DEFAULT_PHOTO_DETECTOR, DEFAULT_LIVE_DETECTOR]):
        def make_e2e(det: str = det) -> Callable[[], Any]:
            pipe = FacePipeline(get_detector(det, cached=False), get_embedder(DEFAULT_EMBEDDER, cached=False))
            return lambda: pipe.embed(data)

        bench("end to end", f"faceforge {det} + {DEFAULT_EMBEDDER}", make_e2e,
              "JPEG bytes -> embeddings of every face")

    if not args.no_peer:
        def make_peer() -> Callable[[], Any]:
            import face_recognition as fr

            def run() -> Any:
                im = fr.load_image_file(io.BytesIO(data))
                return fr.face_encodings(im, fr.face_locations(im))

            return run

        bench("end to end", "face_recognition (hog, upsample 1, small, 1 jitter)", make_peer,
              "peer; JPEG bytes -> encodings of every face")
    bar.close()

    table = []
    for r in rows:
        if not r["available"]:
            table.append([r["stage"], f"`{r['variant']}`", "unavailable: " + r["error"][:70], "", "", ""])
        else:
            extra = r.get("note", "")
            if "faces_found" in r:
                extra = f"{r['faces_found']} face(s)"
            table.append([r["stage"], f"`{r['variant']}`", f"{r['median_ms']:.2f}", f"{r['mean_ms']:.2f}",
                          f"{r['p90_ms']:.2f}", extra])
    print()
    print(C.md_table(["stage", "variant", "median ms", "mean ms", "p90 ms", "note"], table))
    print(f"\n{args.runs} timed runs per row after {args.warmup} warm-up runs; one process; "
          f"load average at the end: {[round(x, 2) for x in os.getloadavg()]}")
    C.write_json("latency" + (f"_runs{args.runs}" if args.runs != 50 else "")
                 + (f"_t{args.threads}" if args.threads else ""),
                 {**info, "frame": source, "size": [W, H], "jpeg_bytes": len(data), "runs": args.runs,
                  "warmup": args.warmup, "results": rows}, args.out)


if __name__ == "__main__":
    main()
