"""SQLite helpers shared by the stores (galleries, the service's database)."""

from __future__ import annotations

import os
import sqlite3


def connect(path: str | os.PathLike) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions by :class:`Transaction`), WAL, foreign keys on,
    usable from any thread, waiting up to 30 s for a lock."""
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA foreign_keys=ON")
    return db


class Transaction:
    """``with Transaction(db) as db:`` one write transaction (``BEGIN IMMEDIATE``): committed on
    success, rolled back on an exception; ``close=True`` closes the connection afterwards."""

    def __init__(self, db: sqlite3.Connection, close: bool = False) -> None:
        self.db, self.close = db, close

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, *exc: object) -> None:
        try:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            if self.close:
                self.db.close()
