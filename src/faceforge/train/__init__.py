"""Training and classification: cached embeddings -> heads -> one portable model file."""

from faceforge.train.classifier import (
           UNKNOWN,
           FaceClassifier,
           Prediction,
           load_classifier,
)
from faceforge.train.config import TrainConfig
from faceforge.train.core import MODEL_SUFFIX, TrainResult, evaluate, train

__all__ = ["MODEL_SUFFIX", "UNKNOWN", "FaceClassifier", "Prediction", "TrainConfig", "TrainResult", "evaluate",
           "load_classifier", "train"]
