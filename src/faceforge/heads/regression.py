"""Ridge regression head for numeric labels (age, a score, ...), with an optional monotone calibration."""

from __future__ import annotations

from typing import Any

import numpy as np

from faceforge.heads.base import RegressorHead, internal_folds
from faceforge.heads.checks import check_flag, check_number

#: regularisation strengths tried by ``alpha="auto"`` (standardised features).
ALPHA_GRID = tuple(float(a) for a in np.logspace(-2, 4, 13))
#: Knots of the calibration map (at quantiles of the out-of-fold predictions). On the UTKFace age
#: model (benchmarks/bench_accurate_attributes.py) 8 to 32 knots give the same held-out MAE
#: within 0.02 years; 16 keeps the map smooth and the model file small.
CALIBRATION_KNOTS = 16
#: Out-of-fold predictions the calibration is fitted on: this many folds (group-aware with ``groups``).
CALIBRATION_FOLDS = 5


def apply_calibration(values: np.ndarray, knots_x: np.ndarray, knots_y: np.ndarray) -> np.ndarray:
    """The piecewise-linear map through ``(knots_x, knots_y)``, continued with slope 1 past the ends.

    Equal to ``y0 + min(v - x0, 0) + sum_i s_i * clip(v - x_i, 0, w_i) + max(v - x_last, 0)``
    with ``w_i = x_{i+1} - x_i`` and ``s_i = (y_{i+1} - y_i) / w_i`` (the form the ONNX export
    builds, :mod:`faceforge.heads.onnx_calibration`).

    Args:
        values: raw predictions, any shape.
        knots_x: ``(k,)`` strictly increasing.
        knots_y: ``(k,)`` non-decreasing (a monotone map keeps the order of the predictions).

    Returns:
        ``float64`` array of ``values``' shape.
    """
    v = np.asarray(values, np.float64)
    x, y = np.asarray(knots_x, np.float64), np.asarray(knots_y, np.float64)
    out = np.interp(v, x, y)
    out = np.where(v < x[0], y[0] + (v - x[0]), out)
    return np.where(v > x[-1], y[-1] + (v - x[-1]), out)


def fit_calibration(pred: np.ndarray, y: np.ndarray, knots: int = CALIBRATION_KNOTS) -> tuple[np.ndarray, np.ndarray]:
    """Knots of a monotone map from predictions to targets: isotonic regression of ``y`` on ``pred``,
    read at ``knots`` quantiles of ``pred``.

    Returns:
        ``(knots_x, knots_y)`` float64, ``knots_x`` strictly increasing, ``knots_y`` non-decreasing.
    """
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(pred, y)
    x = np.unique(np.quantile(pred, np.linspace(0.0, 1.0, int(knots))))
    ky = np.maximum.accumulate(iso.predict(x).astype(np.float64))
    return x.astype(np.float64), ky


class RidgeHead(RegressorHead):
    """Linear least squares with an L2 penalty: ``y = Z @ w + b``, optionally followed by a
    monotone calibration map.

    Args:
        alpha: penalty strength, or ``"auto"`` (default): chosen from :data:`ALPHA_GRID` by
            cross-validation (efficient leave-one-out, or group-aware 3-fold when ``groups``
            is given, so augmented copies do not leak).
        normalize: L2-normalise embeddings first (default True).
        standardize: zero-mean / unit-variance features (default True).
        calibrate: also fit a monotone piecewise-linear map (isotonic regression on
            :data:`CALIBRATION_FOLDS`-fold out-of-fold predictions, :data:`CALIBRATION_KNOTS`
            knots, arrays ``calib_x`` / ``calib_y``) applied after the linear part. A ridge
            shrinks towards the mean, so the extremes of the target are pulled in (the oldest
            faces are predicted too young, the youngest too old); the map undoes that. Default
            False. On the built-in age model: MAE for 60+ 9.98 -> 7.2 years, overall 6.03 -> 5.75
            (docs/benchmarks.md).
        class_weight: accepted for a uniform interface; ignored (regression has no classes).
        seed: random seed (the group folds of ``alpha="auto"``, the calibration's folds).
    """

    kind = "ridge"
    required_arrays = ("coef", "intercept")

    def __init__(self, *, alpha: Any = "auto", normalize: bool = True, standardize: bool = True,
                 calibrate: bool = False, class_weight: Any = "balanced", seed: int = 0) -> None:
        self.alpha = alpha
        self.normalize = normalize
        self.standardize = standardize
        self.calibrate = calibrate
        self.class_weight = class_weight
        self.seed = seed

    def _check_params(self) -> None:
        super()._check_params()
        check_number("alpha", self.alpha, auto=True)
        check_flag("calibrate", self.calibrate)

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
        if self.calibrate:
            info["calibration"] = self._fit_calibration(Z, yc, groups, float(alpha))
        self.fit_info_ = {**info, "alpha": float(alpha)}

    def _fit_calibration(self, Z: np.ndarray, yc: np.ndarray, groups: np.ndarray | None,
                         alpha: float) -> dict[str, Any]:
        """Fit ``calib_x`` / ``calib_y`` on out-of-fold predictions; return what it measured."""
        from sklearn.linear_model import Ridge

        folds = internal_folds(yc, groups, int(self.seed), max_folds=CALIBRATION_FOLDS)
        if not folds:
            return {"skipped": "too few samples for out-of-fold predictions"}
        oof = np.zeros(len(yc))
        for tr, te in folds:
            oof[te] = Ridge(alpha=alpha).fit(Z[tr], yc[tr]).predict(Z[te])
        kx, ky = fit_calibration(oof, yc, CALIBRATION_KNOTS)
        if len(kx) < 2:
            return {"skipped": "the out-of-fold predictions are constant"}
        self.arrays_.update(calib_x=kx, calib_y=ky)
        cal = apply_calibration(oof, kx, ky)
        return {"folds": len(folds), "knots": int(len(kx)), "oof_mae": round(float(np.mean(np.abs(oof - yc))), 4),
                "oof_mae_calibrated": round(float(np.mean(np.abs(cal - yc))), 4)}

    def _output(self, Z: np.ndarray) -> np.ndarray:
        raw = Z @ self.arrays_["coef"] + float(self.arrays_["intercept"][0])
        if "calib_x" in self.arrays_:
            return apply_calibration(raw, self.arrays_["calib_x"], self.arrays_["calib_y"])
        return raw
