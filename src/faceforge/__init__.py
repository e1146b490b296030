"""faceforge: a few photos per class in, a fast face classifier out.

The public facade. Models load lazily on first use; importing faceforge is cheap.

Example:
    >>> import faceforge
    >>> from skimage import data
    >>> faces = faceforge.detect(data.astronaut())
    >>> len(faces), faces.landmarks.shape
    (1, (1, 5, 2))
"""

# Re-exported on purpose (`X as X` marks them public for linters); __all__ lists them too.
from faceforge.errors import (
    BundleError as BundleError,
    FaceforgeError as FaceforgeError,
    ImageError as ImageError,
    ModelIntegrityError as ModelIntegrityError,
    ModelNotFoundError as ModelNotFoundError,
    NotFittedError as NotFittedError,
    ParameterError as ParameterError,
    SourceError as SourceError,
)
from faceforge.types import Faces as Faces

__version__ = "0.1.0"

_LAZY = {
    "detect": "faceforge.pipeline",
    "embed": "faceforge.pipeline",
    "verify": "faceforge.pipeline",
    "FacePipeline": "faceforge.pipeline",
    "FaceFinder": "faceforge.pipeline",
    "run_models": "faceforge.pipeline",
    "Verification": "faceforge.pipeline",
    "get_detector": "faceforge.detectors",
    "available_detectors": "faceforge.detectors",
    "get_embedder": "faceforge.embedders",
    "available_embedders": "faceforge.embedders",
    "align_faces": "faceforge.align",
    "load_image": "faceforge.sources",
    "iter_frames": "faceforge.sources",
    "open_source": "faceforge.sources",
    "run": "faceforge.runner",
    "detect_files": "faceforge.tasks",
    "embed_files": "faceforge.tasks",
    "classify_files": "faceforge.tasks",
    "analyze_files": "faceforge.tasks",
    "annotate": "faceforge.sinks",
    "list_models": "faceforge.registry",
    "train": "faceforge.train",
    "evaluate": "faceforge.train",
    "load_classifier": "faceforge.train",
    "FaceClassifier": "faceforge.train",
    "TrainConfig": "faceforge.train",
    "Prediction": "faceforge.types",
    "FaceModel": "faceforge.types",
    "UNKNOWN": "faceforge.types",
    "Gallery": "faceforge.gallery",
    "Analyzer": "faceforge.attributes",
    "create_app": "faceforge.service",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'faceforge' has no attribute {name!r}")


__all__ = sorted([*_LAZY, "Faces", "BundleError", "FaceforgeError", "ImageError", "ModelIntegrityError",
                  "ModelNotFoundError", "NotFittedError", "ParameterError", "SourceError", "__version__"])
