"""A FAISS vector index over a gallery's stored faces, kept in step with its SQLite file.

Search is by face, answers are by person: for each query the index returns its nearest faces
(ids are the SQLite ``faces.id`` rows) and each person's distance is that of their nearest face,
exactly as the brute force over every face (:func:`brute_force_nearest`) computes it.

* Up to :data:`EXACT_MAX` faces the index is exact (``IndexFlatL2`` in an ``IndexIDMap2``): the same
  people, in the same order, at the same distances as brute force (the reported distances are
  recomputed from the stored vectors with the embedder's own distance).
* Above it, an inverted-file index (``IndexIVFFlat``, ``4 * sqrt(n)`` lists, :data:`NPROBE` probed):
  measured on dlib-resnet embeddings of the development identities padded with rotated copies
  (``benchmarks/bench_index.py``), at 50,000 faces on one core: flat 0.86 ms per query; HNSW (M=32,
  efSearch=128) recall@1 1.000 at 0.44 ms but 9.7 s to build and no removal; IVF (894 lists,
  nprobe 32) recall@1 1.000 at 0.12 ms, 1.6 s to build, and it removes ids in place. IVF it is.

Ids stay in step by row id: every query first reads a change counter that SQLite triggers on the
``faces`` table bump (one row read, whoever wrote the file); when it moved, the gallery's
``(id, person, created)`` rows are compared with the index's, deleted rows are removed and new ones
added (a reused row id has a new ``created``), so enrolling a person costs the new faces, not a
rebuild. The index is rebuilt when it changes kind (growing past :data:`EXACT_MAX`) or outgrows its
IVF training (4x).

The index is saved beside the gallery file as ``FILE.NAME.faiss`` (one ``.npz``: the serialised
FAISS index, the row ids / owners / creation times it holds, and a JSON stamp with the format,
metric, dimension and a SHA-256 of the index bytes), written atomically. A missing, stale, truncated
or garbage file is logged and rebuilt from SQLite, never raised.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib
import io
import json
import logging
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from faceforge._fs import atomic_write
from faceforge._sqlite import Transaction, connect

log = logging.getLogger("faceforge.gallery.index")

#: Galleries up to this many faces are searched exactly; larger ones by IVF (see the module docs).
EXACT_MAX = 50_000
#: Inverted lists probed per query by the IVF index.
NPROBE = 32
#: a big (IVF) index's file is rewritten once this share of its faces changed, or after
#: :data:`SAVE_EVERY_S` seconds with changes, or at exit (see :meth:`GalleryIndex._due`)
SAVE_SHARE = 0.05
SAVE_EVERY_S = 60.0
#: Version of the saved index file.
FORMAT = 1

Distance = Callable[[np.ndarray, np.ndarray], np.ndarray]

# Triggers keep a per-gallery change counter (``'*'``: a face whose person row is already gone) and a
# random ``'#epoch'`` that tells this file apart from another with equal counters.
_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS face_changes (gallery TEXT PRIMARY KEY, version INTEGER NOT NULL)",
    *[f"""CREATE TRIGGER IF NOT EXISTS face_changes_{op} AFTER {op.upper()} ON faces BEGIN
        INSERT OR IGNORE INTO face_changes VALUES
            (COALESCE((SELECT gallery FROM people WHERE id={row}.person), '*'), 0);
        UPDATE face_changes SET version = version + 1
            WHERE gallery = COALESCE((SELECT gallery FROM people WHERE id={row}.person), '*');
    END""" for op, row in (("insert", "NEW"), ("delete", "OLD"), ("update", "NEW"))],
]


def nprobe_for(nlist: int) -> int:
    """IVF lists probed per query: :data:`NPROBE`, and 1 in 32 of the lists on big galleries
    (measured on 1M faces, 4,000 lists: 32 probed found the right person for 98.5% of new photos of
    enrolled people, 64 for 99.5%, 128 for 100% at 2.2 ms a query)."""
    return int(min(nlist, max(NPROBE, nlist // 32)))


def index_path(gallery_file: str | os.PathLike, name: str) -> Path:
    """Where the index of gallery ``name`` in ``gallery_file`` is saved: ``FILE.NAME.faiss``."""
    p = Path(gallery_file)
    return p.with_name(f"{p.name}.{name}.faiss")


def brute_force_nearest(names: Sequence[str], owner: np.ndarray, stored: np.ndarray, X: np.ndarray, top_k: int,
                        distance: Distance) -> list[list[tuple[str, float]]]:
    """Each person's nearest stored face per query, nearest ``top_k`` people first; vectorised.

    Args:
        names: the people; ``owner[i]`` indexes ``names`` for stored face ``i``.
        owner: ``(faces,)`` person index per stored face, sorted ascending (as ``Gallery._stored`` gives).
        stored: ``(faces, d)`` stored embeddings.
        X: ``(n, d)`` queries.
        top_k: people per answer (at least 1, at most ``len(names)``).
        distance: the embedder's row-wise distance.

    Returns:
        Per query ``[(person, distance), ...]``, nearest first.
    """
    X = np.atleast_2d(np.asarray(X, np.float32))
    if not len(names) or not len(X):
        return [[] for _ in range(len(X))]
    n, f = len(X), len(stored)
    d = np.stack([distance(np.repeat(x[None], f, 0), stored) for x in X])  # (n, faces): over faces at once
    owner = np.asarray(owner)
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    per = np.full((n, len(names)), np.inf, np.float32)
    per[:, owner[starts]] = np.minimum.reduceat(d, starts, axis=1)
    k = max(1, min(int(top_k), len(names)))
    return [[(names[j], float(row[j])) for j in np.argsort(row)[:k]] for row in per]


class FaceIndex:
    """A FAISS index of face vectors under int64 ids: exact (flat) or IVF, euclidean or cosine.

    Args:
        dim: vector size.
        metric: ``"euclidean"`` or ``"cosine"`` (vectors normalised, L2 search, ``d^2 / 2``).
        kind: ``"flat"`` or ``"ivf"``.
        train: vectors to train the IVF quantiser on (``kind="ivf"`` only).
    """

    def __init__(self, dim: int, metric: str = "euclidean", kind: str = "flat",
                 train: np.ndarray | None = None) -> None:
        faiss: Any = importlib.import_module("faiss")  # its type stubs lack much of the SWIG API

        self.dim, self.metric, self.kind = int(dim), metric, kind
        self.trained_n = 0
        self.index: Any
        if kind == "flat":
            self.index = faiss.IndexIDMap2(faiss.IndexFlatL2(self.dim))
        else:
            t = self._prep(np.zeros((0, self.dim)) if train is None else train)
            nlist = max(1, min(int(4 * np.sqrt(len(t))), len(t) // 39 or 1))
            quantiser = faiss.IndexFlatL2(self.dim)
            ivf = faiss.IndexIVFFlat(quantiser, self.dim, nlist)
            ivf.cp.min_points_per_centroid, ivf.cp.niter = 1, 10
            rng = np.random.default_rng(0)
            ivf.train(t[rng.choice(len(t), min(len(t), 32 * nlist), replace=False)])
            ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct by id, remove in place
            ivf.nprobe = nprobe_for(nlist)
            self.index, self.trained_n, self._quantiser = ivf, len(t), quantiser

    @classmethod
    def build(cls, ids: np.ndarray, X: np.ndarray, metric: str = "euclidean",
              exact_max: int = EXACT_MAX) -> FaceIndex:
        """An index of ``X`` under ``ids``: flat up to ``exact_max`` vectors, IVF above."""
        X = np.asarray(X, np.float32).reshape(len(ids), -1)
        kind = "flat" if len(X) <= exact_max else "ivf"
        out = cls(X.shape[1], metric, kind, X if kind == "ivf" else None)
        out.add(ids, X)
        return out

    def _prep(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(np.atleast_2d(np.asarray(X, np.float32)))
        if self.metric == "cosine":
            X = X / np.linalg.norm(X, axis=1, keepdims=True).clip(1e-12)
        return X

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, ids: np.ndarray, X: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(self._prep(X), np.ascontiguousarray(ids, np.int64))

    def remove(self, ids: np.ndarray) -> None:
        if len(ids):
            self.index.remove_ids(np.ascontiguousarray(ids, np.int64))

    def vector(self, face_id: int) -> np.ndarray:
        """The stored (for cosine: normalised) vector of ``face_id``."""
        return self.index.reconstruct(int(face_id))

    def search(self, Q: np.ndarray, k: int, exhaustive: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(distances, ids)`` of the ``k`` nearest faces per query (``-1``: none); ``exhaustive``
        probes every IVF list (exact)."""
        faiss: Any = importlib.import_module("faiss")

        Q = self._prep(Q)
        k = max(1, min(int(k), len(self)))
        if self.kind == "ivf" and exhaustive:
            D, ids = self.index.search(Q, k, params=faiss.SearchParametersIVF(nprobe=self.index.nlist))
        else:
            D, ids = self.index.search(Q, k)
        D = np.maximum(D, 0)
        return (D / 2 if self.metric == "cosine" else np.sqrt(D)), ids

    def to_bytes(self) -> bytes:
        import faiss

        return faiss.serialize_index(self.index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, metric: str, kind: str, trained_n: int) -> FaceIndex:
        import faiss

        out = cls.__new__(cls)
        out.index = faiss.deserialize_index(np.frombuffer(data, np.uint8))
        out.dim, out.metric, out.kind, out.trained_n = int(out.index.d), metric, kind, int(trained_n)
        if kind == "ivf":
            out.index.nprobe = nprobe_for(out.index.nlist)
        return out


class GalleryIndex:
    """The index of one gallery (``name``) in an SQLite gallery file, synced lazily before each search.

    Args:
        path: the gallery's SQLite file (its schema must exist).
        name: the gallery's name.
        exact_max: the largest gallery searched exactly (default :data:`EXACT_MAX`).
    """

    def __init__(self, path: str | os.PathLike, name: str, exact_max: int = EXACT_MAX) -> None:
        self.path, self.name, self.exact_max = Path(path), name, int(exact_max)
        self.file = index_path(self.path, name)
        self._lock = threading.RLock()
        self._version: tuple | None = None
        self._index: FaceIndex | None = None
        self._rows = np.zeros((0, 3))  # (id, person, created) per indexed face, by id
        self._names: dict[int, str] = {}
        self._people_of_rows: tuple[Any, int] = (None, 0)  # (the rows counted, their number of people)
        self._loaded = False
        self.rebuilds = 0  # full builds done by this object (tests and benchmarks read it)
        self._unsaved = 0  # faces added or removed since the file was last written
        self._saved_at = time.monotonic()
        self.saves = 0  # files written by this object (tests and benchmarks read it)
        db = connect(self.path)
        try:
            with Transaction(db) as tx:
                for stmt in _SCHEMA:
                    tx.execute(stmt)
                tx.execute("INSERT OR IGNORE INTO face_changes VALUES ('#epoch', ?)", (secrets.randbits(62),))
        finally:
            db.close()

    # -- syncing ---------------------------------------------------------------------------------
    def _read_version(self, db) -> tuple:
        v = dict(db.execute("SELECT gallery, version FROM face_changes WHERE gallery IN (?, '*', '#epoch')",
                            (self.name,)).fetchall())
        return (v.get("#epoch", 0), v.get(self.name, 0), v.get("*", 0))

    def change_version(self, db) -> int:
        """A number that changes with every write to this gallery's faces (by anyone), read on ``db``."""
        epoch, mine, orphans = self._read_version(db)
        return (epoch * 1_000_003 + mine) * 1_000_003 + orphans

    def sync(self, metric: str = "euclidean") -> None:
        """Bring the index in step with SQLite (loading or rebuilding the saved file as needed)."""
        db = connect(self.path)
        db.execute("BEGIN")  # one snapshot of the counter, the rows, the people and the embeddings
        try:
            version = self._read_version(db)
            if version == self._version and self._index is not None and self._index.metric == metric:
                return
            rows = np.array(db.execute(
                "SELECT f.id, f.person, f.created FROM faces f JOIN people p ON f.person=p.id "
                "WHERE p.gallery=? ORDER BY f.id", (self.name,)).fetchall(), np.float64).reshape(-1, 3)
            self._names = dict(db.execute("SELECT id, name FROM people WHERE gallery=?", (self.name,)).fetchall())
            if not self._loaded:
                self._loaded = True
                self._load(metric)
            before = len(self._rows)
            changed = self._apply(db, rows, metric)
            self._version = version
        finally:
            db.execute("COMMIT")
            db.close()
        if changed:
            self._unsaved += max(1, abs(len(self._rows) - before))
            if self._due():
                self._save()
            else:
                _DIRTY.add(self)

    def _due(self) -> bool:
        """Whether to write the file now: always for galleries searched exactly (a few MB at most);
        for big ones once :data:`SAVE_SHARE` of the faces changed or :data:`SAVE_EVERY_S` passed
        (rewriting hundreds of MB after each small enrolment would cost more than the change). A
        file left behind is only an older state: the next process brings it up to date from SQLite
        by removing and adding faces (:meth:`sync`), so a deferred save loses nothing."""
        if self._index is None or self._index.kind == "flat":
            return True
        return (self._unsaved >= SAVE_SHARE * max(len(self._rows), 1)
                or time.monotonic() - self._saved_at >= SAVE_EVERY_S)

    def flush(self) -> None:
        """Write the file now if changes are waiting (also done at exit)."""
        with self._lock:
            if self._unsaved:
                self._save()

    def _apply(self, db, rows: np.ndarray, metric: str) -> bool:
        """Remove gone faces, add new ones (or rebuild); True when the index changed."""
        old = self._rows
        ids, old_ids = rows[:, 0].astype(np.int64), old[:, 0].astype(np.int64)
        keep_old = np.isin(old_ids, ids)
        pos = np.searchsorted(ids, old_ids[keep_old])
        same = np.all(rows[pos] == old[keep_old], axis=1)  # a reused id has a new created / person
        gone = np.r_[old_ids[~keep_old], old_ids[keep_old][~same]]
        new = np.setdiff1d(ids, old_ids[keep_old][same])
        idx = self._index
        kind = "flat" if len(ids) <= self.exact_max else "ivf"
        if not len(ids):  # an empty gallery has no index (nor a known dimension)
            self._index, self._rows = None, rows
            self.file.unlink(missing_ok=True)
            return False
        if (idx is None or idx.metric != metric or idx.kind != kind
                or (kind == "ivf" and len(ids) > 4 * max(idx.trained_n, 1))):
            if idx is not None:
                log.info("gallery %r: rebuilding its %s index for %d faces", self.name, kind, len(ids))
            self._index = FaceIndex.build(ids, self._embeddings(db, ids), metric, self.exact_max)
            self.rebuilds += 1
        elif not len(gone) and not len(new):
            return False
        else:
            idx.remove(gone)
            idx.add(new, self._embeddings(db, new))
        self._rows = rows
        return True

    def _embeddings(self, db, ids: np.ndarray) -> np.ndarray:
        out: list[np.ndarray] = []
        for i in range(0, len(ids), 900):
            chunk = [int(x) for x in ids[i:i + 900]]
            got = dict(db.execute(f"SELECT id, embedding FROM faces WHERE id IN ({','.join('?' * len(chunk))})",
                                  chunk).fetchall())
            out.extend(np.frombuffer(got[x], np.float32) for x in chunk)
        return np.stack(out) if out else np.zeros((0, 0), np.float32)

    # -- the saved file --------------------------------------------------------------------------
    def _load(self, metric: str) -> None:
        if not self.file.exists():
            log.info("gallery %r: no saved index at %s; building one", self.name, self.file)
            return
        try:
            with np.load(io.BytesIO(self.file.read_bytes()), allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                data = bytes(z["index"])
                rows = np.asarray(z["rows"], np.float64).reshape(-1, 3)
            if meta.get("format") != FORMAT or meta.get("metric") != metric:
                log.warning("gallery %r: saved index %s has format %s / metric %s, not %s / %s; rebuilding",
                            self.name, self.file, meta.get("format"), meta.get("metric"), FORMAT, metric)
                return
            if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
                raise ValueError("its checksum does not match")
            idx = FaceIndex.from_bytes(data, metric, meta["kind"], meta.get("trained_n", 0))
            if len(idx) != len(rows):
                raise ValueError(f"it holds {len(idx)} vectors for {len(rows)} rows")
        except Exception as e:  # truncated, garbage, another format: rebuild, never fail the query
            log.warning("gallery %r: saved index %s is unreadable (%s: %s); rebuilding it from the gallery",
                        self.name, self.file, type(e).__name__, e)
            return
        self._index, self._rows = idx, rows

    def _save(self) -> None:
        self._unsaved, self._saved_at = 0, time.monotonic()
        _DIRTY.discard(self)
        if self._index is None:
            return
        self.saves += 1
        data = self._index.to_bytes()
        meta = {"format": FORMAT, "metric": self._index.metric, "kind": self._index.kind, "dim": self._index.dim,
                "trained_n": self._index.trained_n, "faces": len(self._rows),
                "sha256": hashlib.sha256(data).hexdigest()}
        buf = io.BytesIO()
        np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), index=np.frombuffer(data, np.uint8),
                 rows=self._rows)
        try:
            atomic_write(self.file, buf.getvalue())
        except OSError as e:  # a read-only folder: the index still works in memory
            log.warning("gallery %r: could not save its index to %s (%s); it is rebuilt when next opened",
                        self.name, self.file, e)

    def delete_file(self) -> None:
        """Forget the index and delete its file (the gallery was dropped)."""
        with self._lock:
            self._index, self._rows, self._version = None, np.zeros((0, 3)), None
            self.file.unlink(missing_ok=True)

    # -- search ----------------------------------------------------------------------------------
    def nearest(self, embeddings: np.ndarray, top_k: int, metric: str, distance: Distance
                ) -> list[list[tuple[str, float]]]:
        """Per embedding ``[(person, distance), ...]``: each person's nearest stored face, nearest first,
        ``min(top_k, people)`` of them (see :meth:`faceforge.gallery.Gallery.nearest`)."""
        X = np.atleast_2d(np.asarray(embeddings, np.float32))
        with self._lock:
            self.sync(metric)
            idx, rows, names = self._index, self._rows, self._names
            if idx is None or not len(idx) or not len(X) or not names:
                return [[] for _ in range(len(X))]
            if self._people_of_rows[0] is not rows:  # counted once per change, not per query (O(n log n))
                self._people_of_rows = (rows, len(np.unique(rows[:, 1])))
            k = max(1, min(int(top_k), self._people_of_rows[1]))
            out: list[list[tuple[str, float]]] = []
            ask = min(len(idx), max(32, 8 * k))
            D, ids = idx.search(X, ask)
            for q in range(len(X)):
                tops = self._people_of(ids[q], rows, k)
                n_ask = ask
                while len(tops) < k and (n_ask < len(idx) or idx.kind == "ivf"):
                    n_ask = min(len(idx), n_ask * 8)  # too few people among the nearest faces: look further
                    _, more = idx.search(X[q:q + 1], n_ask, exhaustive=n_ask >= len(idx) or idx.kind == "ivf")
                    tops = self._people_of(more[0], rows, k)
                    if n_ask >= len(idx):
                        break
                scored = [(names[int(pid)], float(distance(X[q:q + 1], idx.vector(fid)[None])[0]))
                          for pid, fid in tops]
                out.append(sorted(scored, key=lambda t: t[1]))
            return out

    @staticmethod
    def _people_of(ids: np.ndarray, rows: np.ndarray, k: int) -> list[tuple[int, int]]:
        """``[(person, face id), ...]``: the first ``k`` people among ``ids`` (nearest first) and their face."""
        ids = ids[ids >= 0]
        owners = rows[np.searchsorted(rows[:, 0], ids), 1].astype(np.int64)
        _, first = np.unique(owners, return_index=True)
        first = np.sort(first)[:k]
        return [(int(owners[i]), int(ids[i])) for i in first]


_OPEN: dict[tuple[str, str], GalleryIndex] = {}
_OPEN_LOCK = threading.Lock()
#: indexes with changes not yet written (saved at exit)
_DIRTY: set[GalleryIndex] = set()


@atexit.register
def _flush_all() -> None:
    for idx in list(_DIRTY):
        try:
            idx.flush()
        except Exception as e:  # at exit: the next process repairs the file from SQLite anyway
            log.warning("gallery %r: index not saved at exit (%s)", idx.name, e)


def open_index(path: str | os.PathLike, name: str) -> GalleryIndex:
    """The process-wide :class:`GalleryIndex` of gallery ``name`` in ``path`` (shared by every
    :class:`~faceforge.gallery.Gallery` object of it, so the index is loaded once)."""
    key = (str(Path(path).resolve()), name)
    with _OPEN_LOCK:
        if key not in _OPEN:
            _OPEN[key] = GalleryIndex(path, name)
        return _OPEN[key]


__all__ = ["EXACT_MAX", "FaceIndex", "GalleryIndex", "NPROBE", "brute_force_nearest", "index_path", "nprobe_for",
           "open_index"]
