"""Writing results: images, JSON/JSONL, crops. Every write is atomic and never touches an input."""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from faceforge._fs import atomic_write, check_output, make_temp
from faceforge.errors import OutputError, SourceError


def encode_image(image: np.ndarray, suffix: str = ".jpg", quality: int = 92) -> bytes:
    """Encode an RGB ``uint8`` image to JPEG/PNG bytes."""
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(suffix, np.ascontiguousarray(image[:, :, ::-1]), params)
    if not ok:
        raise SourceError(f"OpenCV could not encode an image as {suffix}")
    return buf.tobytes()


def save_image(path: str | os.PathLike, image: np.ndarray, protect: Iterable[str | os.PathLike] = ()) -> Path:
    """Save an RGB image atomically, refusing to overwrite any path in ``protect`` (the inputs)."""
    path = Path(path)
    guard(path, protect)
    return atomic_write(path, encode_image(image, path.suffix or ".jpg"))


@functools.lru_cache(maxsize=16)
def _resolved(paths: tuple[str, ...]) -> dict[str, str]:
    return {os.path.realpath(p): p for p in paths}


def guard(path: str | os.PathLike, protect: Iterable[str | os.PathLike]) -> None:
    """Raise if ``path`` is one of the user's input files.

    The resolved inputs are cached per list of inputs: a batch saving thousands of outputs
    against thousands of inputs resolves each input once (measured: autolabel of 4,828 photos
    ran at 2 images/s when every save resolved every input).
    """
    hit = _resolved(tuple(map(str, protect))).get(os.path.realpath(path))
    if hit is not None:
        raise OutputError(f"Refusing to overwrite the input file {hit}; choose another output folder.")


def output_name(source: str | os.PathLike, root: str | os.PathLike | None = None, suffix: str = "") -> str:
    """A flat, collision-resistant output file name for a source path (relative to ``root``)."""
    src = Path(source)
    try:
        rel = src.resolve().relative_to(Path(root).resolve()) if root else Path(src.name)
    except ValueError:
        rel = Path(src.name)
    stem = "__".join(rel.with_suffix("").parts) if rel.suffix else "__".join(rel.parts)
    stem = re.sub(r"[^\w.\-]+", "_", stem) or "image"
    return stem + suffix


def output_stem(source: str | os.PathLike, frame: int = 0) -> str:
    """The file-name stem of every output made from one image or video frame.

    The source's flat name (:func:`output_name`: ``photos/sub/a.jpg`` -> ``a``), and for video
    frames after the first ``_f`` and the six-digit frame number (``clip.mp4`` frame 12 ->
    ``clip_f000012``). Crops add ``_face0``... to it.

    Example:
        >>> output_stem("photos/a.jpg"), output_stem("clip.mp4", 12)
        ('a', 'clip_f000012')
    """
    return output_name(source) + (f"_f{frame:06d}" if frame else "")


class JsonlWriter:
    """Append JSON records to a file that appears atomically when closed.

    Use as a context manager; records go to a temporary file that replaces ``path`` on a
    clean exit, so an interrupted run never leaves a half-written file in place.

    Args:
        path: the file to write.
        protect: the inputs (files and folders): ``path`` must not be, hold or lie inside one
            (see :func:`faceforge._fs.check_output`).

    Raises:
        OutputError: ``path`` overlaps an input, or is a folder.
    """

    def __init__(self, path: str | os.PathLike, protect: Iterable[str | os.PathLike] = ()) -> None:
        self.path = check_output(path, protect, kind="file", what="JSONL file")
        fd, self._tmp = make_temp(self.path)
        self._f = os.fdopen(fd, "w", encoding="utf-8")
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (one line of JSON)."""
        self._f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.count += 1

    def close(self, commit: bool = True) -> None:
        """Close the file: rename it into place (``commit``) or remove it."""
        if self._f.closed:
            return
        try:
            self._f.close()
            if commit:
                os.replace(self._tmp, self.path)
        finally:
            Path(self._tmp).unlink(missing_ok=True)

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(commit=exc_type is None)
