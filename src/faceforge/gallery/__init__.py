"""Identity galleries: enrol people from a few photos each, then identify and verify faces.

A gallery needs no training: every enrolled photo's main face is embedded (``dlib-resnet`` by
default) and stored; a face is the enrolled person whose nearest stored face is closest, if that
distance is within the gallery's threshold, else ``"unknown"``. Adding or removing a person takes
effect at once. One SQLite file holds any number of named galleries.

The threshold is set for a target false-accept rate (``target_far``, default 1%: at most about one
stranger in a hundred is taken for someone enrolled), from the impostor distribution measured on
development identities for the embedder (``benchmarks/calibrate_gallery.py``; for dlib-resnet
0.46 in a gallery of up to 30 people, stricter in larger ones). An explicit ``threshold`` wins.
Every answer carries the threshold in force and its expected false-accept rate.

Example:
    >>> from faceforge.gallery import Gallery
    >>> g = Gallery("people.db")                                 # doctest: +SKIP
    >>> g.enrol("alice", ["alice1.jpg", "alice2.jpg"])           # doctest: +SKIP
    >>> faces = g.identify("group.jpg")                          # doctest: +SKIP
    >>> for box, who in zip(faces.xyxy, faces.predictions[g.name]):  # doctest: +SKIP
    ...     print(box, who.label, who.distance)

A gallery is enrolled at one quality preset (``quality="fast"``, the default, or ``"accurate"``:
flip-averaged embeddings, :class:`~faceforge.pipeline.FacePipeline`), stored with it, and always
identifies with it, at the thresholds calibrated for that preset; asking a gallery for the other
preset is refused (its stored faces cannot be re-embedded: the photos are not kept).

A gallery is also a :class:`~faceforge.types.FaceModel`: :class:`~faceforge.attributes.Analyzer` and
``faceforge live`` show who each face is beside the attributes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from faceforge._quality import check_quality
from faceforge._sqlite import Transaction, check_file, connect, migrate
from faceforge.errors import FaceforgeError, ImageError, ParameterError
from faceforge.gallery.history import EVENTS_MIGRATION, events, record_event
from faceforge.gallery.index import open_index
from faceforge.gallery.records import EnrolReport, GalleryVerification, Person
from faceforge.pipeline.core import quality_key
from faceforge.pipeline.verify import DEFAULT_TARGET_FAR, decision_threshold
from faceforge.types import UNKNOWN, Faces, Prediction

#: Names of people and galleries: letters, digits, space, ``_ . -``; 1-64 characters.
NAME_RE = re.compile(r"^[^\W_][\w .\-]{0,63}$")

#: Schema migrations (``PRAGMA user_version``; see :func:`faceforge._sqlite.migrate`). Append only.
MIGRATIONS = ["""
CREATE TABLE IF NOT EXISTS galleries (name TEXT PRIMARY KEY, embedder TEXT NOT NULL,
    embedder_version TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS people (id INTEGER PRIMARY KEY, gallery TEXT NOT NULL, name TEXT NOT NULL,
    created REAL NOT NULL, UNIQUE (gallery, name));
CREATE TABLE IF NOT EXISTS faces (id INTEGER PRIMARY KEY,
    person INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    embedding BLOB NOT NULL, sha256 TEXT NOT NULL, source TEXT NOT NULL, box TEXT,
    created REAL NOT NULL, UNIQUE (person, sha256));
CREATE INDEX IF NOT EXISTS faces_person ON faces(person);
""", EVENTS_MIGRATION,
    # issue 19: the quality preset the faces were embedded with (galleries of old: "fast")
    "ALTER TABLE galleries ADD COLUMN quality TEXT NOT NULL DEFAULT 'fast';"]


class GalleryError(FaceforgeError, KeyError):
    """A person or gallery that does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def check_name(name: str, what: str = "name") -> str:
    """``name`` stripped, or :class:`ParameterError` saying what a valid name looks like."""
    if not isinstance(name, str) or not NAME_RE.match(name.strip()):
        raise ParameterError(f"Invalid {what} {name!r}: use 1-64 letters, digits, spaces, '_', '.' or '-', "
                             f"starting with a letter or digit.")
    return name.strip()


class Gallery:
    """A named gallery of enrolled people in an SQLite file (created on first use).

    Args:
        path: the SQLite file. Several galleries may share it (``name``).
        name: the gallery's name.
        embedder: identity embedder (fixed when the gallery is created; reopening uses the stored one).
        detector: face detector for photos.
        threshold: distance at or below which a face is a person; wins over ``target_far``.
        target_far: the false-accept rate wanted (default 1%): the share of strangers' faces taken
            for someone enrolled. The threshold comes from the embedder's calibration for it
            (embedders without one use their fixed threshold).
        quality: the preset faces are embedded with: ``"fast"`` or ``"accurate"`` (fixed when the
            gallery is created, like the embedder). Default None: the stored one (``"fast"`` for
            a new gallery). Each preset has its own calibrated thresholds.

    Raises:
        ParameterError: ``target_far`` outside the calibrated range (0.001-0.1 for dlib-resnet),
            an unknown ``quality``, or a ``quality`` other than the one the gallery was created with.

    Safe to use from several threads; each call opens its own connection.
    """

    def __init__(self, path: str | os.PathLike, name: str = "default", *, embedder: str = "dlib-resnet",
                 detector: str = "photo", threshold: float | None = None,
                 target_far: float | None = DEFAULT_TARGET_FAR, quality: str | None = None) -> None:
        if quality is not None:
            check_quality(quality)
        self.path = Path(path)
        self.name = check_name(name, "gallery name")
        self.detector = detector
        self._lock = threading.RLock()
        self._cache: tuple[int, list[str], np.ndarray, np.ndarray] | None = None
        self._pipeline = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = connect(self.path, "gallery file")
        try:
            migrate(db, MIGRATIONS, name="gallery file")
        finally:
            db.close()
        with self._db() as db:
            row = db.execute("SELECT embedder, embedder_version, quality FROM galleries WHERE name=?",
                             (self.name,)).fetchone()
            if row is None:
                from faceforge.embedders.base import embedder_version

                row = (embedder, embedder_version(embedder), quality or "fast")
                db.execute("INSERT INTO galleries (name, embedder, embedder_version, created, quality) "
                           "VALUES (?,?,?,?,?)", (self.name, row[0], row[1], time.time(), row[2]))
        self.embedder_name, self.embedder_version, self.quality = row
        self.check_quality(quality)
        self._index = open_index(self.path, self.name)  # FAISS search, synced with the file (gallery/index.py)
        self._threshold = threshold
        self.target_far = target_far
        self.decision()  # a bad threshold or target_far fails here, not at the first face

    # -- storage ---------------------------------------------------------------------------------
    def _db(self) -> Transaction:
        return Transaction(connect(self.path, "gallery file"), close=True)

    @property
    def pipeline(self):
        if self._pipeline is None:
            from faceforge.embedders.base import embedder_version
            from faceforge.pipeline import FacePipeline

            if embedder_version(self.embedder_name) != self.embedder_version:
                raise FaceforgeError(
                    f"Gallery {self.name!r} in {self.path} was built with {self.embedder_name} version "
                    f"{self.embedder_version}, but version {embedder_version(self.embedder_name)} is installed; "
                    f"its faces cannot be compared. Re-enrol the people in a new gallery.")
            self._pipeline = FacePipeline(self.detector, self.embedder_name, quality=self.quality)
        return self._pipeline

    def check_quality(self, quality: str | None) -> str:
        """The gallery's quality preset; ``quality`` (None: any) must be it.

        Raises:
            ParameterError: an unknown ``quality``, or another preset than the gallery's.
        """
        if quality is not None and check_quality(quality) != self.quality:
            raise ParameterError(
                f"Gallery {self.name!r} in {self.path} was enrolled with quality {self.quality!r}, so it "
                f"identifies with {self.quality!r} embeddings only, got quality={quality!r}. Leave the quality "
                f"out (or pass {self.quality!r}), or enrol the people again in a new gallery created with "
                f"quality={quality!r}.")
        return self.quality

    def decision(self, threshold: float | None = None, target_far: float | None = None) -> tuple[float, float | None]:
        """``(threshold in force, its expected false-accept rate)`` for this gallery's size.

        Args:
            threshold: an explicit distance threshold for this call (default: the gallery's).
            target_far: a target false-accept rate for this call (default: the gallery's).

        Raises:
            ParameterError: a negative threshold or a ``target_far`` outside the calibrated range.
        """
        from faceforge.registry import get_spec

        if threshold is None and target_far is None:
            threshold, target_far = self._threshold, self.target_far
        try:
            fallback = get_spec(self.embedder_name).input.get("threshold")
        except FaceforgeError:
            fallback = None
        with self._db() as db:
            size = int(db.execute("SELECT COUNT(*) FROM people WHERE gallery=?", (self.name,)).fetchone()[0])
        return decision_threshold(self.embedder_name, fallback, threshold, target_far, "gallery", size,
                                  quality=self.quality)

    @property
    def threshold(self) -> float:
        """The distance threshold in force (explicit, or the one of ``target_far``)."""
        return self.decision()[0]

    @property
    def expected_far(self) -> float | None:
        """The false-accept rate expected at :attr:`threshold` (``None``: the embedder is not calibrated)."""
        return self.decision()[1]

    def _person_id(self, db: sqlite3.Connection, person: str) -> int | None:
        row = db.execute("SELECT id FROM people WHERE gallery=? AND name=?", (self.name, person)).fetchone()
        return None if row is None else int(row[0])

    # -- people ----------------------------------------------------------------------------------
    def enrol(self, person: str, photos: Iterable[Any], names: Sequence[str] | None = None, *,
              engine: Any = None, workers: int | None = None, progress: str | None = None) -> EnrolReport:
        """Add photos of ``person`` (created if new). Each photo's main face is stored
        (:func:`faceforge.types.main_face_order`: size and closeness to the centre).

        Args:
            person: the person's name.
            photos: paths, encoded bytes or RGB arrays.
            names: how to call each photo in the report (default: its path, or ``photo N``).
            engine: embed the photo files on the batch runner: ``"local"`` (worker processes),
                ``"ray"`` (a local Ray or a cluster) or an engine (:func:`faceforge.runner.get_engine`).
                Default None with ``workers`` None: here, with the gallery's own models (best for a
                few photos); photos given as bytes or arrays are always embedded here.
            workers: processes for the runner (0: one per core); giving it also uses the runner.
            progress: a progress bar's description (runner only), or None.

        Returns:
            :class:`EnrolReport`; photos without a face, unreadable ones and ones already
            enrolled for this person are listed there, not raised.

        Raises:
            ParameterError: invalid name, or no photo could be enrolled for a new person.
        """
        from faceforge.gallery.enrol import NO_FACE, embed_on_engine

        person = check_name(person, "person name")
        photos = list(photos)
        names = list(names) if names is not None else [
            str(p) if isinstance(p, (str, os.PathLike)) else f"photo {i + 1}" for i, p in enumerate(photos)]
        report = EnrolReport(person)
        found: dict[int, Any] = {}
        files = [i for i, p in enumerate(photos) if isinstance(p, (str, os.PathLike))]
        if (engine is not None or workers is not None) and files:
            self.pipeline  # noqa: B018 -- a gallery built with another embedder version fails here, before the work
            for i, (_, face, error) in zip(files, embed_on_engine([str(photos[i]) for i in files], self.detector,
                                                                 self.embedder_name, engine=engine, workers=workers,
                                                                 progress=progress, quality=self.quality)):
                found[i] = error if face is None else face
        for i, src in enumerate(photos):
            if i not in found:
                try:
                    found[i] = self._embed_here(src)
                except (FaceforgeError, OSError) as e:
                    found[i] = str(e)
        rows = []
        for i, label in enumerate(names):
            face = found[i]
            if isinstance(face, str) or face is None:
                report.problems.append((label, face or "could not be read"))
                continue
            if face.embedding is None:
                report.problems.append((label, NO_FACE))
                continue
            if face.faces_found > 1:
                report.several_faces.append(label)
            rows.append((face.embedding.tobytes(), face.sha256, label, json.dumps(list(face.box))))
        with self._db() as db:
            pid = self._person_id(db, person)
            if pid is None:
                if not rows:
                    raise ParameterError(
                        f"No face could be enrolled for {person!r}: "
                        + "; ".join(m if p in m else f"{p}: {m}" for p, m in report.problems) if report.problems
                        else f"No photos given for {person!r}.")
                pid = db.execute("INSERT INTO people (gallery, name, created) VALUES (?,?,?)",
                                 (self.name, person, time.time())).lastrowid
            for emb, sha, label, box in rows:
                cur = db.execute("INSERT OR IGNORE INTO faces (person, embedding, sha256, source, box, created) "
                                 "VALUES (?,?,?,?,?,?)", (pid, emb, sha, label[:500], box, time.time()))
                (report.added if cur.rowcount else report.duplicates).append(label)
            report.faces = int(db.execute("SELECT COUNT(*) FROM faces WHERE person=?", (pid,)).fetchone()[0])
            if report.added:
                record_event(db, self.name, person, "enrol", len(report.added), report.faces)
        return report

    def _embed_here(self, src: Any) -> Any:
        """One photo's :class:`~faceforge.gallery.enrol.PhotoFace`, with this gallery's models."""
        from faceforge.gallery.enrol import photo_face
        from faceforge.sources import load_image

        if isinstance(src, (str, os.PathLike)):  # decoded from the path: errors name the file
            raw: Any = Path(src).read_bytes()
            img = load_image(src)
        else:
            raw = src
            img = load_image(raw if isinstance(raw, bytes) else np.asarray(raw))
        sha = hashlib.sha256(raw if isinstance(raw, bytes) else np.ascontiguousarray(img).tobytes()).hexdigest()
        with self._lock:
            return photo_face(self.pipeline.embed(img, main_only=True), sha)

    def people(self) -> list[Person]:
        """Enrolled people, by name."""
        with self._db() as db:
            rows = db.execute("SELECT p.name, COUNT(f.id), p.created FROM people p LEFT JOIN faces f ON f.person=p.id "
                              "WHERE p.gallery=? GROUP BY p.id ORDER BY p.name", (self.name,)).fetchall()
        return [Person(n, int(c), float(t)) for n, c, t in rows]

    def history(self) -> list[dict[str, Any]]:
        """Who was enrolled, removed or dropped when, oldest first (:func:`faceforge.gallery.history.events`)."""
        with self._db() as db:
            return events(db, self.name)

    def __contains__(self, person: str) -> bool:
        with self._db() as db:
            return self._person_id(db, person) is not None

    def __len__(self) -> int:
        return len(self.people())

    def remove(self, person: str) -> int:
        """Delete ``person`` and every stored face of theirs; returns how many faces were deleted.

        Raises:
            GalleryError: no such person.
        """
        with self._db() as db:
            pid = self._person_id(db, person)
            if pid is None:
                raise GalleryError(f"No person {person!r} in gallery {self.name!r}.")
            n = int(db.execute("SELECT COUNT(*) FROM faces WHERE person=?", (pid,)).fetchone()[0])
            db.execute("DELETE FROM faces WHERE person=?", (pid,))
            db.execute("DELETE FROM people WHERE id=?", (pid,))
            record_event(db, self.name, person, "remove", n, 0)
        return n

    def drop(self) -> None:
        """Delete this gallery with all its people and faces."""
        with self._db() as db:
            n = db.execute("DELETE FROM faces WHERE person IN (SELECT id FROM people WHERE gallery=?)", (self.name,))
            record_event(db, self.name, None, "drop", n.rowcount, 0)
            db.execute("DELETE FROM people WHERE gallery=?", (self.name,))
            db.execute("DELETE FROM galleries WHERE name=?", (self.name,))
        self._index.delete_file()

    # -- matching --------------------------------------------------------------------------------
    def _stored(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """``(people, owner index per face, embeddings)``; cached until the gallery changes."""
        with self._db() as db:
            version = self._index.change_version(db)  # counts every write (max id + count missed a reused id)
            if self._cache is not None and self._cache[0] == version:
                return self._cache[1:]
            rows = db.execute("SELECT p.name, f.embedding FROM faces f JOIN people p ON f.person=p.id "
                              "WHERE p.gallery=? ORDER BY p.name, f.id", (self.name,)).fetchall()
        names = sorted({r[0] for r in rows})
        index = {n: i for i, n in enumerate(names)}
        owner = np.array([index[r[0]] for r in rows], int)
        emb = np.stack([np.frombuffer(r[1], np.float32) for r in rows]) if rows else np.zeros((0, 0), np.float32)
        self._cache = (version, names, owner, emb)
        return names, owner, emb

    def nearest(self, embeddings: np.ndarray, top_k: int = 3) -> list[list[tuple[str, float]]]:
        """For each embedding, ``[(person, distance), ...]``: each person's nearest stored face, nearest first."""
        X = np.atleast_2d(np.asarray(embeddings, np.float32))
        if not len(X):
            return []
        emb = self.pipeline.embedder
        return self._index.nearest(X, top_k, emb.metric, emb.distance)

    def _predictions(self, embeddings: np.ndarray, top_k: int, threshold: float | None = None,
                     target_far: float | None = None) -> list[Prediction]:
        """One prediction per embedding: the nearest person within the threshold, else ``"unknown"``.
        ``score``, ``known_score`` and ``top_k`` scores are similarities ``1 - distance``."""
        thr, far = self.decision(threshold, target_far)
        out = []
        for tops in self.nearest(embeddings, top_k):
            if tops and tops[0][1] <= thr:
                label, dist = tops[0]
            else:
                label, dist = UNKNOWN, (tops[0][1] if tops else float("inf"))
            out.append(Prediction(label, 1.0 - dist, [(n, 1.0 - d) for n, d in tops], 1.0 - dist,
                                  distance=dist, threshold=thr, far=far))
        return out

    def identify(self, image: Any, top_k: int = 3, *, threshold: float | None = None,
                 target_far: float | None = None, quality: str | None = None) -> Faces:
        """Every face of ``image`` (path, bytes or RGB array), main face first, with who it is.

        Args:
            image: path, bytes or RGB array.
            top_k: how many nearest people to list per face.
            threshold: a distance threshold for this call (wins over ``target_far``).
            target_far: a target false-accept rate for this call (default: the gallery's).
            quality: None, or the gallery's preset (another is refused: see :meth:`check_quality`).

        Returns:
            :class:`~faceforge.types.Faces` with ``predictions[self.name]``: per face the nearest
            enrolled person (or ``"unknown"``), its ``distance``, the ``threshold`` in force and
            its expected false-accept rate ``far``.
        """
        from faceforge.sources import load_image

        self.check_quality(quality)
        self.decision(threshold, target_far)  # bad options fail before any work
        img = load_image(image)
        with self._lock:
            faces = self.pipeline.embed(img)
        preds = self._predictions(faces.embedding, top_k, threshold, target_far) if len(faces) else []
        return faces.with_predictions(self.name, preds)

    def verify(self, image: Any, person: str, *, threshold: float | None = None,
               target_far: float | None = None, quality: str | None = None) -> GalleryVerification:
        """Is the main face of ``image`` the enrolled ``person``?

        The gallery's threshold applies (its expected false-accept rate is an upper bound here:
        one person is compared, not the whole gallery); ``threshold`` / ``target_far`` override it
        for this call; ``quality`` may only be the gallery's (see :meth:`check_quality`).

        Raises:
            GalleryError: no such person. ImageError: no face in the image.
            ParameterError: a bad ``threshold``, ``target_far`` or ``quality``.
        """
        from faceforge.sources import load_image

        self.check_quality(quality)
        thr, far = self.decision(threshold, target_far)
        if person not in self:
            raise GalleryError(f"No person {person!r} in gallery {self.name!r}.")
        img = load_image(image)
        with self._lock:
            faces = self.pipeline.embed(img, main_only=True)
        if not len(faces):
            raise ImageError(f"{_label(image)}: no face found to verify.")
        names, owner, stored = self._stored()
        mine = stored[owner == names.index(person)]
        d = float(self.pipeline.embedder.distance(np.repeat(faces.embedding[:1], len(mine), 0), mine).min())
        return GalleryVerification(person, d <= thr, d, thr, faces[0], far)

    # -- as a face model (Analyzer, live) --------------------------------------------------------
    task = "classification"

    @property
    def embedding_key(self) -> str:
        """Which embedding the gallery compares (shared with models of the same embedder and quality)."""
        return quality_key(self.embedder_name, None, self.quality)

    def embed(self, image: np.ndarray, faces: Faces) -> np.ndarray:
        """``(n, d)`` embeddings of ``faces`` in RGB ``image``."""
        with self._lock:
            return self.pipeline.embed_chips(image, faces)

    def predict_faces(self, image: np.ndarray, faces: Faces, top_k: int = 3) -> list[Prediction]:
        """One :class:`~faceforge.types.Prediction` per face: the person (or ``"unknown"``), with
        ``distance``, ``threshold`` and ``far``; ``score`` and ``top_k`` scores are similarities ``1 - distance``."""
        emb = faces.embeddings.get(self.embedding_key)
        if emb is None:
            emb = self.embed(image, faces)
        return self._predictions(emb, top_k) if len(faces) else []

    def __repr__(self) -> str:
        return (f"Gallery({str(self.path)!r}, name={self.name!r}, embedder={self.embedder_name!r}, "
                f"quality={self.quality!r})")


def list_galleries(path: str | os.PathLike) -> list[str]:
    """Names of the galleries in an SQLite file (empty if it does not exist)."""
    p = Path(path)
    if not p.exists():
        return []
    check_file(p, "gallery file")
    db = sqlite3.connect(p)
    try:
        return [r[0] for r in db.execute("SELECT name FROM galleries ORDER BY name")]
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def _label(x: Any) -> str:
    return str(x) if isinstance(x, (str, os.PathLike)) else "image"


__all__ = ["EnrolReport", "Gallery", "GalleryError", "GalleryVerification", "Person", "UNKNOWN",
           "check_name", "list_galleries"]
