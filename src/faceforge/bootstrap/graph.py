"""Clustering that scales: a FAISS k-nearest-neighbour graph and Chinese whispers (dlib), no dense matrix;
and incremental updates of a clustering already written (new photos join the named folders).

Chosen by measurement against average linkage (``cluster.cluster_embeddings``) on the development
identity sets (pairwise F of dlib-resnet embeddings at the default threshold 0.55; min / mean over 10
orderings of the faces, since Chinese whispers depends on the order; ``benchmarks/bench_cluster_scale.py``
for time and memory):

=====================================================  =============  =============
method                                                 AT&T 400       TV 40
=====================================================  =============  =============
average linkage 0.55 (dense; today's)                  0.995          0.974
connected components, kNN edges < 0.55                0.307          1.000
Chinese whispers, edges < 0.50, unweighted             0.895 / 0.953  0.974
Chinese whispers, edges < 0.52, weight 1 - d           0.918 / 0.977  1.000
Chinese whispers < 0.52 (1 - d) + average linkage      0.995 / 0.995  0.974 / 0.974
inside each group (the cleanup): **chosen**
=====================================================  =============  =============

Chinese whispers alone is order-sensitive and merges some AT&T people (precision 0.95); connected
components chain people (single linkage). The cleanup runs average linkage at the user's threshold
inside each whispers group only (groups are about one person: small dense matrices), which splits
what the graph chained and gives average linkage's answer on both sets for every ordering tried.
The graph has ``k`` = 20 neighbours per face with edges shorter than ``threshold - 0.03`` (weight
``1 - distance``); its memory is ``n * k`` edges, its time FAISS's search: exact up to
:data:`EXACT_KNN_MAX` faces, IVF above. ``cluster_embeddings`` switches to it above
:data:`GRAPH_ABOVE` faces (below it, average linkage is as good and takes seconds).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from faceforge.errors import ParameterError, SourceError

if TYPE_CHECKING:
    from faceforge.bootstrap.cluster import FaceRecord

log = logging.getLogger("faceforge.bootstrap.graph")

#: ``cluster_embeddings`` uses the graph above this many faces (average linkage up to it).
GRAPH_ABOVE = 5000
#: Neighbours per face in the graph.
K = 20
#: The graph's edges are shorter than the user's (average-linkage) threshold minus this (measured).
EDGE_OFFSET = 0.03
#: The kNN search is exact up to this many faces, IVF above.
EXACT_KNN_MAX = 20_000
#: Chinese-whispers groups up to this size are cleaned up by average linkage.
CLEANUP_MAX = 5000
#: A new face joins a folder by its mean distance to the folder's this many faces nearest to it.
JOIN_NEAREST = 3
#: Where :func:`update_groups` keeps the embeddings of the faces it wrote.
EMBEDDINGS = "embeddings.npz"


def knn_graph(X: np.ndarray, k: int = K, max_distance: float = np.inf, batch: int = 8192
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected edges ``(i, j, distance)`` (``i < j``, each once) to the ``k`` nearest neighbours of
    every row of ``X`` closer than ``max_distance``; euclidean, searched in batches (memory ``n * k``)."""
    from faceforge.gallery.index import FaceIndex

    X = np.ascontiguousarray(X, np.float32)
    n = len(X)
    index = FaceIndex.build(np.arange(n), X, "euclidean", EXACT_KNN_MAX)
    src, dst, dist = [], [], []
    for s in range(0, n, batch):
        D, ids = index.search(X[s:s + batch], min(k + 1, n))
        rows = np.repeat(np.arange(s, s + len(D)), D.shape[1])
        keep = (ids.ravel() >= 0) & (ids.ravel() != rows) & (D.ravel() < max_distance)
        a, b = rows[keep], ids.ravel()[keep]
        src.append(np.minimum(a, b))
        dst.append(np.maximum(a, b))
        dist.append(D.ravel()[keep])
    i, j, d = (np.concatenate(v) if v else np.zeros(0) for v in (src, dst, dist))
    key = i.astype(np.int64) * n + j
    _, first = np.unique(key, return_index=True)
    return i[first].astype(np.int64), j[first].astype(np.int64), d[first].astype(np.float32)


def by_size(raw: np.ndarray, min_size: int) -> np.ndarray:
    """Labels ``0, 1, ...`` by decreasing group size (ties: first label), ``-1`` for groups under ``min_size``."""
    ids, inverse, counts = np.unique(raw, return_inverse=True, return_counts=True)
    order = np.lexsort((ids, -counts))
    new = np.full(len(ids), -1)
    big = order[counts[order] >= min_size]
    new[big] = np.arange(len(big))
    return new[inverse]


def cluster_graph(X: np.ndarray, threshold: float = 0.55, min_size: int = 2, k: int = K) -> np.ndarray:
    """Group labels (0, 1, ... by decreasing size; -1 for noise) by Chinese whispers on the kNN graph.

    Args:
        X: ``(n, d)`` embeddings.
        threshold: the average-linkage threshold of ``cluster_embeddings``; edges are shorter than
            ``threshold - EDGE_OFFSET``.
        min_size: smaller groups are noise.
        k: neighbours per face.

    Raises:
        ParameterError: a threshold or ``min_size`` out of range.
    """
    import dlib

    if threshold <= EDGE_OFFSET:
        raise ParameterError(f"threshold must be > {EDGE_OFFSET} for the graph clustering, got {threshold}")
    if min_size < 1 or k < 1:
        raise ParameterError(f"min_size and k must be >= 1, got {min_size} and {k}")
    n = len(X)
    if n == 0:
        return np.zeros(0, int)
    i, j, d = knn_graph(X, k, threshold - EDGE_OFFSET)
    # dlib numbers the vertices it sees: a self-loop of weight 0 puts every face in the graph
    edges = list(zip(i.tolist(), j.tolist(), (1.0 - d).tolist())) + [(v, v, 0.0) for v in range(n)]
    raw = np.asarray(dlib.chinese_whispers(edges), np.int64)
    return by_size(_cleanup(X, raw, threshold), min_size)


def _cleanup(X: np.ndarray, raw: np.ndarray, threshold: float) -> np.ndarray:
    """Average linkage at ``threshold`` inside each Chinese-whispers group (it splits people that the
    graph chained together; groups over :data:`CLEANUP_MAX` faces are kept whole, with a warning)."""
    from sklearn.cluster import AgglomerativeClustering

    order = np.argsort(raw, kind="stable")
    bounds = np.flatnonzero(np.r_[True, raw[order][1:] != raw[order][:-1], True])
    out = np.empty(len(raw), np.int64)
    nxt = 0
    for a, b in zip(bounds[:-1], bounds[1:]):
        ii = order[a:b]
        if len(ii) == 1 or len(ii) > CLEANUP_MAX:
            if len(ii) > CLEANUP_MAX:
                log.warning("a group of %d faces is larger than %d; it is kept whole", len(ii), CLEANUP_MAX)
            sub = np.zeros(len(ii), np.int64)
        else:
            sub = AgglomerativeClustering(n_clusters=None, distance_threshold=float(threshold), linkage="average",
                                          metric="euclidean").fit_predict(np.asarray(X[ii], np.float64))
        out[ii] = sub + nxt
        nxt += int(sub.max()) + 1
    return out


# -- incremental: new photos into a clustering already written --------------------------------------
@dataclass
class GroupUpdate:
    """What :func:`update_groups` did: faces added per (possibly user-named) folder, new folders."""

    joined: dict[str, int] = field(default_factory=dict)
    new_groups: dict[str, int] = field(default_factory=dict)
    noise: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def read_groups(output: str | os.PathLike) -> tuple[list[dict[str, str]], list[str]]:
    """The faces of a written clustering (``clusters.csv`` rows) with ``group`` set to the folder each
    crop is in now (users rename folders after the person; crops are found by their content hash kept in
    ``embeddings.npz``), and the folders. A deleted crop is left out.

    Raises:
        SourceError: no ``clusters.csv`` in ``output``.
    """
    out = Path(output)
    if not (out / "clusters.csv").is_file():
        raise SourceError(f"{out} holds no clusters.csv; pass a folder written by `faceforge cluster`.")
    rows = list(csv.DictReader(io.StringIO((out / "clusters.csv").read_text())))
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    written = {r["group"] for r in rows}
    named = [f for f in folders if f not in written]  # folders the user renamed
    shas = _crop_hashes(out)
    found: dict[str, str] = {}  # crop file hash -> where it is now, in a renamed folder
    if shas:
        for f in named:
            for c in (out / f).iterdir():
                found.setdefault(hashlib.sha1(c.read_bytes()).hexdigest(), f)
    kept = []
    for r in rows:
        name = Path(r["crop"]).name
        group: str | None = r["group"]
        if not (out / r["crop"]).is_file():
            group = found.get(shas.get(_key(r), ""))
        if group is not None and (out / group / name).is_file():  # a deleted crop is forgotten
            kept.append({**r, "group": group, "crop": f"{group}/{name}"})
    return kept, folders


def update_groups(output: str | os.PathLike, new: list[FaceRecord], *, threshold: float = 0.55,
                  min_size: int = 2, protect: Iterable[str] = ()) -> GroupUpdate:
    """Add ``new`` faces to the clustering written in ``output`` without reclustering it.

    Each new face joins the folder whose :data:`JOIN_NEAREST` nearest faces are, on average, closer
    than ``threshold`` (the nearest such folder); folder names the
    user gave are kept. The rest, with the old noise, are clustered among themselves into new
    ``person_NNN`` folders (numbered after the highest) or noise. ``clusters.csv`` and the faces'
    embeddings (``embeddings.npz``; crops without one are embedded again once) are brought up to date.

    Raises:
        SourceError: ``output`` is not a written clustering.
    """
    from faceforge.bootstrap.cluster import NOISE, cluster_embeddings
    from faceforge.gallery.index import FaceIndex
    from faceforge.sinks import output_stem, save_image
    from faceforge.sinks.files import atomic_write

    out = Path(output)
    rows, folders = read_groups(out)
    old_emb = _old_embeddings(out, rows)
    report = GroupUpdate()
    if not new:
        return report
    Y = np.stack([f.embedding for f in new]).astype(np.float32)
    target: list[str | None] = [None] * len(new)
    known = np.isfinite(old_emb).all(axis=1) if len(old_emb) else np.zeros(0, bool)
    named = [i for i, r in enumerate(rows) if r["group"] != NOISE and known[i]]
    if named:
        groups = np.array([rows[i]["group"] for i in named])
        index = FaceIndex.build(np.arange(len(named)), old_emb[named])
        D, ids = index.search(Y, min(K, len(named)))
        for q in range(len(new)):
            ok = ids[q] >= 0
            best: tuple[float, str] | None = None
            for g in set(groups[ids[q][ok]].tolist()):
                m = float(D[q][ok][groups[ids[q][ok]] == g][:JOIN_NEAREST].mean())
                if m < threshold and (best is None or m < best[0]):
                    best = (m, g)
            target[q] = best[1] if best else None
    rest = [q for q, t in enumerate(target) if t is None]
    noise_old = [i for i, r in enumerate(rows) if r["group"] == NOISE and known[i]]
    if rest:
        X = np.concatenate([Y[rest], old_emb[noise_old]]) if noise_old else Y[rest]
        lab = cluster_embeddings(X, threshold, min_size)
        taken = [int(f.split("_")[1]) for f in folders if f.startswith("person_") and f.split("_")[1].isdigit()]
        width = max(3, len(str(max(taken, default=0) + lab.max(initial=-1) + 1)))
        start = max(taken, default=0) + 1
        names = {g: f"person_{start + g:0{width}d}" for g in range(lab.max(initial=-1) + 1)}
        for q, g in zip(rest, lab[:len(rest)].tolist()):
            target[q] = names.get(g, NOISE)
        for i, g in zip(noise_old, lab[len(rest):].tolist()):  # old noise faces that now form a group
            if g >= 0:
                src = out / rows[i]["crop"]
                dst = out / names[g] / src.name
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
                rows[i] = {**rows[i], "group": names[g], "crop": f"{names[g]}/{src.name}"}
    for f, group in zip(new, target):
        group = group or NOISE
        stem, k = output_stem(f.source, f.frame), 1
        while (out / group / f"{stem}_face{k}.jpg").exists():
            k += 1
        rel = f"{group}/{stem}_face{k}.jpg"
        save_image(out / rel, f.crop, list(protect))
        rows.append({"crop": rel, "group": group, "source": f.source, "frame": str(f.frame),
                     **dict(zip(("x1", "y1", "x2", "y2"), (f"{v:.1f}" for v in f.box)))})
        if group == NOISE:
            report.noise += 1
        else:
            tally = report.joined if group in folders else report.new_groups
            tally[group] = tally.get(group, 0) + 1
    header = ["crop", "group", "source", "frame", "x1", "y1", "x2", "y2"]
    buf = io.StringIO()
    csv.writer(buf).writerows([header] + [[r.get(h, "") for h in header] for r in rows])
    save_embeddings(out, rows, np.concatenate([old_emb, Y]) if len(old_emb) else Y)
    atomic_write(out / "clusters.csv", buf.getvalue().encode())
    return report


def _key(row: dict[str, str]) -> str:
    """A written face's identity that survives renamed folders: its photo, frame and box."""
    return "|".join(row.get(h, "") for h in ("source", "frame", "x1", "y1", "x2", "y2"))


def save_embeddings(output: str | os.PathLike, rows: list[dict[str, str]], embeddings: np.ndarray) -> None:
    """Keep the embeddings of the faces of ``clusters.csv`` rows beside it (``embeddings.npz``), atomically.
    Rows whose embedding is unknown (NaN) are left out."""
    from faceforge.sinks.files import atomic_write

    E = np.asarray(embeddings, np.float32).reshape(len(rows), -1)
    mask = np.asarray(np.isfinite(E).all(axis=1), bool)
    good = [r for r, ok in zip(rows, list(mask)) if ok]
    crops = [Path(output) / r["crop"] for r in good]
    sha = [hashlib.sha1(c.read_bytes()).hexdigest() if c.is_file() else "" for c in crops]
    buf = io.BytesIO()
    np.savez(buf, keys=np.array([_key(r) for r in good]), embeddings=E[mask], sha1=np.array(sha))
    atomic_write(Path(output) / EMBEDDINGS, buf.getvalue())


def _crop_hashes(out: Path) -> dict[str, str]:
    """Face key -> SHA-1 of its crop file, from ``embeddings.npz`` (empty without one): finds crops in
    renamed folders (crop names repeat across folders: every person has a ``1_face1.jpg``)."""
    try:
        with np.load(out / EMBEDDINGS, allow_pickle=False) as z:
            return dict(zip(z["keys"].tolist(), z["sha1"].tolist()))
    except Exception:
        return {}


def _old_embeddings(out: Path, rows: list[dict[str, str]]) -> np.ndarray:
    """Embeddings of the written faces, one row each (NaN: unknown): from ``embeddings.npz``, or their
    crops embedded again (a clustering written before the embeddings were kept)."""
    known: dict[str, np.ndarray] = {}
    try:
        with np.load(out / EMBEDDINGS, allow_pickle=False) as z:
            known = dict(zip(z["keys"].tolist(), z["embeddings"]))
    except FileNotFoundError:
        pass
    except Exception as e:  # damaged: embed the crops again
        log.warning("%s is unreadable (%s); embedding the crops again", out / EMBEDDINGS, e)
    missing = [r for r in rows if _key(r) not in known]
    if missing:
        from faceforge.bootstrap.cluster import embed_faces_of

        log.info("embedding %d written crops that have no stored embedding", len(missing))
        faces = embed_faces_of([out / r["crop"] for r in missing], workers=1, progress=False)
        got: dict[str, np.ndarray] = {}
        for f in faces:  # the crop's main (first, largest) face
            got.setdefault(str(Path(f.source).resolve()), f.embedding)
        for r in missing:
            emb = got.get(str((out / r["crop"]).resolve()))
            if emb is not None:
                known[_key(r)] = emb
    dim = len(next(iter(known.values()))) if known else 128
    nan = np.full(dim, np.nan, np.float32)
    return np.stack([known.get(_key(r), nan) for r in rows]).astype(np.float32) if rows else np.zeros((0, dim))
