"""One-hidden-layer perceptron head, trained with scikit-learn, run with numpy.

Training: scikit-learn's ``MLPClassifier`` (adam) one epoch at a time. Early stopping holds
out a stratified, group-aware ~15% of the data, records the epoch with the lowest validation
log loss (patience ``n_iter_no_change`` epochs), then retrains on all data for that many
epochs from the same seed, so small data sets lose no training images.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any, Callable

import numpy as np

from faceforge.heads.base import ClassifierHead, softmax
from faceforge.heads.checks import check_choice, check_flag, check_number

_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda a: np.maximum(a, 0.0),
    "tanh": np.tanh,
    "logistic": lambda a: 1.0 / (1.0 + np.exp(-a)),
    "identity": lambda a: a,
}


def forward(Z: np.ndarray, W1: np.ndarray, b1: np.ndarray, W2: np.ndarray, b2: np.ndarray,
            activation: str) -> np.ndarray:
    """Class probabilities ``(n, m)`` of a one-hidden-layer network on ``Z (n, d)``.

    ``W1 (d, h)``, ``b1 (h,)``, ``W2 (h, o)``, ``b2 (o,)``; ``o == 1`` means two classes with a
    logistic output (scikit-learn's binary layout), else a softmax over ``o`` classes.
    """
    out = _ACTIVATIONS[activation](Z @ W1 + b1) @ W2 + b2
    if out.shape[1] == 1:
        p1 = 1.0 / (1.0 + np.exp(-np.clip(out[:, 0], -500, 500)))
        return np.stack([1.0 - p1, p1], axis=1)
    return softmax(out)


class MLPHead(ClassifierHead):
    """Multi-layer perceptron with one hidden layer.

    Args:
        hidden: hidden units (default 128).
        activation: ``"relu"`` (default), ``"tanh"``, ``"logistic"`` or ``"identity"``.
        alpha: L2 penalty (default 0.1).
        learning_rate: adam step size (default 3e-3).
        batch_size: rows per step (default 32).
        max_epochs: the most epochs (default 200).
        early_stopping: pick the epoch count on a held-out 15% (default True; skipped when
            no class has 2+ images to spare).
        n_iter_no_change: early-stopping patience in epochs (default 10).
        normalize, standardize: as for logreg (default True).
        class_weight: ``"balanced"`` (default), ``None`` or a dict class name -> weight. Class
            weights become sample weights (scikit-learn >= 1.7) or, on older versions,
            balanced resampling.
        seed: random seed.
    """

    kind = "mlp"
    required_arrays = ("W1", "b1", "W2", "b2")

    def __init__(self, *, hidden: int = 128, activation: str = "relu", alpha: float = 0.1,
                 learning_rate: float = 3e-3, batch_size: int = 32, max_epochs: int = 200,
                 early_stopping: bool = True, n_iter_no_change: int = 10, normalize: bool = True,
                 standardize: bool = True, class_weight: Any = "balanced", seed: int = 0) -> None:
        self.hidden = hidden
        self.activation = activation
        self.alpha = alpha
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.normalize = normalize
        self.standardize = standardize
        self.class_weight = class_weight
        self.seed = seed

    def _check_params(self) -> None:
        super()._check_params()
        for name in ("hidden", "batch_size", "max_epochs", "n_iter_no_change"):
            check_number(name, getattr(self, name), integer=True)
        check_number("alpha", self.alpha, zero=True)
        check_number("learning_rate", self.learning_rate)
        check_choice("activation", self.activation, tuple(_ACTIVATIONS))
        check_flag("early_stopping", self.early_stopping)

    def _new(self, n: int):
        from sklearn.neural_network import MLPClassifier

        # A RandomState instance (not an int) makes each partial_fit epoch shuffle differently.
        return MLPClassifier(hidden_layer_sizes=(int(self.hidden),), activation=self.activation,
                             alpha=float(self.alpha), learning_rate_init=float(self.learning_rate),
                             batch_size=int(min(self.batch_size, n)), shuffle=True,
                             random_state=np.random.RandomState(int(self.seed)))

    def _select_epochs(self, Z, yc, w, m, epochs: int, val) -> tuple[int, list[float]]:
        """Train epoch by epoch on ``Z``; return the epoch with the lowest loss on ``val`` and the curve."""
        from sklearn.neural_network import MLPClassifier

        net = self._new(len(Z))
        weighted = "sample_weight" in inspect.signature(MLPClassifier.partial_fit).parameters
        if not weighted:
            Z, yc = _balanced_resample(Z, yc, w, int(self.seed))
        kw = {"sample_weight": w} if weighted else {}
        classes = np.arange(m)
        best, best_epoch, bad, curve = np.inf, epochs, 0, []
        for epoch in range(1, epochs + 1):
            net.partial_fit(Z, yc, classes=classes, **kw)
            Zv, yv, wv = val
            P = forward(Zv, net.coefs_[0], net.intercepts_[0], net.coefs_[1], net.intercepts_[1],
                        self.activation)
            loss = float(np.sum(wv * -np.log(np.clip(P[np.arange(len(yv)), yv], 1e-15, 1))) / wv.sum())
            curve.append(round(loss, 5))
            if loss < best - 1e-4:
                best, best_epoch, bad = loss, epoch, 0
            else:
                bad += 1
                if bad >= int(self.n_iter_no_change):
                    break
        return best_epoch, curve

    def _train_all(self, Z, yc, w, m, epochs: int):
        """Train on all rows for exactly ``epochs`` epochs (one ``fit`` call: less overhead)."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        net = self._new(len(Z))
        net.set_params(max_iter=epochs, n_iter_no_change=epochs + 1, tol=0.0)
        if "sample_weight" in inspect.signature(MLPClassifier.fit).parameters:
            kw = {"sample_weight": w}
        else:
            Z, yc = _balanced_resample(Z, yc, w, int(self.seed))
            kw = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            net.fit(Z, yc, **kw)
        return net

    def _fit(self, Z, yc, w, cw, groups) -> None:
        from faceforge.heads.splits import split_holdout

        m = int(yc.max()) + 1
        epochs = int(self.max_epochs)
        info: dict[str, Any] = {"early_stopped": False}
        if self.early_stopping:
            tr, va = split_holdout(yc, val=0.15, seed=int(self.seed), groups=groups)
            if len(va) and len(np.unique(yc[tr])) == m:
                epochs, curve = self._select_epochs(Z[tr], yc[tr], w[tr], m, epochs, (Z[va], yc[va], w[va]))
                info = {"early_stopped": True, "val_log_loss": curve[epochs - 1], "n_val": int(len(va))}
        net = self._train_all(Z, yc, w, m, epochs)
        self.arrays_.update(W1=net.coefs_[0], b1=net.intercepts_[0], W2=net.coefs_[1], b2=net.intercepts_[1])
        self.fit_info_ = {**info, "epochs": int(epochs)}

    def _output(self, Z: np.ndarray) -> np.ndarray:
        s = self.arrays_
        return forward(Z, s["W1"], s["b1"], s["W2"], s["b2"], self.activation)


def _balanced_resample(Z: np.ndarray, yc: np.ndarray, w: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw rows with probability proportional to their weight (same number of rows, seeded)."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(yc), size=len(yc), replace=True, p=w / w.sum()))
    return Z[idx], yc[idx]
