"""Parity: the exported graph against faceforge's own path (embedder + head + unknown check) on the same chips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def session(path: str | Path, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session of ``path`` with ``threads`` intra-op threads (1: reproducible timings)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def reference(clf: Any, chips: dict[str, np.ndarray], inputs: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """faceforge's outputs for ``chips`` (graph input name -> ``(n, H, W, 3) uint8``), named as the graph's.

    Each part of the model's embedder embeds the chips of its input; a concatenation joins them with
    :func:`faceforge.embedders.concat.combine`; then the head and the unknown check run in numpy.
    """
    from faceforge.embedders.base import embedder_parts, get_embedder
    from faceforge.embedders.concat import combine

    by_part = {}
    for entry in inputs:
        for p in entry["embedder"].split("+"):
            by_part[p] = entry["name"]
    parts = embedder_parts(clf.manifest["embedder"])
    from faceforge.embedders.tta import tta_for

    tta = tta_for(clf.quality)  # an accurate model: each chip averaged with its mirror image, as it was trained
    embs = [np.asarray(get_embedder(p).embed(chips[by_part[p]], tta=tta), np.float32) for p in parts]
    if len(parts) == 1:
        X = embs[0]
    else:
        X = combine([bool(getattr(get_embedder(p), "normalize_for_heads", True)) for p in parts], embs)
    out: dict[str, np.ndarray] = {"embedding": X}
    if clf.task == "regression":
        out["value"] = clf.head.predict(X)
    else:
        out["probabilities"] = clf.head.predict_proba(X)
    if clf.openset is not None:
        out["unknown_score"] = clf.openset.score(X)
        out["accepted"] = clf.openset.accept(X)
    return out


def run(path: str | Path, chips: dict[str, np.ndarray], threads: int = 1) -> dict[str, np.ndarray]:
    """The graph's outputs for ``chips``, by output name."""
    sess = session(path, threads)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, chips)))


def compare(clf: Any, result: Any, chips: dict[str, np.ndarray]) -> dict[str, Any]:
    """Run both paths on ``chips``: the largest absolute differences and whether the decisions agree.

    Returns:
        ``{"faces", "max_abs_diff": {output: float}, "labels_agree", "accepted_agree"}``.
    """
    ref = reference(clf, chips, result.sidecar["inputs"])
    got = run(result.classifier, chips)
    diffs = {k: float(np.max(np.abs(np.asarray(got[k], np.float64) - np.asarray(ref[k], np.float64)), initial=0.0))
             for k in ("probabilities", "value", "unknown_score") if k in ref}
    rep: dict[str, Any] = {"faces": int(len(next(iter(chips.values())))), "max_abs_diff": diffs}
    if "probabilities" in ref:
        top_got, top_ref = np.argmax(got["probabilities"], 1), np.argmax(ref["probabilities"], 1)
        rep["labels_agree"] = bool(np.array_equal(top_got, top_ref))
    if "accepted" in ref:
        rep["accepted_agree"] = bool(np.array_equal(got["accepted"], ref["accepted"]))
    return rep


def synthetic_chips(inputs: list[dict[str, Any]], n: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic test chips per input: smooth gradients and noise (no photo needed; parity, not accuracy)."""
    rng = np.random.default_rng(seed)
    out = {}
    for entry in inputs:
        s = int(entry["alignment"]["size"])
        yy, xx = np.mgrid[0:s, 0:s] / max(s - 1, 1)
        chips = []
        for i in range(n):
            base = np.stack([xx, yy, (xx + yy) / 2], axis=-1) * (200 - 30 * i) + 20 * i
            noise = rng.normal(0, 10 + 10 * i, (s, s, 3))
            chips.append(np.clip(base + noise, 0, 255).astype(np.uint8))
        out[entry["name"]] = np.stack(chips)
    return out


def chips_from_image(clf: Any, image: Any, inputs: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Each input's chips of every face in ``image``, cut by faceforge's own pipeline (the model's detector).

    Raises:
        ImageError: no face found.
    """
    from faceforge.embedders.base import get_embedder
    from faceforge.errors import ImageError
    from faceforge.sources import load_image

    pipe = clf.pipeline
    img = load_image(image)
    faces, det_img, _ = pipe.finder.find_scaled(img)
    if not len(faces):
        raise ImageError(f"{image}: no face found by {pipe.finder.detector_name!r}; give a photo with a face.")
    return {e["name"]: pipe.chips(det_img, faces, get_embedder(e["embedder"].split("+")[0])) for e in inputs}
