"""SQLite helpers shared by the stores (galleries, the service's database, caches).

:func:`connect` opens a file, :class:`Transaction` wraps one write transaction, and
:func:`migrate` keeps a file's schema current with ``PRAGMA user_version``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from faceforge.errors import FaceforgeError, SourceError

log = logging.getLogger("faceforge.sqlite")


#: The first 16 bytes of every SQLite 3 database file.
SQLITE_HEADER = b"SQLite format 3\x00"


def check_file(path: str | os.PathLike, what: str = "database file") -> None:
    """Refuse an existing ``path`` that is not an SQLite database (by its 16-byte header).

    A missing or empty file passes (SQLite makes a new database there), and so do ``:memory:``
    and ``file:`` URIs.

    Raises:
        SourceError: ``path`` is a folder, or a file of another kind (an image, a model...).
    """
    text = os.fspath(path)
    if text in ("", ":memory:") or text.startswith("file:"):
        return
    p = Path(text)
    if p.is_dir():
        raise SourceError(f"The {what} {p} is a folder, not an SQLite file; give a file path (a new file is created).")
    try:
        with open(p, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as e:
        raise SourceError(f"The {what} {p} cannot be read ({e.strerror or e}); check its permissions.") from e
    if head and head != SQLITE_HEADER:
        raise SourceError(f"The {what} {p} is not an SQLite database (it starts with {head[:8]!r}), so it was left "
                          f"untouched; give the path of an existing {what}, or a new file name to create one.")


def connect(path: str | os.PathLike, what: str = "database file") -> sqlite3.Connection:
    """A connection in autocommit mode (transactions by :class:`Transaction`), WAL, foreign keys on,
    usable from any thread, waiting up to 30 s for a lock.

    Args:
        path: the database file (created when missing), or ``":memory:"``.
        what: what the file is, for messages (``"gallery file"``...).

    Raises:
        SourceError: ``path`` exists but is not an SQLite database (see :func:`check_file`).
    """
    check_file(path, what)
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    # Switching a new file to WAL needs an exclusive lock, and SQLite can answer "database is
    # locked" at once (without its busy timeout) when several processes or threads open the same
    # new file together: retry for a while (seen in a test of 6 concurrent openers under load).
    for attempt in range(200):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or attempt == 199:
                raise
            time.sleep(0.05)
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


class SchemaVersionError(FaceforgeError):
    """An SQLite file was written by a newer faceforge than this one (its schema is unknown here)."""


def migrate(db: sqlite3.Connection, migrations: Sequence[str], *, name: str) -> int:
    """Bring ``db``'s schema up to date with ``PRAGMA user_version``.

    ``migrations[i]`` is the SQL script that takes the schema from version ``i`` to ``i + 1``
    (version 0 is an empty file). Each script still to apply runs once, inside its own write
    transaction that also stores the new version, so a failing script leaves the file as it was
    and several processes opening the same file apply it once. Scripts are append-only: never
    edit a released one, add the next. Migration 1 should use ``CREATE ... IF NOT EXISTS`` when
    files created before versioning (``user_version`` 0 with tables) must open.

    Example:
        >>> MIGRATIONS = ["CREATE TABLE IF NOT EXISTS t (a TEXT);", "ALTER TABLE t ADD COLUMN b REAL;"]
        >>> migrate(connect(":memory:"), MIGRATIONS, name="example store")
        2

    Args:
        db: an open connection in autocommit mode (as :func:`connect` makes).
        migrations: the scripts, oldest first; ``len(migrations)`` is the current version.
        name: what the file is, for messages (e.g. ``"service store"``).

    Returns:
        The schema version of ``db`` afterwards (``len(migrations)``).

    Raises:
        SchemaVersionError: ``db`` has a newer version than ``len(migrations)``.
        sqlite3.Error: a script failed (its transaction is rolled back).
    """
    target = len(migrations)
    while True:
        version = _user_version(db)
        if version > target:
            where = _db_file(db)
            raise SchemaVersionError(
                f"The {name}{f' at {where}' if where else ''} has schema version {version}, but this faceforge "
                f"knows versions up to {target}: it was written by a newer faceforge. Upgrade faceforge "
                f"(pip install -U faceforge), or use another file.")
        if version == target:
            return version
        with Transaction(db):
            if _user_version(db) != version:  # another connection migrated meanwhile: look again
                continue
            for statement in _statements(migrations[version]):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {version + 1}")
        log.info("%s: schema migrated to version %d", name, version + 1)


def _user_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _db_file(db: sqlite3.Connection) -> str:
    for _, schema, file in db.execute("PRAGMA database_list").fetchall():
        if schema == "main":
            return file or ""
    return ""


def _statements(script: str) -> list[str]:
    """The complete SQL statements of ``script`` (``executescript`` would commit the transaction)."""
    out, buf = [], ""
    for part in script.split(";"):
        buf += part + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \t\r\n;"):
                out.append(buf.strip())
            buf = ""
    rest = buf[:-1]  # the ";" added after the last part
    if rest.strip():
        if not sqlite3.complete_statement(rest + "\n;"):
            raise sqlite3.OperationalError(
                f"incomplete SQL statement at the end of a migration: {rest.strip()[:200]!r}")
        out.append(rest.strip() + "\n;")  # a statement without its ";", or a trailing comment
    return out
