"""Per-track label smoothing: a steady label per face instead of one that flickers frame to frame.

Classification: an exponential average of the probability vectors a track has received; the shown
label changes only when another class's average beats the current one by ``switch_margin``
(hysteresis). "unknown" (the open-set check) is a class of its own in the average, so one frame
that looks like a stranger does not relabel a known face. Regression (age): an exponential
average of the values.
"""

from __future__ import annotations

from typing import Any


from faceforge.errors import ParameterError


class LabelSmoother:
    """Smooths the predictions of one model for one track.

    Args:
        alpha: weight of each new prediction in the running average (1: no smoothing).
        switch_margin: the shown label changes only when another label's average probability
            exceeds the shown one's by this much.
    """

    def __init__(self, alpha: float = 0.3, switch_margin: float = 0.15) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ParameterError(f"alpha must lie in (0, 1], got {alpha}")
        if not 0.0 <= switch_margin < 1.0:
            raise ParameterError(f"switch_margin must lie in [0, 1), got {switch_margin}")
        self.alpha, self.switch_margin = float(alpha), float(switch_margin)
        self.probs: dict[str, float] = {}
        self.value: float | None = None
        self.label: str | None = None
        self.updates = 0

    def update(self, prediction: Any) -> Any:
        """Add one :class:`~faceforge.types.Prediction`; return the smoothed prediction."""
        from faceforge.types import Prediction

        self.updates += 1
        a = self.alpha if self.updates > 1 else 1.0
        if prediction.value is not None:  # regression
            v = float(prediction.value)
            self.value = v if self.value is None else (1 - a) * self.value + a * v
            return Prediction(f"{self.value:.1f}", self.value, value=self.value)
        new = {lab: float(p) for lab, p in (prediction.top_k or [(prediction.label, prediction.score)])}
        if prediction.label not in new:  # e.g. "unknown": its own class, with the top score
            new = {prediction.label: float(prediction.score)}
        for lab in set(self.probs) | set(new):
            self.probs[lab] = (1 - a) * self.probs.get(lab, 0.0) + a * new.get(lab, 0.0)
        best = max(self.probs, key=self.probs.__getitem__)
        if self.label is None or (best != self.label and
                                  self.probs[best] - self.probs.get(self.label, 0.0) > self.switch_margin):
            self.label = best
        ranked = sorted(self.probs.items(), key=lambda kv: -kv[1])
        # the model's threshold and its false-accept rate hold for the smoothed label too; distance and
        # known_score are the latest face's
        return Prediction(self.label, self.probs[self.label], ranked[: max(1, len(prediction.top_k))],
                          prediction.known_score, distance=prediction.distance, threshold=prediction.threshold,
                          far=prediction.far)


def count_flips(labels: list[str | None]) -> int:
    """How often a sequence of labels changes (``None`` entries, frames without a label, are skipped)."""
    seq = [x for x in labels if x is not None]
    return int(sum(1 for a, b in zip(seq, seq[1:]) if a != b))


def flips_per_second(labels: list[str | None], fps: float) -> float:
    """Label changes per second of a track's label sequence at ``fps`` frames per second."""
    n = len(labels)
    return count_flips(labels) / (n / fps) if n and fps > 0 else 0.0


__all__ = ["LabelSmoother", "count_flips", "flips_per_second"]
