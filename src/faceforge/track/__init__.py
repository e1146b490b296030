"""Tracking faces across video frames and smoothing their labels (the live pipeline's middle)."""

from faceforge.track.smoothing import LabelSmoother, count_flips, flips_per_second
from faceforge.track.tracker import Track, Tracker

__all__ = ["LabelSmoother", "Track", "Tracker", "count_flips", "flips_per_second"]
