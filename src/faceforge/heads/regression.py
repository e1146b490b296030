"""Ridge regression head for numeric labels (age, a score, ...)."""

from __future__ import annotations

from typing import Any

import numpy as np

from faceforge.heads.base import RegressorHead, internal_folds
from faceforge.heads.checks import check_number

#: regularisation strengths tried by ``alpha="auto"`` (standardised features).
ALPHA_GRID = tuple(float(a) for a in np.logspace(-2, 4, 13))


class RidgeHead(RegressorHead):
    """Linear least squares with an L2 penalty: ``y = Z @ w + b``.

    Args:
        alpha: penalty strength, or ``"auto"`` (default): chosen from :data:`ALPHA_GRID` by
            cross-validation (efficient leave-one-out, or group-aware 3-fold when ``groups``
            is given, so augmented copies do not leak).
        normalize: L2-normalise embeddings first (default True).
        standardize: zero-mean / unit-variance features (default True).
        class_weight: accepted for a uniform interface; ignored (regression has no classes).
        seed: random seed (the group folds of ``alpha="auto"``).
    """

    kind = "ridge"
    required_arrays = ("coef", "intercept")

    def __init__(self, *, alpha: Any = "auto", normalize: bool = True, standardize: bool = True,
                 class_weight: Any = "balanced", seed: int = 0) -> None:
        self.alpha = alpha
        self.normalize = normalize
        self.standardize = standardize
        self.class_weight = class_weight
        self.seed = seed

    def _check_params(self) -> None:
        super()._check_params()
        check_number("alpha", self.alpha, auto=True)

    def _fit(self, Z, yc, w, cw, groups) -> None:
        from sklearn.linear_model import Ridge, RidgeCV

        alpha = self.alpha
        info: dict[str, Any] = {}
        if alpha == "auto":
            cv = None
            if groups is not None:
                folds = internal_folds(yc, groups, int(self.seed))
                cv = folds or None
            est = RidgeCV(alphas=ALPHA_GRID, cv=cv).fit(Z, yc)
            alpha = float(est.alpha_)
            info["alpha_search"] = "group 3-fold" if cv else "leave-one-out"
        est = Ridge(alpha=float(alpha)).fit(Z, yc)
        self.arrays_.update(coef=np.asarray(est.coef_, np.float64), intercept=np.array([float(est.intercept_)]))
        self.fit_info_ = {**info, "alpha": float(alpha)}

    def _output(self, Z: np.ndarray) -> np.ndarray:
        return Z @ self.arrays_["coef"] + float(self.arrays_["intercept"][0])
