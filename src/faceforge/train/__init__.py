"""Training and classification: cached embeddings -> heads -> one portable model file."""

from faceforge.train.classifier import FaceClassifier, load_classifier
from faceforge.train.config import TrainConfig
from faceforge.train.core import MODEL_SUFFIX, TrainResult, evaluate, train
from faceforge.types import UNKNOWN, Prediction

__all__ = ["MODEL_SUFFIX", "UNKNOWN", "FaceClassifier", "Prediction", "TrainConfig", "TrainResult", "evaluate",
           "load_classifier", "train"]
