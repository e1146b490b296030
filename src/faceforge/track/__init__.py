"""Tracking faces across video frames and smoothing their labels (the live pipeline's middle)."""

from faceforge.track.cuts import DEFAULT_CUT_THRESHOLD, CutDetector, frame_distance
from faceforge.track.identity import AppearanceHistory, IdentityMetric, LabelVote, face_quality
from faceforge.track.smoothing import LabelSmoother, count_flips, flips_per_second
from faceforge.track.tracker import Track, Tracker

__all__ = ["DEFAULT_CUT_THRESHOLD", "AppearanceHistory", "CutDetector", "IdentityMetric", "LabelSmoother",
           "LabelVote", "Track", "Tracker", "count_flips", "face_quality", "flips_per_second", "frame_distance"]
