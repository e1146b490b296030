"""The ledger of a collected dataset: which files ingest has seen, the faces it filed, its runs.

One SQLite file per dataset, ``DATASET/.faceforge/ledger.db`` (:mod:`faceforge._sqlite`):

* ``files``: one row per content (sha256 of the original file's bytes): where it was first seen,
  its size and what became of it (``status`` in :data:`STATUSES`, with a ``reason``, the ``run``).
  A file renamed or copied elsewhere has the same content, so it is seen already.
* ``faces``: every face in the dataset's class folders that ingest knows: the crops it filed and
  the photos found there by hand (``sha256`` of the original, face number, ``class``, ``path``
  relative to the dataset, the 128-d dlib-resnet embedding as float32 bytes, ``created``, ``run``).
  Near duplicates and class health are judged on these embeddings.
* ``paths``: every inbox path met (size, mtime, sha256), so an unchanged file is not hashed again
  and a known path is told from a copy of known content.
* ``review``: one row per face sent to ``review/`` (the rows of ``review/review.csv``).
* ``runs``: one row per ingest run (``id``, ``started``, ``finished``, ``inboxes`` and the
  report as JSON).

A file's row is written in the same transaction as its faces, after the crops are in place, so an
interrupted run leaves either both or neither.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from faceforge._sqlite import Transaction, connect, migrate

#: What became of a file (``files.status``).
STATUSES = ("added", "duplicate", "near_duplicate", "unreadable", "no_face", "review", "refused")
#: The folder of ingest's bookkeeping inside a dataset, and the review queue.
META_DIR, REVIEW_DIR = ".faceforge", "review"
#: Embedding dimension stored in ``faces.embedding`` (dlib-resnet).
EMBEDDING_DIM = 128

MIGRATIONS = [
    """
    CREATE TABLE IF NOT EXISTS files (sha256 TEXT PRIMARY KEY, source TEXT, size INT, status TEXT, reason TEXT,
                                      run TEXT, seen REAL);
    CREATE TABLE IF NOT EXISTS faces (id INTEGER PRIMARY KEY, sha256 TEXT, face INT, class TEXT, path TEXT,
                                      embedding BLOB, created REAL, run TEXT);
    CREATE INDEX IF NOT EXISTS faces_class ON faces (class);
    CREATE INDEX IF NOT EXISTS files_source ON files (source);
    CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, started REAL, finished REAL, inboxes TEXT, report TEXT);
    CREATE TABLE IF NOT EXISTS paths (path TEXT PRIMARY KEY, size INT, mtime REAL, sha256 TEXT);
    CREATE TABLE IF NOT EXISTS review (crop TEXT PRIMARY KEY, source TEXT, frame INT, suggested TEXT,
                                       confidence REAL, reason TEXT, run TEXT, sha256 TEXT);
    """,
]


def ledger_path(dataset: str | os.PathLike) -> Path:
    """``DATASET/.faceforge/ledger.db``."""
    return Path(dataset) / META_DIR / "ledger.db"


class Ledger:
    """The ledger of ``dataset`` (see the module docs).

    Args:
        dataset: the dataset folder.
        create: make the ledger when it does not exist (False: an empty, read-only view, nothing
            is written; for readers such as retrain on a dataset made by hand).

    Each call opens its own connection, so a ledger may be shared between threads.
    """

    def __init__(self, dataset: str | os.PathLike, *, create: bool = True) -> None:
        self.dataset = Path(dataset)
        self.path = ledger_path(dataset)
        self.exists = self.path.is_file()
        if create and not self.exists:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if create or self.exists:
            db = connect(self.path, "ingest ledger")
            try:
                migrate(db, MIGRATIONS, name="ingest ledger")
            finally:
                db.close()
            self.exists = True

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if not self.exists:
            return []
        db = connect(self.path, "ingest ledger")
        try:
            return db.execute(sql, tuple(args)).fetchall()
        finally:
            db.close()

    # -- files ---------------------------------------------------------------------------------
    def seen(self, sha: str) -> bool:
        """Whether a file with this content (sha256 hex) was processed before."""
        return bool(self._read("SELECT 1 FROM files WHERE sha256=?", (sha,)))

    def seen_shas(self) -> set[str]:
        """Every content hash processed before."""
        return {r[0] for r in self._read("SELECT sha256 FROM files")}

    def sources(self) -> set[str]:
        """The first-seen path of every processed file."""
        return {r[0] for r in self._read("SELECT source FROM files")}

    def status(self, sha: str) -> tuple[str, str] | None:
        """``(status, reason)`` of a processed file, or None."""
        rows = self._read("SELECT status, reason FROM files WHERE sha256=?", (sha,))
        return (rows[0][0], rows[0][1]) if rows else None

    def files(self) -> list[dict[str, Any]]:
        """Every processed file: ``sha256, source, size, status, reason, run, seen``."""
        cols = ("sha256", "source", "size", "status", "reason", "run", "seen")
        return [dict(zip(cols, r)) for r in self._read(f"SELECT {', '.join(cols)} FROM files ORDER BY seen")]

    def known_paths(self) -> dict[str, tuple[int, float, str]]:
        """``{path: (size, mtime, sha256)}`` of every inbox path met before."""
        return {p: (s, m, h) for p, s, m, h in self._read("SELECT path, size, mtime, sha256 FROM paths")}

    def add_paths(self, rows: Iterable[tuple[str, int, float, str]]) -> None:
        """Remember inbox paths ``(path, size, mtime, sha256)``."""
        with Transaction(connect(self.path, "ingest ledger"), close=True) as db:
            db.executemany("INSERT OR REPLACE INTO paths VALUES (?,?,?,?)", list(rows))

    def review_rows(self) -> list[dict[str, Any]]:
        """The review queue: ``crop, source, frame, suggested, confidence, reason, run``."""
        cols = ("crop", "source", "frame", "suggested", "confidence", "reason", "run")
        return [dict(zip(cols, r)) for r in self._read(f"SELECT {', '.join(cols)} FROM review ORDER BY run, crop")]

    def record(self, sha: str, source: str, size: int, status: str, reason: str, run: str,
               faces: Iterable[dict[str, Any]] = (), review: Iterable[dict[str, Any]] = ()) -> None:
        """Record one file and the faces filed from it, in one transaction (a second record of
        the same content is ignored).

        Args:
            sha, source, size, status, reason, run: the ``files`` row (status in :data:`STATUSES`).
            faces: dicts with ``face`` (number), ``class``, ``path`` (relative to the dataset) and
                ``embedding`` (128 floats); written only when the file is new to the ledger.
            review: rows of the review queue (``crop, source, frame, suggested, confidence, reason``).
        """
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        now = time.time()
        with Transaction(connect(self.path, "ingest ledger"), close=True) as db:
            cur = db.execute("INSERT OR IGNORE INTO files VALUES (?,?,?,?,?,?,?)",
                             (sha, source, int(size), status, reason, run, now))
            if cur.rowcount:
                db.executemany("INSERT INTO faces (sha256, face, class, path, embedding, created, run) "
                               "VALUES (?,?,?,?,?,?,?)",
                               [(sha, int(f["face"]), f["class"], f["path"],
                                 np.asarray(f["embedding"], np.float32).tobytes(), now, run) for f in faces])
                db.executemany("INSERT OR REPLACE INTO review VALUES (?,?,?,?,?,?,?,?)",
                               [(r["crop"], r["source"], int(r.get("frame", 0)), r.get("suggested", ""),
                                 r.get("confidence"), r["reason"], run, sha) for r in review])

    # -- faces ---------------------------------------------------------------------------------
    def faces(self) -> list[dict[str, Any]]:
        """Every known face of the class folders: ``sha256, face, class, path, embedding, created, run``."""
        rows = self._read("SELECT sha256, face, class, path, embedding, created, run FROM faces ORDER BY id")
        return [{"sha256": s, "face": k, "class": c, "path": p, "embedding": np.frombuffer(e, np.float32),
                 "created": t, "run": r} for s, k, c, p, e, t, r in rows]

    def face_paths(self) -> set[str]:
        """The paths (relative to the dataset) of every known face."""
        return {r[0] for r in self._read("SELECT path FROM faces")}

    def files_by_class(self) -> dict[str, list[Path]]:
        """``{class: [crop or photo, ...]}``: the known faces of each class whose file still exists."""
        out: dict[str, list[Path]] = {}
        for c, p in self._read("SELECT class, path FROM faces ORDER BY class, id"):
            f = self.dataset / p
            if f.is_file():
                out.setdefault(c, []).append(f)
        return out

    # -- runs ----------------------------------------------------------------------------------
    def start_run(self, run_id: str, inboxes: Sequence[str]) -> None:
        """Record the start of a run."""
        with Transaction(connect(self.path, "ingest ledger"), close=True) as db:
            db.execute("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?)",
                       (run_id, time.time(), None, json.dumps(list(inboxes)), None))

    def finish_run(self, run_id: str, report: dict[str, Any]) -> None:
        """Record the end of a run and its report."""
        with Transaction(connect(self.path, "ingest ledger"), close=True) as db:
            db.execute("UPDATE runs SET finished=?, report=? WHERE id=?", (time.time(), json.dumps(report), run_id))

    def runs(self) -> list[dict[str, Any]]:
        """Every run, oldest first: ``id, started, finished`` (None when interrupted), ``inboxes``,
        ``report`` (None when interrupted)."""
        out = []
        for rid, started, finished, inboxes, report in self._read(
                "SELECT id, started, finished, inboxes, report FROM runs ORDER BY started, id"):
            out.append({"id": rid, "started": started, "finished": finished, "inboxes": json.loads(inboxes or "[]"),
                        "report": json.loads(report) if report else None})
        return out


def files_by_class(dataset: str | os.PathLike) -> dict[str, list[Path]]:
    """:meth:`Ledger.files_by_class` of ``dataset`` without creating a ledger (``{}`` when none)."""
    return Ledger(dataset, create=False).files_by_class()


__all__ = ["EMBEDDING_DIM", "META_DIR", "REVIEW_DIR", "STATUSES", "Ledger", "files_by_class", "ledger_path"]
