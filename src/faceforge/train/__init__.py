"""Training and classification: cached embeddings -> heads -> one portable model file."""

from faceforge.train.classifier import FaceClassifier, load_classifier
from faceforge.types import UNKNOWN, Prediction
from faceforge.train.core import MODEL_SUFFIX, TrainResult, evaluate, train

__all__ = ["MODEL_SUFFIX", "UNKNOWN", "FaceClassifier", "Prediction", "TrainResult", "evaluate",
           "load_classifier", "train"]
