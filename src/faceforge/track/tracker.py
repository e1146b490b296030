"""Face tracking by detection: stable ids across frames, gaps and skipped detections.

ByteTrack-style association on IoU: tracks are first matched to confident detections, then the
tracks still unmatched get a second chance with the low-score detections (a face turning away or
blurred by motion scores lower but is still the same face). Matching is optimal (Hungarian) on
``1 - IoU`` after predicting each track's box with its smoothed velocity. A track that misses
detections is kept, coasting on its velocity, for ``max_age`` frames, so its id (and its label)
survive a short occlusion; new tracks become ``confirmed`` after ``min_hits`` detections.

Between detections (detection every N frames), :meth:`Tracker.predict` moves every track along
its velocity, so boxes follow the faces on the frames that were not detected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faceforge.errors import ParameterError
from faceforge.types import Faces, iou_matrix


@dataclass
class Track:
    """One tracked face.

    Attributes:
        id: stable track id (1, 2, ...), never reused within a :class:`Tracker`.
        xyxy: ``(4,)`` current box (detected, or predicted when the face was not detected).
        score: detection score of the last matched detection.
        landmarks: ``(5, 2)`` landmarks of the last matched detection (NaN when unknown).
        velocity: ``(4,)`` smoothed box change per frame.
        hits: detections matched so far.
        misses: detection rounds in a row without a match (0: seen in the last one).
        first_frame, last_frame: frame indices of the first and the last matched detection.
        confirmed: seen in at least ``min_hits`` detection rounds.
        data: free per-track state (e.g. label smoothers).
    """

    id: int
    xyxy: np.ndarray
    score: float
    landmarks: np.ndarray
    first_frame: int
    last_frame: int
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))
    hits: int = 1
    misses: int = 0
    confirmed: bool = False
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def visible(self) -> bool:
        """Matched in the most recent detection round."""
        return self.misses == 0

    @property
    def size(self) -> float:
        """Geometric mean of the box's width and height, in pixels."""
        w, h = self.xyxy[2] - self.xyxy[0], self.xyxy[3] - self.xyxy[1]
        return float(np.sqrt(max(w, 0.0) * max(h, 0.0)))


class Tracker:
    """IoU tracker with two-stage (ByteTrack) matching and coasting.

    Args:
        high_score: detections at or above this are matched first and may start tracks.
        low_score: detections between this and ``high_score`` only extend existing tracks.
        match_iou: minimum IoU (after prediction) to match a detection to a track.
        max_age: detection rounds a track survives without a match (with detection on every
            frame at 30 FPS, 15 rounds = half a second).
        min_hits: detection rounds before a track is ``confirmed``.
        velocity_smoothing: weight of the newest box change in the velocity (0: no motion model).

    Example:
        >>> trk = Tracker()
        >>> for i, frame in enumerate(frames):              # doctest: +SKIP
        ...     tracks = trk.update(detector(frame), i)
        ...     print([(t.id, t.xyxy) for t in tracks if t.confirmed])
    """

    def __init__(self, high_score: float = 0.6, low_score: float = 0.3, match_iou: float = 0.3,
                 max_age: int = 15, min_hits: int = 2, velocity_smoothing: float = 0.5) -> None:
        if not 0.0 <= low_score <= high_score <= 1.0:
            raise ParameterError(f"need 0 <= low_score <= high_score <= 1, got {low_score} and {high_score}")
        if not 0.0 < match_iou < 1.0:
            raise ParameterError(f"match_iou must lie in (0, 1), got {match_iou}")
        if max_age < 0 or min_hits < 1:
            raise ParameterError(f"max_age must be >= 0 and min_hits >= 1, got {max_age} and {min_hits}")
        if not 0.0 <= velocity_smoothing <= 1.0:
            raise ParameterError(f"velocity_smoothing must lie in [0, 1], got {velocity_smoothing}")
        self.high_score, self.low_score, self.match_iou = float(high_score), float(low_score), float(match_iou)
        self.max_age, self.min_hits, self.velocity_smoothing = int(max_age), int(min_hits), float(velocity_smoothing)
        self.tracks: list[Track] = []
        self.removed: list[Track] = []  # tracks that ended since the last update (for sinks)
        self._next_id = 1
        self._frame: int | None = None

    # -- motion --------------------------------------------------------------------------------
    def predict(self, frame: int) -> list[Track]:
        """Move every track along its velocity to ``frame`` (for frames without detection)."""
        if self._frame is not None and frame > self._frame:
            steps = frame - self._frame
            for t in self.tracks:
                t.xyxy = (t.xyxy + steps * t.velocity).astype(np.float32)
            self._frame = frame
        elif self._frame is None:
            self._frame = frame
        return list(self.tracks)

    # -- association ---------------------------------------------------------------------------
    def _match(self, tracks: list[Track], boxes: np.ndarray) -> tuple[list[tuple[int, int]], list[int], list[int]]:
        if not tracks or not len(boxes):
            return [], list(range(len(tracks))), list(range(len(boxes)))
        from scipy.optimize import linear_sum_assignment

        iou = iou_matrix(np.stack([t.xyxy for t in tracks]), boxes)
        rows, cols = linear_sum_assignment(1.0 - iou)
        pairs = [(r, c) for r, c in zip(rows, cols) if iou[r, c] >= self.match_iou]
        mt = {r for r, _ in pairs}
        md = {c for _, c in pairs}
        return pairs, [i for i in range(len(tracks)) if i not in mt], [j for j in range(len(boxes)) if j not in md]

    def _apply(self, t: Track, faces: Faces, j: int, frame: int, dt: int) -> None:
        box = faces.xyxy[j].astype(np.float32)
        if dt > 0:
            step = (box - (t.xyxy - dt * t.velocity)) / dt  # change per frame since the last match
            a = self.velocity_smoothing
            t.velocity = ((1 - a) * t.velocity + a * step).astype(np.float32)
        t.xyxy = box
        t.score = float(faces.score[j])
        t.landmarks = faces.landmarks[j].copy()
        t.hits += 1
        t.misses = 0
        t.last_frame = frame
        t.confirmed = t.confirmed or t.hits >= self.min_hits

    def update(self, faces: Faces, frame: int) -> list[Track]:
        """Add one round of detections (all faces of frame ``frame``); returns the live tracks.

        Tracks not matched this round count a miss and keep coasting; after ``max_age`` misses
        they end (and are listed in :attr:`removed` until the next update).
        """
        prev = self._frame
        self.predict(frame)
        self.removed = []
        high = np.flatnonzero(faces.score >= self.high_score)
        low = np.flatnonzero((faces.score >= self.low_score) & (faces.score < self.high_score))
        pairs, left_t, left_d = self._match(self.tracks, faces.xyxy[high])
        matched: list[tuple[Track, int]] = [(self.tracks[i], int(high[j])) for i, j in pairs]
        rest = [self.tracks[i] for i in left_t]
        pairs2, left_t2, _ = self._match(rest, faces.xyxy[low])
        matched += [(rest[i], int(low[j])) for i, j in pairs2]
        for t, j in matched:
            # the box predicted for this frame already includes the velocity steps since the
            # last match: measure the change against where the track was last seen
            self._apply(t, faces, j, frame, frame - t.last_frame if prev is not None else 0)
        for i in left_t2:
            rest[i].misses += 1
        for j in left_d:
            d = int(high[j])
            self.tracks.append(Track(self._next_id, faces.xyxy[d].astype(np.float32), float(faces.score[d]),
                                     faces.landmarks[d].copy(), frame, frame, confirmed=self.min_hits <= 1))
            self._next_id += 1
        alive: list[Track] = []
        for t in self.tracks:
            (alive if t.misses <= self.max_age else self.removed).append(t)
        self.tracks = alive
        return list(self.tracks)

    def reset(self) -> None:
        """Forget every track (ids keep counting up): at a scene cut, every track ends."""
        self.removed, self.tracks, self._frame = list(self.tracks), [], None

    def split(self, track: Track) -> Track:
        """End ``track`` and continue its box under a new id (its face became someone else's).

        The new track keeps the box, score, landmarks and velocity, starts with no ``data``
        (labels, history) and is confirmed (its face is being detected). The old track is listed
        in :attr:`removed`.

        Returns:
            The new track, in :attr:`tracks` where ``track`` was.

        Raises:
            ParameterError: ``track`` is not one of this tracker's live tracks.
        """
        i = next((k for k, t in enumerate(self.tracks) if t is track), None)
        if i is None:
            raise ParameterError(f"track {track.id} is not a live track of this tracker (live: "
                                 f"{[t.id for t in self.tracks]}); split a track returned by the last update.")
        new = Track(self._next_id, track.xyxy.copy(), track.score, track.landmarks.copy(), track.last_frame,
                    track.last_frame, velocity=track.velocity.copy(), misses=track.misses, confirmed=True)
        self._next_id += 1
        self.tracks[i] = new
        self.removed.append(track)
        return new

    def reacquire(self, track: Track, faces: Faces, j: int, frame: int) -> None:
        """Match detection ``j`` of ``faces`` (found by another detector, e.g. on the track's region)
        to ``track`` in frame ``frame``, as if the tracker had matched it."""
        self._apply(track, faces, j, frame, max(0, frame - track.last_frame))
