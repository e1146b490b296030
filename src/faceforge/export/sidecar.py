"""The sidecar ``model.json``: everything a program without faceforge needs to feed and read ``classifier.onnx``.

Keys (stable; new ones may be added, none renamed):

* ``format`` (``"faceforge-onnx"``), ``format_version``, ``faceforge_version``, ``opset``, ``created``;
* ``task`` (``"classification"`` / ``"regression"``), ``labels`` (the order of the columns of
  ``probabilities``), ``rejected_label`` (``"unknown"``, or the one negatives class such as
  ``"not_me"``) and ``known_labels`` (the classes the unknown check guards), ``threshold``;
* ``inputs``: one entry per graph input (one, ``chip``, unless a concatenated embedder's parts cut
  different chips): ``name``, ``embedder``, ``shape``, ``dtype``, ``layout`` (NHWC), ``colour``
  (RGB), the normalisation the graph does inside (for information: feed raw uint8 pixels) and
  ``alignment`` (how to cut the chip from a photo, below); ``chip_size`` and ``alignment`` repeat
  the first input's for simple readers;
* ``outputs``: name -> shape, dtype and meaning;
* ``alignment``: ``method`` ``"similarity"`` (a least-squares similarity transform from the
  face's 5 landmarks, in ``landmarks`` order, to ``reference_points`` in chip pixels:
  ``cv2.estimateAffinePartial2D`` or umeyama; then ``cv2.warpAffine`` with ``interpolation``
  and ``border``), ``"box"`` (no landmarks: a square of ``margin`` x the longer box side centred on
  the box centre moved down by ``shift`` x the box height, scaled to the chip) or ``"dlib5"``
  (dlib's own 5-point predictor; ``reference_points`` then give the runner's similarity
  approximation). ``fallback`` says how faceforge cuts a face without landmarks;
* ``head``, ``metrics`` and ``headline`` (the training report's validation), ``licences`` (every
  weight inside the graph, from :mod:`faceforge.registry`), ``trained_with`` (detector, crop
  mode, upscaling), ``detector`` (only with ``--with-detector``: the detector graph's own section),
  ``files`` (name -> ``sha256`` and ``bytes``).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np

from faceforge.types import LANDMARK_NAMES

FORMAT = "faceforge-onnx"
FORMAT_VERSION = 1

#: How faceforge warps every chip (faceforge.align.warp_chips).
WARP = {"function": "cv2.warpAffine", "interpolation": "linear", "border": "replicate",
        "note": "faceforge first shrinks with cv2.INTER_AREA when the transform scales the face down by more "
                "than 2x (to avoid aliasing); a plain warpAffine differs only slightly there"}


def part_alignment(part: str, override: Any) -> dict[str, Any]:
    """The chip geometry of embedder ``part`` (its registry alignment, overridden by the model's)."""
    from faceforge.align import get_template
    from faceforge.embedders.base import embedder_class

    a = dict(getattr(embedder_class(part), "alignment", {}))
    if isinstance(override, str):
        a["template"] = override
    elif isinstance(override, dict):
        a.update(override)
    template = a.get("template", "arcface112")
    if template == "margin":
        size = int(a.get("size") or 224)
        k = 1.0 if a.get("margin") is None else float(a["margin"])
        how = ("square of side margin * max(box width, box height), centred on the box centre (moved down by "
               "shift * box height), scaled to size x size")
        out: dict[str, Any] = {"method": "box", "template": "margin", "size": size, "margin": k, "shift": 0.0,
                               "warp": WARP, "how": how}
        if a.get("framing"):  # per detector [margin, shift] (the emotion networks' crop)
            out["framing"] = {str(d): [float(v) for v in ms] for d, ms in a["framing"].items()}
            out["how"] += "; framing gives margin and shift for boxes from the named detectors"
        return out
    if template == "dlib5":
        size = int(a.get("size") or 150)
        pad = 0.25 if a.get("margin") is None else float(a["margin"])
        tpl = get_template("dlib150")
        # dlib150's points are where dlib's chip (padding 0.25) puts our 5 landmarks; re-pad them
        unit = (np.asarray(tpl.points, np.float64) * 1.5 - 0.25 + pad) / (1 + 2 * pad)
        return {"method": "dlib5", "template": "dlib5", "size": size, "padding": pad, "landmarks": list(LANDMARK_NAMES),
                "reference_points": np.round(unit * size, 4).tolist(), "warp": WARP,
                "exact": "dlib.shape_predictor (shape_predictor_5_face_landmarks.dat) on the detector box, then "
                         "dlib.get_face_chip_details(shape, size, padding); faceforge.align.dlib_chip",
                "approximation": "without dlib: a similarity transform of the 5 landmarks to reference_points "
                                 "(faceforge's dlib150 template re-padded), then warpAffine as for 'similarity'",
                "fallback": {"method": "box", "margin": tpl.fallback_margin, "shift": tpl.fallback_shift}}
    tpl = get_template(template)
    size = int(a.get("size") or tpl.size)
    return {"method": "similarity", "template": tpl.name, "size": size, "landmarks": list(LANDMARK_NAMES),
            "reference_points": np.round(np.asarray(tpl.points, np.float64) * size, 4).tolist(),
            "estimator": "least-squares similarity (rotation, uniform scale, translation) over the landmarks "
                         "present; both eyes needed (faceforge.align.umeyama)",
            "warp": WARP,
            "fallback": {"method": "box", "margin": tpl.fallback_margin, "shift": tpl.fallback_shift,
                         "when": "a face without both eye landmarks"}}


def input_entry(name: str, part: str, override: Any) -> dict[str, Any]:
    """One ``inputs`` entry: the chip a graph input takes."""
    from faceforge.registry import get_spec

    spec = get_spec(part)
    align = part_alignment(part, override)
    size = align["size"]
    inp = spec.input
    return {"name": name, "embedder": part, "shape": ["N", size, size, 3], "dtype": "uint8", "layout": "NHWC",
            "colour": "RGB", "range": [0, 255],
            "normalisation_in_graph": {"colour": inp.get("colour", "RGB"), "mean": inp.get("mean"),
                                       "std": inp.get("std"),
                                       "note": "done inside the graph: feed raw uint8 RGB pixels"},
            "alignment": align}


def licences(embedder: str, head_kind: str) -> list[dict[str, str]]:
    """The licence of every weight file the graph holds, from the registry."""
    from faceforge.embedders.base import embedder_parts
    from faceforge.registry import get_spec

    names: list[str] = []
    for p in embedder_parts(embedder):
        names.append(p)
        names.extend(get_spec(p).parts)
    out = []
    for n in dict.fromkeys(names):
        s = get_spec(n)
        out.append({"model": s.name, "what": s.description, "licence": s.license, "package": s.package,
                    "sha256": s.sha256})
    h = get_spec(head_kind)
    out.append({"model": head_kind, "what": "the head, trained by faceforge on your photos", "licence": h.license,
                "package": h.package, "sha256": ""})
    return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def build_sidecar(clf: Any, inputs: list[dict[str, Any]], outputs: dict[str, Any], opset: int) -> dict[str, Any]:
    """The sidecar of classifier ``clf`` (without ``files`` and ``detector``, which the writer adds)."""
    from faceforge import __version__

    m = clf.manifest
    metrics = dict(m.get("metrics") or {})
    os_ = clf.openset
    head = m.get("head", {})
    side: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "faceforge_version": __version__, "opset": int(opset),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": {"name": clf.name, "created": m.get("created"), "faceforge_version": m.get("faceforge_version"),
                  "embedder": m.get("embedder"), "embedding_dim": m.get("embedding_dim"),
                  # accurate: the graph averages each chip's embedding with its mirror image's itself
                  "quality": clf.quality},
        "task": clf.task,
        "labels": list(clf.classes),
        "known_labels": clf.known_classes if clf.task == "classification" else [],
        "rejected_label": clf.rejected_label if os_ is not None else None,
        "unknown_check": os_ is not None,
        "threshold": None if os_ is None else float(os_.threshold),
        "unknown": None if os_ is None else {
            "score": f"{os_.score_kind} ({os_.metric})", "threshold": float(os_.threshold),
            "rule": "accepted = unknown_score >= threshold; a face not accepted gets rejected_label",
            "target_far": os_.target_far, "far": os_.far, "frr": os_.frr},
        "inputs": inputs,
        "chip_size": inputs[0]["alignment"]["size"],
        "alignment": inputs[0]["alignment"],
        "outputs": outputs,
        "head": {"kind": head.get("kind"), "params": head.get("params", {}), "n_features": head.get("n_features")},
        "metrics": metrics,
        "headline": metrics.get("headline"),
        "licences": licences(m["embedder"], head.get("kind", "logreg")),
        "trained_with": {"detector": m.get("detector"), "crops": m.get("crops"), "upscale": m.get("upscale"),
                         "alignment": m.get("alignment"),
                         "note": "faces were found with this faceforge detector; any detector giving the 5 "
                                 "landmarks works, one close to it works best"},
    }
    return _jsonable(side)
