"""Ridge regression head for numeric labels (age, a score, ...)."""

from __future__ import annotations

from typing import Any

import numpy as np

from faceforge.errors import ParameterError
from faceforge.heads.base import Head, internal_folds

#: regularisation strengths tried by ``alpha="auto"`` (standardised features).
ALPHA_GRID = tuple(float(a) for a in np.logspace(-2, 4, 13))


class RidgeHead(Head):
    """Linear least squares with an L2 penalty: ``y = Z @ w + b``.

    Parameters:
        alpha: penalty strength, or ``"auto"`` (default): chosen from :data:`ALPHA_GRID` by
            cross-validation (efficient leave-one-out, or group-aware 3-fold when ``groups``
            is given, so augmented copies do not leak).
        normalize: L2-normalise embeddings first (default True).
        standardize: zero-mean / unit-variance features (default True).
    """

    kind = "ridge"
    task = "regression"
    defaults = {"alpha": "auto", "normalize": True, "standardize": True}
    required_arrays = ("coef", "intercept")

    def _check_params(self) -> None:
        super()._check_params()
        a = self.params["alpha"]
        if a != "auto" and (not isinstance(a, (int, float)) or isinstance(a, bool) or not a > 0):
            raise ParameterError(f"alpha must be a positive number or 'auto', but got {a!r}.")

    def _fit(self, Z, yc, w, cw, groups) -> None:
        from sklearn.linear_model import Ridge, RidgeCV

        alpha = self.params["alpha"]
        info: dict[str, Any] = {}
        if alpha == "auto":
            cv = None
            if groups is not None:
                folds = internal_folds(yc, groups, self.seed)
                cv = folds or None
            est = RidgeCV(alphas=ALPHA_GRID, cv=cv).fit(Z, yc)
            alpha = float(est.alpha_)
            info["alpha_search"] = "group 3-fold" if cv else "leave-one-out"
        est = Ridge(alpha=float(alpha)).fit(Z, yc)
        self._state.update(coef=np.asarray(est.coef_, np.float64), intercept=np.array([float(est.intercept_)]))
        self.fit_info_ = {**info, "alpha": float(alpha)}

    def _output(self, Z: np.ndarray) -> np.ndarray:
        return Z @ self._state["coef"] + float(self._state["intercept"][0])
