"""One image taken from a source (a photo, a video frame, a webcam grab), and a skipped input."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from faceforge.errors import SourceError


class Skipped(NamedTuple):
    """An input a source or a run left out, and why.

    Attributes:
        source: the file, URL or device.
        reason: a message for people (usually naming the file and what to do).
        kind: ``"missing"`` (no such file), ``"unsupported"`` (not an image or video),
            ``"unreadable"`` (corrupt, truncated, cannot be opened) or ``"failed"`` (the task
            raised on it).
    """

    source: str
    reason: str
    kind: str = "unreadable"


class Frame:
    """One image of a source: where it came from, and its pixels, decoded on first use.

    A still image read from a file (or from encoded bytes) is decoded only when :attr:`image`
    is first read, so a batch can send frames to worker processes and let each worker decode
    its own; pickling such a frame drops the decoded pixels again. Video, webcam and stream
    frames arrive decoded.

    Args:
        image: ``(H, W, 3) uint8`` RGB pixels, encoded image bytes, or None to read the file
            ``source`` when needed.
        source: the file, URL or device it came from.
        index: frame number within a video or stream (0 for still images).
        timestamp: seconds from the start of a video (0.0 for stills).
        name: a short name for outputs and logs (a folder's files: the path inside the folder);
            ``source`` when not given.
        position: the frame's place in its source's order (0, 1, 2, ... over every file and
            frame); ``index`` when not given.

    Example:
        >>> from skimage import data
        >>> Frame(data.astronaut(), "astronaut").image.shape
        (512, 512, 3)
    """

    __slots__ = ("_encoded", "_from_file", "_pixels", "index", "name", "position", "source", "timestamp")

    def __init__(self, image: np.ndarray | bytes | None = None, source: str = "", index: int = 0,
                 timestamp: float = 0.0, *, name: str | None = None, position: int | None = None) -> None:
        self.source = str(source)
        self.index = int(index)
        self.timestamp = float(timestamp)
        self.name = self.source if name is None else str(name)
        self.position = self.index if position is None else int(position)
        self._encoded: bytes | None = None
        self._pixels: np.ndarray | None = None
        self._from_file = image is None
        if isinstance(image, (bytes, bytearray, memoryview)):
            self._encoded = bytes(image)
        elif image is not None:
            self._pixels = image

    @property
    def image(self) -> np.ndarray:
        """``(H, W, 3) uint8`` RGB, decoded (and kept) on first use.

        Raises:
            ImageError: the file or bytes do not decode (the message names the file).
            SourceError: a light copy of a video frame (see :meth:`light`) has no pixels.
        """
        if self._pixels is None:
            from faceforge.sources.image import load_image

            if self._encoded is not None:
                self._pixels = load_image(self._encoded)
            elif self._from_file:
                self._pixels = load_image(self.source)
            else:
                raise SourceError(f"{self.source}: frame {self.index} is a light copy without pixels; "
                                  f"read it from its source again.")
        return self._pixels

    @property
    def decoded(self) -> bool:
        """Whether the pixels are in memory (reading :attr:`image` costs nothing)."""
        return self._pixels is not None

    def load(self) -> Frame:
        """Decode now (see :attr:`image`) and return this frame.

        Raises:
            ImageError: the image does not decode.
        """
        self.image  # noqa: B018 - decodes and keeps the pixels
        return self

    def light(self) -> Frame:
        """A copy without pixels, to hand back with a result: a still can read its file again."""
        return self.replace(light=True)

    def replace(self, *, index: int | None = None, light: bool = False) -> Frame:
        """A copy with another ``index`` (pixels shared, never copied), or without pixels.

        Args:
            index: the copy's index (default: this frame's).
            light: drop the pixels (a still can read its file again).

        Returns:
            The new frame; this one is unchanged.
        """
        out = Frame(None, self.source, self.index if index is None else index, self.timestamp, name=self.name,
                    position=self.position)
        out._from_file = self._from_file
        out._encoded = self._encoded
        if not light:
            out._pixels = self._pixels
        return out

    def __getstate__(self) -> dict[str, Any]:
        keep = self._pixels if not (self._from_file or self._encoded is not None) else None
        return {"source": self.source, "index": self.index, "timestamp": self.timestamp, "name": self.name,
                "position": self.position, "_pixels": keep, "_encoded": self._encoded, "_from_file": self._from_file}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)

    def __repr__(self) -> str:
        shape = "" if self._pixels is None else f", shape={tuple(self._pixels.shape)}"
        return f"Frame({self.name!r}, index={self.index}, timestamp={self.timestamp:.3f}{shape})"
