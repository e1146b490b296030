"""A gallery's history (who was enrolled, removed or dropped when) and enrolling every class of a dataset.

* :data:`EVENTS_MIGRATION`: the ``events`` table (one row per change: gallery, person, action
  ``enrol`` / ``remove`` / ``drop``, photos added or faces deleted, the person's faces after, time),
  appended to :data:`faceforge.gallery.MIGRATIONS`. Events outlive the people and galleries they
  name, so a dropped gallery's history is still there.
* :func:`record_event` writes one, inside the transaction that made the change
  (:meth:`~faceforge.gallery.Gallery.enrol`, :meth:`~faceforge.gallery.Gallery.remove`,
  :meth:`~faceforge.gallery.Gallery.drop`); :func:`events` reads them.
* :func:`enrol_classes`: every class of a dataset (e.g. the folders ``faceforge ingest`` fills)
  enrolled as a person, only the photos not enrolled yet.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any, Iterable


#: The schema step that adds the events table (appended to the gallery file's migrations).
EVENTS_MIGRATION = """
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, gallery TEXT NOT NULL, person TEXT,
    action TEXT NOT NULL, photos INTEGER NOT NULL, faces INTEGER NOT NULL, time REAL NOT NULL);
CREATE INDEX IF NOT EXISTS events_gallery ON events(gallery, time);
"""

ACTIONS = ("enrol", "remove", "drop")


def record_event(db: sqlite3.Connection, gallery: str, person: str | None, action: str, photos: int,
                 faces: int) -> None:
    """Write one event (inside the caller's transaction).

    Args:
        db: the open connection, in the transaction that made the change.
        gallery: the gallery's name.
        person: who (None for ``drop``).
        action: ``"enrol"``, ``"remove"`` or ``"drop"``.
        photos: photos added (enrol) or faces deleted (remove, drop).
        faces: the person's faces after the change (0 after remove / drop).
    """
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
    db.execute("INSERT INTO events (gallery, person, action, photos, faces, time) VALUES (?,?,?,?,?,?)",
               (gallery, person, action, int(photos), int(faces), time.time()))


def events(db: sqlite3.Connection, gallery: str) -> list[dict[str, Any]]:
    """The events of ``gallery``, oldest first: ``{"person", "action", "photos", "faces", "time"}``
    (``time`` in seconds since the epoch, ``when`` as UTC ISO 8601)."""
    import datetime as dt

    rows = db.execute("SELECT person, action, photos, faces, time FROM events WHERE gallery=? ORDER BY time, id",
                      (gallery,)).fetchall()
    return [{"person": p, "action": a, "photos": int(n), "faces": int(f), "time": float(t),
             "when": dt.datetime.fromtimestamp(float(t), dt.timezone.utc).isoformat(timespec="seconds")}
            for p, a, n, f, t in rows]


def enrolled_hashes(gallery: Any, person: str) -> set[str]:
    """SHA-256s of the photos already enrolled for ``person`` (empty for a new person)."""
    with gallery._db() as db:
        rows = db.execute("SELECT f.sha256 FROM faces f JOIN people p ON f.person=p.id WHERE p.gallery=? AND p.name=?",
                          (gallery.name, person)).fetchall()
    return {r[0] for r in rows}


def enrol_classes(gallery: Any, photos: Iterable[Any], *, engine: Any = None, workers: int | None = None,
                  progress: bool = False) -> tuple[list[Any], list[tuple[str, str]]]:
    """Enrol each class as a person: only photos whose bytes are not enrolled for that person yet.

    Args:
        gallery: a :class:`~faceforge.gallery.Gallery`.
        photos: objects with ``label``, ``path`` and ``sha256`` (the SHA-256 of the file's bytes),
            e.g. :func:`faceforge.collect.split.class_photos`'s (hashed there, not again here).
        engine, workers: as for :meth:`~faceforge.gallery.Gallery.enrol`.
        progress: show a progress bar per person (runner only).

    Returns:
        ``(reports, skipped)``: one :class:`~faceforge.gallery.EnrolReport` per class with new
        photos, and ``(class, why)`` for classes left out (a name a gallery does not take, or
        nothing new).
    """
    from faceforge.errors import FaceforgeError
    from faceforge.gallery import check_name

    classes: dict[str, list[Any]] = {}
    for ph in photos:
        classes.setdefault(str(ph.label), []).append(ph)
    reports: list[Any] = []
    skipped: list[tuple[str, str]] = []
    for label, members in sorted(classes.items()):
        try:
            person = check_name(label.replace("/", "-"), "person name")
        except FaceforgeError as e:
            skipped.append((label, str(e)))
            continue
        have = enrolled_hashes(gallery, person)
        new: list[str] = []
        for ph in members:
            if ph.sha256 not in have:
                have.add(ph.sha256)  # the same bytes twice in a class: enrolled once
                new.append(str(ph.path))
        if not new:
            skipped.append((label, f"every photo of {label!r} is enrolled already"))
            continue
        try:
            reports.append(gallery.enrol(person, new, engine=engine, workers=workers,
                                         progress=f"enrol {person}" if progress else None))
        except FaceforgeError as e:  # e.g. no face in any photo of a new person: the other classes go on
            skipped.append((label, str(e)))
    return reports, skipped


__all__ = ["ACTIONS", "EVENTS_MIGRATION", "enrol_classes", "enrolled_hashes", "events", "record_event"]
