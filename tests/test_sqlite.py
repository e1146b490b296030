"""Schema migrations of faceforge's SQLite files (``PRAGMA user_version``)."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from faceforge._sqlite import SchemaVersionError, connect, migrate
from faceforge.errors import FaceforgeError

V1 = ("CREATE TABLE IF NOT EXISTS people (name TEXT PRIMARY KEY); "
      "CREATE INDEX IF NOT EXISTS people_name ON people(name);")
V2 = """
-- a note; with a semicolon
ALTER TABLE people ADD COLUMN note TEXT NOT NULL DEFAULT 'none;really';
CREATE TRIGGER people_upper AFTER INSERT ON people BEGIN
    UPDATE people SET note = upper(note) WHERE name = new.name;
END;
"""


def version(path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def test_a_new_file_gets_every_migration_once(tmp_path):
    path = tmp_path / "a.db"
    assert migrate(connect(path), [V1, V2], name="test store") == 2
    assert version(path) == 2
    db = connect(path)
    assert migrate(db, [V1, V2], name="test store") == 2  # nothing left to do: V2's ALTER would fail twice
    db.execute("INSERT INTO people (name) VALUES ('ada')")
    assert db.execute("SELECT note FROM people").fetchone() == ("NONE;REALLY",)


def test_a_file_from_before_versioning_opens(tmp_path):
    """user_version 0 with the tables already there: migration 1 is idempotent."""
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE people (name TEXT PRIMARY KEY); INSERT INTO people VALUES ('grace');")
    old.close()
    assert version(path) == 0
    db = connect(path)
    assert migrate(db, [V1, V2], name="test store") == 2
    assert db.execute("SELECT name, note FROM people").fetchall() == [("grace", "none;really")]


def test_a_failing_migration_changes_nothing(tmp_path):
    path = tmp_path / "b.db"
    db = connect(path)
    migrate(db, [V1], name="test store")
    bad = "CREATE TABLE extra (a INTEGER); INSERT INTO nowhere VALUES (1);"
    with pytest.raises(sqlite3.OperationalError, match="nowhere"):
        migrate(db, [V1, bad], name="test store")
    assert version(path) == 1
    assert not db.execute("SELECT name FROM sqlite_master WHERE name='extra'").fetchall()
    assert not db.in_transaction
    assert migrate(db, [V1, V2], name="test store") == 2  # a fixed script applies later


def test_a_newer_file_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "new.db"
    migrate(connect(path), [V1, V2, "CREATE TABLE later (a);"], name="gallery")
    with pytest.raises(SchemaVersionError) as e:
        migrate(connect(path), [V1, V2], name="gallery")
    assert isinstance(e.value, FaceforgeError)
    msg = str(e.value)
    assert "gallery" in msg and "version 3" in msg and "up to 2" in msg and "new.db" in msg and "Upgrade" in msg


def test_concurrent_openers_apply_a_migration_once(tmp_path):
    path = tmp_path / "c.db"
    once = "CREATE TABLE counted (a); INSERT INTO counted VALUES (1);"
    errors = []

    def open_it():
        try:
            migrate(connect(path), [once], name="test store")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert connect(path).execute("SELECT count(*) FROM counted").fetchone() == (1,)


def test_gallery_and_cache_files_are_versioned(tmp_path, astronaut):
    """Files made before versioning (user_version 0, tables present) open; newer ones are refused."""
    import sqlite3

    from faceforge._sqlite import SchemaVersionError
    from faceforge.data.cache import MIGRATIONS as CACHE
    from faceforge.data.cache import EmbeddingCache
    from faceforge.gallery import MIGRATIONS as GALLERY
    from faceforge.gallery import Gallery

    old = tmp_path / "old.db"
    db = sqlite3.connect(old)
    db.executescript(GALLERY[0])  # what an unversioned gallery file held
    db.close()
    g = Gallery(old)
    g.enrol("eileen", [astronaut])
    assert sqlite3.connect(old).execute("PRAGMA user_version").fetchone()[0] == len(GALLERY)
    assert [p.name for p in Gallery(old).people()] == ["eileen"]

    cache = tmp_path / "cache.sqlite"
    EmbeddingCache(cache).close()
    assert sqlite3.connect(cache).execute("PRAGMA user_version").fetchone()[0] == len(CACHE)
    for path, opener in ((old, Gallery), (cache, EmbeddingCache)):
        db = sqlite3.connect(path)
        db.execute("PRAGMA user_version = 99")
        db.commit()
        db.close()
        with pytest.raises(SchemaVersionError, match="99"):
            opener(path)
