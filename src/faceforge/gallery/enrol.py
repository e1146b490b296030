"""The photos of an enrolment, embedded: here with the gallery's own models, or on the batch runner.

:meth:`faceforge.gallery.Gallery.enrol` embeds each photo's main face
(:func:`faceforge.types.main_face_order`) and keys it by the SHA-256 of the photo (the file's bytes,
or the pixels of an array), so a photo enrolled twice is stored once, whichever way it was embedded.
Given ``engine=`` or ``workers=``, files are embedded by :class:`EnrolTask` on the batch runner
(:func:`faceforge.runner.run`: worker processes here, or Ray workers that read the files the driver
names); the driver alone writes the gallery file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceforge._fs import sha256_file

#: What a photo without a face is told (enrol's report).
NO_FACE = "no face found; use a photo where the face is clearly visible and at least 40 pixels tall"


@dataclass
class PhotoFace:
    """One photo's main face: its embedding (None: no face), the number of faces found, its box."""

    sha256: str
    embedding: np.ndarray | None
    faces_found: int = 0
    box: tuple[float, ...] = ()


def photo_face(faces: Any, sha256: str) -> PhotoFace:
    """:class:`PhotoFace` of a :meth:`~faceforge.pipeline.FacePipeline.embed` ``main_only`` result."""
    if not len(faces):
        return PhotoFace(sha256, None)
    return PhotoFace(sha256, faces.embedding[0].astype(np.float32), int(faces.data["faces_found"][0]),
                     tuple(round(float(v), 1) for v in faces.xyxy[0]))


class EnrolTask:
    """Picklable task of the batch runner: the main face of one photo file, embedded.

    Args:
        detector: the gallery's detector.
        embedder: the gallery's embedder.
        quality: the gallery's quality preset.
    """

    def __init__(self, detector: str, embedder: str, quality: str = "fast") -> None:
        self.detector, self.embedder, self.quality = detector, embedder, quality
        self._pipe: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_pipe": None}

    def __call__(self, image: np.ndarray, item: Any) -> PhotoFace:
        from faceforge.pipeline import FacePipeline

        if self._pipe is None:
            self._pipe = FacePipeline(self.detector, self.embedder, quality=self.quality)
        sha = sha256_file(item.source)
        return photo_face(self._pipe.embed(image, main_only=True), sha)


def embed_on_engine(files: Sequence[str], detector: str, embedder: str, *, engine: Any = None,
                    workers: int | None = None, progress: str | None = None, quality: str = "fast"
                    ) -> Iterator[tuple[str, PhotoFace | None, str | None]]:
    """``(file, face, error)`` for every file, in order, embedded on the batch runner.

    Args:
        files: photo files (read by the workers: on a cluster, a filesystem they share).
        detector, embedder: the gallery's.
        engine: ``"local"``, ``"serial"``, ``"ray"`` or an engine (None: ``$FACEFORGE_ENGINE``, else local).
        workers: processes (None: one per core).
        progress: a progress bar's description, or None.
        quality: the gallery's quality preset.
    """
    from faceforge.runner import WorkItem, run_items

    r = run_items(EnrolTask(detector, embedder, quality), [WorkItem(str(f)) for f in files], engine=engine,
                  workers=workers, progress=progress, total=len(files))
    for res in r:
        yield res.item.source, res.value, res.error
