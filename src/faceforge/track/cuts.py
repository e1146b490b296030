"""Scene-cut detection for live video: a cut ends every track, so no id (and no name) crosses it.

The detector compares each frame with the one before on a 64x36 grey thumbnail: the
Bhattacharyya distance between their 16-bin grey-level histograms. A global histogram barely
moves while the camera pans or people walk (the same things stay in the picture) and jumps when
the picture is replaced. Measured (``benchmarks/bench_live_trust.py``; 2026-12, see
``docs/benchmarks.md``): consecutive frames of the development clips (street_1080p at 1080p and
640x480, tv_5frames, and a photo panned 12 px per frame) stay at or below 0.038; joins of two
different clips and slideshow changes between 32 different photos (letterboxed or cropped to
fill the frame) are at 0.102 or more. The default threshold, 0.07, sits between the two. The
alternatives measured were worse: mean absolute difference of the thumbnails (a fast pan reached
0.119 while photo changes started at 0.080) and hue/saturation histograms (hue is noise on grey
pixels: 0.078 on still frames against 0.042 at a cut). Cost: about 0.05 ms per 1080p or 640x480
frame (the frame is subsampled before the thumbnail is made).

A blank frame (a flat thumbnail: black, white or one colour, as in a fade, a flash or a dropped
frame) shows no scene: it is never a cut and never the reference, so a fade to black and into a
new scene is one cut, found when the new scene appears, and a face lost behind a blank frame
keeps its track for the hold time.
"""

from __future__ import annotations

import numpy as np

from faceforge.errors import ParameterError

#: the default cut threshold (Bhattacharyya distance of 16-bin grey histograms); see the module doc
DEFAULT_CUT_THRESHOLD = 0.07

#: thumbnails whose grey levels vary less than this (standard deviation, 0-255) are blank
BLANK_STD = 3.0


def thumbnail(image: np.ndarray, size: tuple[int, int] = (64, 36)) -> np.ndarray:
    """A small grey ``(h, w) uint8`` copy of an RGB frame, cheap at any frame size.

    The frame is subsampled to about 128 px wide, made grey and area-averaged (subsampling to
    240 px first cost 0.5 ms on a 640x480 frame under load, this 0.07 ms, with the same separation).
    """
    import cv2

    h, w = image.shape[:2]
    step = max(1, w // 128)
    sub = np.ascontiguousarray(image[::step, ::step])
    grey = sub if sub.ndim == 2 else cv2.cvtColor(sub, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


def grey_histogram(thumb: np.ndarray, bins: int = 16) -> np.ndarray:
    """The normalised ``(bins, 1) float32`` grey-level histogram of a thumbnail."""
    import cv2

    hist = cv2.calcHist([thumb], [0], None, [bins], [0, 256])
    return hist / max(float(hist.sum()), 1.0)


def frame_distance(a: np.ndarray, b: np.ndarray, bins: int = 16) -> float:
    """How different two RGB frames look: the cut detector's measure (0: same histogram, 1: disjoint)."""
    import cv2

    return float(cv2.compareHist(grey_histogram(thumbnail(a), bins), grey_histogram(thumbnail(b), bins),
                                 cv2.HISTCMP_BHATTACHARYYA))


class CutDetector:
    """Says, frame by frame, whether the picture was cut to another scene.

    Args:
        threshold: a frame whose distance (:func:`frame_distance`) from the previous frame
            exceeds this is a cut.
        bins: grey-level histogram bins.

    Attributes:
        distance: the last frame's distance from the one before (0.0 for the first frame).
        cuts: how many cuts were seen.

    Raises:
        ParameterError: a threshold outside (0, 1].

    Example:
        >>> det = CutDetector()
        >>> [det.update(f) for f in frames]                  # doctest: +SKIP
        [False, False, True, False]
    """

    def __init__(self, threshold: float = DEFAULT_CUT_THRESHOLD, bins: int = 16) -> None:
        if not 0.0 < float(threshold) <= 1.0:
            raise ParameterError(f"the cut threshold is a histogram distance in (0, 1], got {threshold!r}; "
                                 f"use {DEFAULT_CUT_THRESHOLD} (measured), or turn cut detection off with None.")
        self.threshold, self.bins = float(threshold), int(bins)
        self.distance = 0.0
        self.cuts = 0
        self._prev: np.ndarray | None = None

    def update(self, image: np.ndarray) -> bool:
        """Add the next RGB frame; True when it starts a new scene (never for the first frame)."""
        import cv2

        thumb = thumbnail(image)
        if float(thumb.std()) < BLANK_STD:  # no scene to compare: neither a cut nor a reference
            self.distance = 0.0
            return False
        hist = grey_histogram(thumb, self.bins)
        prev, self._prev = self._prev, hist
        if prev is None:
            self.distance = 0.0
            return False
        self.distance = float(cv2.compareHist(prev, hist, cv2.HISTCMP_BHATTACHARYYA))
        cut = self.distance > self.threshold
        self.cuts += int(cut)
        return cut

    def reset(self) -> None:
        """Forget the previous frame (the next frame is never a cut)."""
        self._prev = None
        self.distance = 0.0


__all__ = ["BLANK_STD", "DEFAULT_CUT_THRESHOLD", "CutDetector", "frame_distance", "grey_histogram", "thumbnail"]
