"""``faceforge demo``: the main job on a fresh machine, using only images shipped in installed packages."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceforge.align import align_faces
from faceforge.detectors import DEFAULT_LIVE_DETECTOR, DEFAULT_PHOTO_DETECTOR, available_detectors, get_detector
from faceforge.errors import FaceforgeError
from faceforge.pipeline import FacePipeline
from faceforge.registry import is_installed
from faceforge.sinks import annotate, atomic_write, save_image


def sample_images() -> dict[str, np.ndarray]:
    """Photos that ship inside installed packages (scikit-image), plus a collage made from them."""
    from skimage import data

    astro = data.astronaut()
    images = {"astronaut": astro, "camera": np.repeat(data.camera()[:, :, None], 3, axis=2)}
    images["collage"] = make_collage(astro)
    return images


def make_collage(face_image: np.ndarray, seed: int = 0) -> np.ndarray:
    """A 1280x720 'group photo': the face image pasted at several scales, mirrored and tilted."""
    rng = np.random.default_rng(seed)
    canvas = np.full((720, 1280, 3), 235, np.uint8)
    canvas[:] = np.linspace(180, 250, 1280, dtype=np.float32)[None, :, None].astype(np.uint8)
    crop = face_image[30:230, 130:330]  # head and shoulders
    spots = [(40, 60, 300, 0), (420, 120, 200, 12), (720, 80, 150, -10), (950, 300, 110, 0),
             (1120, 100, 80, 8), (250, 470, 170, -15), (620, 480, 120, 0)]
    for i, (x, y, side, angle) in enumerate(spots):
        tile = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
        if i % 2:
            tile = tile[:, ::-1]
        if angle:
            m = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
            tile = cv2.warpAffine(tile, m, (side, side), borderMode=cv2.BORDER_REFLECT)
        tile = np.clip(tile.astype(np.int16) + int(rng.integers(-25, 25)), 0, 255).astype(np.uint8)
        canvas[y:y + side, x:x + side] = tile
    return canvas


def run_demo(output: str | Path, console: Any = None) -> dict[str, Any]:
    """Detect, align and embed faces in the sample photos with every installed detector.

    Writes ``<output>/<image>_<detector>.jpg`` (annotated), ``<output>/<image>_chips.png``
    (aligned chips), ``<output>/<image>_analyze.jpg`` (gender, age, emotion) and
    ``<output>/results.json``.

    Returns:
        The results dict that was written to JSON.
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    say = console.print if console is not None else (lambda *a, **k: None)
    images = sample_images()
    dets = [d for d in ("yunet", "blazeface.short", "blazeface.full", "mtcnn", "haar") if d in available_detectors()]
    results: dict[str, Any] = {"defaults": {"photo": DEFAULT_PHOTO_DETECTOR, "live": DEFAULT_LIVE_DETECTOR},
                               "images": {}}
    for name, img in images.items():
        save_image(output / f"{name}.png", img)
        entry: dict[str, Any] = {"size": [img.shape[1], img.shape[0]], "detections": {}}
        for det_name in dets:
            try:
                det = get_detector(det_name)
            except FaceforgeError as e:
                entry["detections"][det_name] = {"error": str(e)}
                continue
            det(img)  # warm-up
            t0 = time.perf_counter()
            faces = det(img)
            ms = (time.perf_counter() - t0) * 1000
            save_image(output / f"{name}_{det_name}.jpg", annotate(img, faces))
            entry["detections"][det_name] = {"ms": round(ms, 2), "faces": faces.to_dicts()}
            say(f"{name:>10} {det_name:<16} {len(faces)} face(s) in {ms:6.1f} ms")
        results["images"][name] = entry

    # Alignment + identity embeddings with the photo default.
    pipe = FacePipeline(DEFAULT_PHOTO_DETECTOR, "dlib-resnet")
    collage = images["collage"]
    faces = pipe.embed(collage)
    if len(faces):
        chips = align_faces(collage, faces, "arcface112")
        save_image(output / "collage_chips.png", np.concatenate(list(chips), axis=1))
        emb = faces.embedding
        ref = pipe.embed(images["astronaut"]).embedding
        d = np.linalg.norm(emb - ref[:1], axis=1) if len(ref) else np.array([])
        results["identity"] = {
            "embedder": "dlib-resnet", "threshold": pipe.embedder.threshold,
            "collage_faces_vs_astronaut_distance": [round(float(x), 4) for x in d],
            "same_person": [bool(x <= pipe.embedder.threshold) for x in d],
        }
        say(f"identity: {len(faces)} collage faces vs the astronaut photo, distances "
            f"{', '.join(f'{x:.3f}' for x in d)} (same person if <= {pipe.embedder.threshold})")
    # Gender, age and emotion out of the box.
    try:
        from faceforge.attributes import Analyzer

        an = Analyzer()
        results["attributes"] = {}
        for name in ("astronaut", "collage"):
            res = an.analyze(images[name])
            results["attributes"][name] = res.to_dicts()
            if len(res):
                save_image(output / f"{name}_analyze.jpg",
                           annotate(images[name], res, [r.label_text() for r in res.rows()]))
            say(f"{name:>10} analyze: " + "; ".join(
                f"{r['gender'].label} {r['gender'].score:.2f}, age {r['age'].value:.0f}, {r['emotion'].label}"
                for r in res.rows()))
    except FaceforgeError as e:
        results["attributes"] = {"error": str(e)}
        say(f"analyze: {e}")
    results["models_installed"] = {n: is_installed(n) for n in ("yunet", "blazeface.short", "dlib-resnet",
                                                                "effnet-lite0", "agegender", "faceforge-emotion")}
    atomic_write(output / "results.json", json.dumps(results, indent=2).encode())
    say(f"wrote annotated images and results.json to {output}/")
    return results
