"""Detection stage: images in, :class:`~faceforge.types.Faces` out."""

from faceforge.detectors.base import (
    DEFAULT_LIVE_DETECTOR,
    DEFAULT_PHOTO_DETECTOR,
    Detector,
    available_detectors,
    detector_for,
    get_detector,
    resolve_detector_name,
)

__all__ = ["DEFAULT_LIVE_DETECTOR", "DEFAULT_PHOTO_DETECTOR", "Detector", "available_detectors", "detector_for",
           "get_detector",
           "resolve_detector_name"]
