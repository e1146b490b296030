"""Classifier and regressor heads on face embeddings, open-set "unknown", metrics, model files.

Heads are scikit-learn estimators (``clone``, ``get_params`` / ``set_params`` and
``GridSearchCV`` work on them); they fit with scikit-learn and predict with numpy from plain
arrays, so a trained model is stored without pickle and predicts without calling scikit-learn.

Example:
    >>> import numpy as np
    >>> from faceforge.heads import make_head
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(1, 0.3, (20, 8)), rng.normal(-1, 0.3, (20, 8))])
    >>> y = np.repeat([0, 1], 20)
    >>> head = make_head("logreg", "classification").fit(X, y, classes=["a", "b"])
    >>> head.predict(X[:2]).tolist(), head.classes_
    ([0, 0], ['a', 'b'])
    >>> params, arrays = head.to_arrays()
    >>> bool(np.array_equal(type(head).from_arrays(params, arrays).predict_proba(X), head.predict_proba(X)))
    True
"""

from faceforge.heads.base import (
    HEADS,
    REGRESSORS,
    TASKS,
    ClassifierHead,
    Head,
    RegressorHead,
    head_class,
    head_from_arrays,
    make_head,
)
from faceforge.heads.bundle import FORMAT_VERSION, load_bundle, save_bundle
from faceforge.heads.metrics import (
    classification_report,
    format_report,
    regression_report,
)
from faceforge.heads.openset import OpenSet
from faceforge.heads.plots import confusion_matrix_png, learning_curve_png
from faceforge.heads.splits import kfold, split_holdout

__all__ = [
    "FORMAT_VERSION",
    "HEADS",
    "REGRESSORS",
    "TASKS",
    "ClassifierHead",
    "Head",
    "OpenSet",
    "RegressorHead",
    "classification_report",
    "confusion_matrix_png",
    "format_report",
    "head_class",
    "head_from_arrays",
    "kfold",
    "learning_curve_png",
    "load_bundle",
    "make_head",
    "regression_report",
    "save_bundle",
    "split_holdout",
]
