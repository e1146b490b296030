"""Which of a live analyzer's models give identity embeddings, and their same-person thresholds.

Here rather than in :mod:`faceforge.track.identity` (which holds the per-track history that uses
them): the thresholds come from :mod:`faceforge.pipeline.verify`, a layer the tracker does not import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faceforge.track.identity import IdentityMetric, cosine_distance, euclidean_distance


def identity_embedders(models: Mapping[str, Any]) -> dict[str, IdentityMetric]:
    """``{embedding key: IdentityMetric}`` for the models' embeddings that tell people apart.

    An embedding is an identity embedding when its embedder's registry entry has a same-person
    ``threshold`` (dlib-resnet: yes; agegender: no). The threshold is the one-to-one verification
    threshold at faceforge's default false-accept rate (:func:`faceforge.pipeline.verify.decision_threshold`).
    """
    from faceforge.errors import FaceforgeError
    from faceforge.pipeline.verify import decision_threshold
    from faceforge.registry import get_spec

    out: dict[str, IdentityMetric] = {}
    for m in models.values():
        key = getattr(m, "embedding_key", None)
        if not key or key in out:
            continue
        name = key.split("{", 1)[0]
        try:
            inp = get_spec(name).input
        except FaceforgeError:
            continue
        if inp.get("threshold") is None:
            continue
        thr, _ = decision_threshold(name, float(inp["threshold"]), kind="pair",
                                    quality=str(getattr(m, "quality", "fast")))  # the preset's own table
        dist = cosine_distance if inp.get("metric") == "cosine" else euclidean_distance
        out[key] = IdentityMetric(name, float(thr), dist)
    return out
