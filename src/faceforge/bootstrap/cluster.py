"""Group the faces of unlabelled photos by person, for naming and then training.

Every face of every photo is embedded (dlib ResNet identity embeddings) and grouped by
agglomerative clustering with average linkage, cut at a distance threshold: two groups merge when
their faces are, on average, closer than ``threshold``. Groups smaller than ``min_size`` become
"noise". Each group is written as a folder of face crops (the box enlarged 1.6x, so a detector
finds the face again), ready to be renamed after the person and passed to ``faceforge train``.

The default threshold was chosen on two labelled identity sets (pairwise F-measure):

==========  =====  =====  =====  =====  =====
threshold   0.45   0.50   0.55   0.60   0.65
AT&T 400    0.967  0.984  0.995  0.812  0.663
TV 40       0.740  0.904  0.974  1.000  1.000
==========  =====  =====  =====  =====  =====

Precision is 1.0 up to 0.55 on both; above it AT&T people start to merge.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from faceforge.errors import ParameterError, SourceError

if TYPE_CHECKING:
    from faceforge.pipeline import FacePipeline

THRESHOLD = 0.55
NOISE = "noise"


@dataclass
class FaceRecord:
    """One face found in a photo."""

    source: str
    frame: int
    box: list[float]
    embedding: np.ndarray
    crop: np.ndarray


@dataclass
class Clustering:
    """Result of :func:`cluster_faces`: a group label per face (-1: noise)."""

    faces: list[FaceRecord]
    labels: np.ndarray
    threshold: float
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def n_groups(self) -> int:
        return int(len(set(self.labels.tolist()) - {-1}))

    def sizes(self) -> dict[int, int]:
        ids, counts = np.unique(self.labels[self.labels >= 0], return_counts=True)
        return dict(zip(ids.tolist(), counts.tolist()))


class _FacesTask:
    """Picklable per-image task: every face's box, identity embedding and a 1.6x crop."""

    def __init__(self, detector: str, embedder: str, crop_size: int) -> None:
        self.detector, self.embedder, self.crop_size = detector, embedder, crop_size
        self._pipe: FacePipeline | None = None

    def __call__(self, image: np.ndarray, item: Any) -> dict[str, Any]:
        from faceforge.align import align_faces
        from faceforge.pipeline import FacePipeline

        if self._pipe is None:
            self._pipe = FacePipeline(self.detector, self.embedder)
        faces = self._pipe.embed(image)
        crops = list(align_faces(image, faces, "margin", size=self.crop_size, margin=1.6)) if len(faces) else []
        return {"boxes": faces.xyxy.tolist(), "embeddings": faces.embedding, "crops": crops}


def embed_faces_of(paths: Iterable[str | os.PathLike], *, detector: str = "photo", embedder: str = "dlib-resnet",
                   workers: int | None = None, progress: bool = True, crop_size: int = 160,
                   skipped: list[tuple[str, str]] | None = None,
                   no_face: list[str] | None = None, engine: Any = None) -> list[FaceRecord]:
    """Every face of every image (and video frame) under ``paths``, embedded, on all cores.

    Args:
        paths: files, folders, archives and videos.
        detector, embedder: the models.
        workers: processes (None: one per core).
        progress: show a progress bar.
        crop_size: side of the crops kept with each face.
        skipped: receives ``(path, reason)`` for unusable inputs.
        no_face: receives the images (and frames, as ``FILE:FRAME``) where no face was found.
        engine: where the work runs (None: ``$FACEFORGE_ENGINE``, else ``"local"``; a name such
            as ``"ray"``, or an engine: see :func:`faceforge.runner.get_engine`).

    Returns:
        The faces, in input order.
    """
    from faceforge.runner import run

    skipped = [] if skipped is None else skipped
    out: list[FaceRecord] = []
    r = run(_FacesTask(detector, embedder, crop_size), [str(p) for p in paths], engine=engine, workers=workers,
            progress="faces" if progress else None)
    for res in r:
        if res.error:
            continue  # reported with the source's skips below
        v = res.value
        if not v["boxes"] and no_face is not None:
            no_face.append(res.item.source if not res.item.index else f"{res.item.source}:{res.item.index}")
        for box, emb, crop in zip(v["boxes"], v["embeddings"], v["crops"]):
            out.append(FaceRecord(res.item.source, res.item.index, [float(x) for x in box], np.asarray(emb), crop))
    skipped.extend((s.source, s.reason) for s in r.skipped)
    return out


def cluster_embeddings(X: np.ndarray, threshold: float = THRESHOLD, min_size: int = 2) -> np.ndarray:
    """Group labels (0, 1, ... by decreasing size; -1 for noise) for ``(n, d)`` embeddings."""
    if threshold <= 0:
        raise ParameterError(f"threshold must be > 0, got {threshold}")
    if min_size < 1:
        raise ParameterError(f"min_size must be >= 1, got {min_size}")
    n = len(X)
    if n == 0:
        return np.zeros(0, int)
    if n == 1:
        return np.array([0 if min_size <= 1 else -1])
    from faceforge.bootstrap import graph

    if n > graph.GRAPH_ABOVE:  # no dense matrix: Chinese whispers on a FAISS kNN graph (bootstrap/graph.py)
        return graph.cluster_graph(X, threshold, min_size)
    from sklearn.cluster import AgglomerativeClustering

    raw = AgglomerativeClustering(n_clusters=None, distance_threshold=float(threshold), linkage="average",
                                  metric="euclidean").fit_predict(np.asarray(X, np.float64))
    ids, counts = np.unique(raw, return_counts=True)
    keep = [i for i, c in sorted(zip(ids, counts), key=lambda t: (-t[1], t[0])) if c >= min_size]
    remap = {old: new for new, old in enumerate(keep)}
    return np.array([remap.get(r, -1) for r in raw])


def cluster_faces(paths: Iterable[str | os.PathLike], *, threshold: float = THRESHOLD, min_size: int = 2,
                  detector: str = "photo", workers: int | None = None, progress: bool = True,
                  engine: Any = None) -> Clustering:
    """Find, embed and group every face of the photos under ``paths`` (see the module docs)."""
    skipped: list[tuple[str, str]] = []
    no_face: list[str] = []
    faces = embed_faces_of(paths, detector=detector, workers=workers, progress=progress, skipped=skipped,
                           no_face=no_face, engine=engine)
    if not faces:
        raise SourceError(_no_faces_message(no_face, skipped))
    labels = cluster_embeddings(np.stack([f.embedding for f in faces]), threshold, min_size)
    return Clustering(faces, labels, float(threshold), skipped)


def _no_faces_message(no_face: list[str], skipped: list[tuple[str, str]], limit: int = 5) -> str:
    parts = []
    if no_face:
        more = f" and {len(no_face) - limit} more" if len(no_face) > limit else ""
        parts.append(f"no face in {len(no_face)} image(s) ({', '.join(no_face[:limit])}{more})")
    if skipped:
        why = "; ".join((w if p in w else f"{p}: {w}").rstrip(".") for p, w in skipped[:limit])
        more = f"; and {len(skipped) - limit} more" if len(skipped) > limit else ""
        parts.append(f"{len(skipped)} file(s) could not be used ({why}{more})")
    return (f"No faces found, nothing to cluster: {'; '.join(parts) or 'no images'}. Use photos where faces are "
            f"clearly visible and at least 40 pixels tall, and fix or remove unreadable files.")


def write_groups(result: Clustering, output: str | os.PathLike, protect: Iterable[str] = ()) -> Path:
    """Write ``person_001/`` ... (largest first) and ``noise/`` folders of face crops, and ``clusters.csv``.

    Raises:
        OutputError: ``output`` is a file, or is, holds or lies inside one of ``protect`` (the inputs).
        SourceError: ``output`` exists and is not empty (nothing is overwritten).
    """
    from faceforge.sinks import check_output, output_stem, save_image
    from faceforge.sinks.files import atomic_write

    protect = list(protect)
    out = check_output(output, protect, kind="folder", what="groups folder")
    if out.is_dir() and any(out.iterdir()):
        raise SourceError(f"{out} is not empty; choose a new or empty folder for the groups.")
    width = max(3, len(str(result.n_groups)))
    rows = [["crop", "group", "source", "frame", "x1", "y1", "x2", "y2"]]
    counters: dict[str, int] = {}
    for f, lab in zip(result.faces, result.labels.tolist()):
        group = NOISE if lab < 0 else f"person_{lab + 1:0{width}d}"
        stem = output_stem(f.source, f.frame)
        counters[f"{group}/{stem}"] = k = counters.get(f"{group}/{stem}", 0) + 1
        rel = f"{group}/{stem}_face{k}.jpg"
        save_image(out / rel, f.crop, protect)
        rows.append([rel, group, f.source, str(f.frame)] + [f"{v:.1f}" for v in f.box])
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    atomic_write(out / "clusters.csv", buf.getvalue().encode())
    if result.faces:  # kept for `cluster --into` (update_groups): new photos join without re-embedding these
        from faceforge.bootstrap.graph import save_embeddings

        save_embeddings(out, [dict(zip(rows[0], r)) for r in rows[1:]],
                        np.stack([f.embedding for f in result.faces]))
    return out


def pairwise_f1(truth: Any, labels: Any) -> dict[str, float]:
    """Pairwise precision, recall and F-measure of a clustering (noise, -1, counts as singletons)."""
    t = np.asarray(truth)
    lab = np.asarray(labels).copy()
    noise = lab < 0
    lab[noise] = lab.max(initial=0) + 1 + np.arange(int(noise.sum()))
    same_t = t[:, None] == t[None, :]
    same_p = lab[:, None] == lab[None, :]
    iu = np.triu_indices(len(t), 1)
    tp = float(np.sum(same_t[iu] & same_p[iu]))
    p = tp / max(float(np.sum(same_p[iu])), 1.0)
    r = tp / max(float(np.sum(same_t[iu])), 1.0)
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}
