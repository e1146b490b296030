"""The embedding cache: one sqlite3 file of embeddings keyed by image content and face config.

Two tables live in the file:

* ``embeddings``: key -> embedding and how the face was found (:class:`Record`). The key is
  the SHA-256 of the image file's bytes plus everything that changes the embedding (embedder,
  its weights' checksum, detector, crop mode, alignment, augmentation), so renaming or moving
  a photo keeps its cache entry and changing a model never reuses a stale one.
* ``files``: the SHA-256 of each file (and, once decoded, its perceptual hash and 16x16 grey
  thumbnail, or why it does not decode), memoised per (path, size, mtime), so a re-run
  hashes and decodes nothing that has not changed.

Every :meth:`EmbeddingCache.put` is committed at once (WAL journal), so an interrupted run
keeps what it had done and the next run resumes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from faceforge._sqlite import migrate
from faceforge.errors import DatasetError

log = logging.getLogger(__name__)

#: SQLite limits the number of ``?`` in one statement (999 in old builds).
_CHUNK = 900
#: Schema migrations (``PRAGMA user_version``; see :func:`faceforge._sqlite.migrate`). Append only.
MIGRATIONS = [
    """
    CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT);
    CREATE TABLE IF NOT EXISTS embeddings (
        key TEXT PRIMARY KEY, dim INTEGER NOT NULL, embedding BLOB NOT NULL,
        face TEXT NOT NULL, n_faces INTEGER NOT NULL, box TEXT, created REAL);
    CREATE TABLE IF NOT EXISTS files (
        path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
        sha256 TEXT NOT NULL, dhash INTEGER, thumb BLOB, error TEXT);
    INSERT OR IGNORE INTO meta VALUES ('schema', '1');
    """,
]


@dataclass
class Record:
    """One cached embedding and how its face was found.

    Attributes:
        embedding: ``(d,) float32`` (``(0,)`` when no face was used).
        face: ``"detected"``, ``"whole_image"`` (crop fallback) or ``"none"`` (no face found
            and ``crops=False``).
        n_faces: faces the detector found.
        box: ``[x1, y1, x2, y2]`` of the face used, in the (augmented) image's pixels, or None.
    """

    embedding: np.ndarray
    face: str
    n_faces: int
    box: list[float] | None


@dataclass(frozen=True)
class FileInfo:
    """What the ``files`` table knows about one file.

    Attributes:
        sha256: hex digest of the file's bytes ("" when the file cannot be read).
        dhash: 64-bit perceptual hash, or None until computed.
        thumb: ``16x16`` grey thumbnail (256 bytes), or None until computed.
        error: why the image does not decode, or None (also None until tried).
    """

    sha256: str
    dhash: int | None = None
    thumb: bytes | None = None
    error: str | None = None


def _to_signed(v: int | None) -> int | None:
    return None if v is None else (v - (1 << 64) if v >= (1 << 63) else v)


def _to_unsigned(v: int | None) -> int | None:
    return None if v is None else v & ((1 << 64) - 1)


def hash_file(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class EmbeddingCache:
    """Embeddings of dataset images, kept in a sqlite3 file between runs.

    Args:
        path: the sqlite file. Default: ``<faceforge.registry.cache_dir()>/embeddings.sqlite``
            (``$FACEFORGE_CACHE`` moves it). Several processes may share one file.

    Raises:
        DatasetError: the file cannot be opened or is not a faceforge cache.

    Example:
        >>> cache = EmbeddingCache("/tmp/emb.sqlite")                     # doctest: +SKIP
        >>> cache.put("k", Record(np.zeros(128, np.float32), "detected", 1, [0, 0, 9, 9]))  # doctest: +SKIP
        >>> cache.get("k").face                                           # doctest: +SKIP
        'detected'
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        if path is None:
            from faceforge.registry import cache_dir

            path = cache_dir() / "embeddings.sqlite"
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout = 30000")
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError:  # e.g. some network file systems; rollback journal then
                log.debug("WAL journal unavailable for %s", self.path)
            self._db.execute("PRAGMA synchronous = NORMAL")
            migrate(self._db, MIGRATIONS, name="embedding cache")
        except sqlite3.DatabaseError as e:
            raise DatasetError(
                f"{self.path}: cannot use this embedding cache ({e}). Delete the file (it only holds "
                f"cached embeddings, rebuilt on the next run) or pass another cache path."
            ) from e
        except OSError as e:
            raise DatasetError(
                f"{self.path}: cannot create the embedding cache ({e.strerror}). Set $FACEFORGE_CACHE to "
                f"a writable folder or pass cache=EmbeddingCache(path)."
            ) from e

    # -- embeddings ------------------------------------------------------------------------
    def get(self, key: str) -> Record | None:
        """The record stored under ``key``, or None."""
        return self.get_many([key]).get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, Record]:
        """Records for those of ``keys`` that are stored (batched reads)."""
        out: dict[str, Record] = {}
        uniq = list(dict.fromkeys(keys))
        for i in range(0, len(uniq), _CHUNK):
            part = uniq[i : i + _CHUNK]
            q = ("SELECT key, dim, embedding, face, n_faces, box FROM embeddings "
                 f"WHERE key IN ({','.join('?' * len(part))})")
            for key, dim, blob, face, n, box in self._db.execute(q, part):
                emb = np.frombuffer(blob, dtype="<f4", count=dim).astype(np.float32)
                out[key] = Record(emb, face, int(n), json.loads(box) if box else None)
        return out

    def put(self, key: str, record: Record) -> None:
        """Store ``record`` under ``key`` (replacing any old one); committed before returning."""
        emb = np.ascontiguousarray(np.asarray(record.embedding, dtype="<f4").reshape(-1))
        box = json.dumps([round(float(v), 3) for v in record.box]) if record.box is not None else None
        self._db.execute(
            "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, int(emb.size), emb.tobytes(), record.face, int(record.n_faces), box, time.time()),
        )

    def put_many(self, items: Iterable[tuple[str, Record]]) -> None:
        """Store several records in one transaction (all or none are committed)."""
        with self._transaction():
            for key, record in items:
                self.put(key, record)

    def __contains__(self, key: str) -> bool:
        return self._db.execute("SELECT 1 FROM embeddings WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])

    # -- files -----------------------------------------------------------------------------
    def file_infos(self, paths: Sequence[str]) -> list[FileInfo | None]:
        """SHA-256 (and what else is known) of each file, hashing only new or changed files.

        Returns:
            One :class:`FileInfo` per path, or None where the file cannot be read.
        """
        stats: list[tuple[int, int] | None] = []
        for p in paths:
            try:
                st = os.stat(p)
                stats.append((st.st_size, st.st_mtime_ns))
            except OSError:
                stats.append(None)
        known: dict[str, tuple[int, int, str, int | None, bytes | None, str | None]] = {}
        uniq = list(dict.fromkeys(paths))
        for i in range(0, len(uniq), _CHUNK):
            part = uniq[i : i + _CHUNK]
            q = ("SELECT path, size, mtime_ns, sha256, dhash, thumb, error FROM files "
                 f"WHERE path IN ({','.join('?' * len(part))})")
            for path, size, mtime, sha, dh, thumb, err in self._db.execute(q, part):
                known[path] = (size, mtime, sha, dh, thumb, err)
        out: list[FileInfo | None] = []
        fresh: list[tuple[str, int, int, str]] = []
        for p, sig in zip(paths, stats):
            if sig is None:
                out.append(None)
                continue
            k = known.get(p)
            if k is not None and (k[0], k[1]) == sig:
                out.append(FileInfo(k[2], _to_unsigned(k[3]), k[4], k[5]))
                continue
            try:
                sha = hash_file(p)
            except OSError:
                out.append(None)
                continue
            fresh.append((p, sig[0], sig[1], sha))
            known[p] = (sig[0], sig[1], sha, None, None, None)
            out.append(FileInfo(sha))
        if fresh:
            with self._transaction():
                self._db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, NULL, NULL, NULL)", fresh)
        return out

    def file_sha256(self, path: str | os.PathLike) -> str:
        """SHA-256 of a file's bytes, memoised per (path, size, mtime).

        Raises:
            DatasetError: the file cannot be read.
        """
        info = self.file_infos([str(path)])[0]
        if info is None:
            raise DatasetError(f"{path}: cannot be read. Check the path and its permissions.")
        return info.sha256

    def note_files(self, notes: Iterable[tuple[str, str, tuple[int, bytes] | None, str | None]]) -> None:
        """Record ``(path, sha256, (dhash, thumb) or None, error or None)`` learnt by decoding files.

        Only rows whose stored SHA-256 still matches are updated (a file changed meanwhile
        keeps its old, now stale, row until it is hashed again).
        """
        rows = [(_to_signed(fp[0]) if fp else None, fp[1] if fp else None, err, path, sha)
                for path, sha, fp, err in notes]
        if rows:
            with self._transaction():
                self._db.executemany(
                    "UPDATE files SET dhash = ?, thumb = ?, error = ? WHERE path = ? AND sha256 = ?", rows)

    # -- housekeeping ----------------------------------------------------------------------
    def _transaction(self) -> "_Tx":
        return _Tx(self._db)

    def close(self) -> None:
        """Close the database (further use raises)."""
        self._db.close()

    def __enter__(self) -> "EmbeddingCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.path)!r})"


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
