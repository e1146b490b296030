"""The service's data directory: models, galleries and jobs in SQLite, files under generated names.

Layout of ``home`` (``--home`` or ``FACEFORGE_HOME``)::

    service.db          models, jobs and schedules (SQLite, WAL)
    galleries.db        galleries (see :class:`faceforge.gallery.Gallery`)
    models/<id>.ffm     model files (ids are generated; names live in the database)
    jobs/<id>/          a job's inputs and outputs
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from faceforge._sqlite import Transaction, connect, migrate
from faceforge.gallery import check_name
from faceforge.service.safety import RequestError

#: The service store's schema, one script per version (see :func:`faceforge._sqlite.migrate`); append only.
#: Version 1 is the schema of the files made before versioning (``user_version`` 0), hence IF NOT EXISTS.
MIGRATIONS = [
    """
    CREATE TABLE IF NOT EXISTS models (name TEXT PRIMARY KEY, file TEXT NOT NULL, source TEXT NOT NULL,
        info TEXT NOT NULL, created REAL NOT NULL);
    CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL,
        params TEXT NOT NULL, progress REAL NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '',
        result TEXT, error TEXT, created REAL NOT NULL, updated REAL NOT NULL);
    """,
    # 2: schedules (faceforge.service.schedules): the timer's source of truth, and what each firing did
    """
    CREATE TABLE schedules (id TEXT PRIMARY KEY, name TEXT NOT NULL, cron TEXT NOT NULL, timezone TEXT NOT NULL,
        steps TEXT NOT NULL, enabled INTEGER NOT NULL, catch_up INTEGER NOT NULL, created REAL NOT NULL,
        updated REAL NOT NULL, last_run REAL, last_fired REAL);
    CREATE TABLE schedule_events (id INTEGER PRIMARY KEY AUTOINCREMENT, schedule TEXT NOT NULL, at REAL NOT NULL,
        event TEXT NOT NULL, job TEXT, message TEXT NOT NULL DEFAULT '');
    CREATE INDEX schedule_events_by_schedule ON schedule_events (schedule, at);
    """,
]
#: A job's life: ``preparing`` (its inputs are being written), ``queued``, ``running``, then one of
#: ``done``, ``failed``, ``cancelled`` (final).
JOB_STATES = ("preparing", "queued", "running", "done", "failed", "cancelled")
FINAL_STATES = ("done", "failed", "cancelled")
#: Name prefix of a model upload's temporary file in ``models/`` while it is checked.
UPLOAD_PREFIX = ".upload-"


def default_home() -> Path:
    env = os.environ.get("FACEFORGE_HOME")
    return Path(env) if env else Path.home() / ".faceforge"


class Home:
    """The service's state on disk; every method is safe to call from several threads."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser().resolve()
        for sub in ("models", "jobs"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        self.db_path = self.path / "service.db"
        self.galleries_path = self.path / "galleries.db"
        self._local = threading.local()
        migrate(self._conn(), MIGRATIONS, name="service store")
        self.sweep_uploads()

    def _conn(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = connect(self.db_path)
        return db

    def _tx(self) -> Transaction:
        return Transaction(self._conn())

    # -- models ----------------------------------------------------------------------------------
    def model_file(self, name: str) -> Path:
        row = self._conn().execute("SELECT file FROM models WHERE name=?", (name,)).fetchone()
        if row is None:
            raise RequestError(f"No model called {name!r}; GET /api/models lists them.", 404)
        return self.path / "models" / row[0]

    def public_model_file(self, name: str) -> Path:
        """:meth:`model_file`, its manifest first cleared of server paths (files stored before this rule)."""
        from faceforge.errors import FaceforgeError
        from faceforge.heads.bundle import read_manifest, replace_manifest

        path = self.model_file(name)
        try:
            manifest = read_manifest(path, f"{name}.ffm")
            clean = public_manifest(manifest)
            if clean != manifest:
                replace_manifest(path, path, clean)
        except FaceforgeError as e:
            raise RequestError(f"Model {name!r}: the stored file cannot be read ({e}).", 409) from e
        return path

    def models(self) -> list[dict[str, Any]]:
        rows = self._conn().execute("SELECT name, source, info, created FROM models ORDER BY name").fetchall()
        return [{"name": n, "source": s, **json.loads(i), "created": c} for n, s, i, c in rows]

    def add_model(self, name: str, data: bytes, source: str, *, replace: bool = False,
                  filename: str | None = None) -> dict[str, Any]:
        """Store a model file under ``name`` once it is checked in full (a bad file is refused, and
        nothing of it stays on disk).

        The file is checked from a temporary file (the size caps of :func:`faceforge.heads.load_bundle`,
        then the classifier's schema, arrays and embedder), then written under a generated name with
        server paths in its manifest reduced to their last part.

        Args:
            name: the model's name in the service.
            data: the file's bytes.
            source: how it arrived (``"upload"``, ``"training job ..."``).
            replace: replace a model of the same name.
            filename: what to call the file in messages (the client's file name; default ``name.ffm``).

        Raises:
            RequestError: 422 for a file that is not a usable model (the message names ``filename``,
                never a server path), 409 for a name in use.
        """
        from faceforge.errors import FaceforgeError
        from faceforge.heads.bundle import replace_manifest
        from faceforge.train import load_classifier

        name = check_name(name, "model name")
        label = filename or f"{name}.ffm"
        models = self.path / "models"
        fd, tmp_name = tempfile.mkstemp(dir=models, prefix=UPLOAD_PREFIX, suffix=".tmp")
        tmp = Path(tmp_name)
        fid = f"{uuid.uuid4().hex}.ffm"
        path = models / fid
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            try:
                clf = load_classifier(tmp)
                m = public_manifest(clf.manifest)
                replace_manifest(tmp, path, m)
            except FaceforgeError as e:
                path.unlink(missing_ok=True)
                msg = str(e).replace(str(tmp), label).replace(str(self.path), "<home>")
                raise RequestError(f"Model {name!r}: not a usable faceforge model: {msg}", 422) from e
        finally:
            tmp.unlink(missing_ok=True)
        info = {"task": clf.task, "classes": clf.classes, "embedder": m.get("embedder"),
                "head": (m.get("head") or {}).get("kind"), "metrics": _summary_metrics(m.get("metrics") or {}),
                "size": path.stat().st_size, **({} if clf.quality == "fast" else {"quality": clf.quality})}
        old = None
        try:
            with self._tx() as db:
                row = db.execute("SELECT file FROM models WHERE name=?", (name,)).fetchone()
                if row is not None and not replace:
                    raise RequestError(f"A model called {name!r} exists; delete it first or choose another name.", 409)
                old = row[0] if row else None
                db.execute("INSERT OR REPLACE INTO models VALUES (?,?,?,?,?)",
                           (name, fid, source, json.dumps(info), time.time()))
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if old:
            (models / old).unlink(missing_ok=True)
        return {"name": name, "source": source, **info}

    def sweep_uploads(self, older_than_s: float = 3600.0) -> int:
        """Delete temporary upload files left by a killed process (older than ``older_than_s``)."""
        n = 0
        for p in (self.path / "models").glob(f"{UPLOAD_PREFIX}*.tmp"):
            try:
                if time.time() - p.stat().st_mtime > older_than_s:
                    p.unlink()
                    n += 1
            except OSError:
                pass
        return n

    def delete_model(self, name: str) -> None:
        with self._tx() as db:
            row = db.execute("SELECT file FROM models WHERE name=?", (name,)).fetchone()
            if row is None:
                raise RequestError(f"No model called {name!r}.", 404)
            db.execute("DELETE FROM models WHERE name=?", (name,))
        (self.path / "models" / row[0]).unlink(missing_ok=True)

    # -- jobs ------------------------------------------------------------------------------------
    def job_dir(self, job_id: str) -> Path:
        if not (len(job_id) == 32 and all(c in "0123456789abcdef" for c in job_id)):
            raise RequestError(f"No job {job_id!r}.", 404)
        return self.path / "jobs" / job_id

    def new_job(self, kind: str, params: dict[str, Any]) -> tuple[str, Path]:
        """Reserve a job id and its folder and record the job (status ``preparing``, with its
        ``kind`` and ``params``); it runs once :meth:`queue_job` queues it. A job still
        preparing when the server stops is swept (with its folder) at the next start."""
        job_id = uuid.uuid4().hex
        d = self.path / "jobs" / job_id
        d.mkdir(parents=True)
        now = time.time()
        with self._tx() as db:
            db.execute("INSERT INTO jobs (id, kind, status, params, message, created, updated) "
                       "VALUES (?,?,?,?,?,?,?)", (job_id, kind, "preparing", json.dumps(params),
                                                  "receiving its inputs", now, now))
        return job_id, d

    def queue_job(self, job_id: str, kind: str | None = None, params: dict[str, Any] | None = None) -> None:
        """Queue a job made by :meth:`new_job` (``kind`` / ``params``: replace the recorded ones)."""
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT kind, params FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None:
                if kind is None:
                    raise RequestError(f"No job {job_id!r} to queue.", 404)
                db.execute("INSERT INTO jobs (id, kind, status, params, created, updated) VALUES (?,?,?,?,?,?)",
                           (job_id, kind, "queued", json.dumps(params or {}), now, now))
                return
            db.execute("UPDATE jobs SET kind=?, params=?, status='queued', message='', updated=? "
                       "WHERE id=? AND status='preparing'",
                       (kind or row[0], json.dumps(params) if params is not None else row[1], now, job_id))

    def discard_job_dir(self, job_id: str) -> None:
        """Remove a job's folder, and the job itself while it is still ``preparing``."""
        with self._tx() as db:
            db.execute("DELETE FROM jobs WHERE id=? AND status='preparing'", (job_id,))
        shutil.rmtree(self.path / "jobs" / job_id, ignore_errors=True)

    def cancel_queued(self, job_id: str) -> bool:
        """Mark a job that has not started ``cancelled``; False when it is no longer queued."""
        with self._tx() as db:
            return db.execute("UPDATE jobs SET status='cancelled', message='cancelled', error='cancelled by "
                              "request', updated=? WHERE id=? AND status='queued'",
                              (time.time(), job_id)).rowcount > 0

    def job(self, job_id: str) -> dict[str, Any]:
        self.job_dir(job_id)
        row = self._conn().execute("SELECT id, kind, status, params, progress, message, result, error, created, "
                                   "updated FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            raise RequestError(f"No job {job_id!r}.", 404)
        return _job_dict(row)

    def jobs(self, limit: int = 100, status: str | None = None) -> list[dict[str, Any]]:
        """The latest ``limit`` jobs, newest first (only those with ``status`` when given)."""
        where, args = ("WHERE status=?", (status,)) if status else ("", ())
        rows = self._conn().execute("SELECT id, kind, status, params, progress, message, result, error, created, "
                                    f"updated FROM jobs {where} ORDER BY created DESC LIMIT ?",
                                    (*args, int(limit))).fetchall()
        return [_job_dict(r) for r in rows]

    def update_job(self, job_id: str, **fields: Any) -> None:
        if "result" in fields and fields["result"] is not None:
            fields["result"] = json.dumps(fields["result"])
        cols = ", ".join(f"{k}=?" for k in fields)
        with self._tx() as db:
            db.execute(f"UPDATE jobs SET {cols}, updated=? WHERE id=?", (*fields.values(), time.time(), job_id))

    def next_job(self) -> dict[str, Any] | None:
        """Claim the oldest queued job (marks it running)."""
        with self._tx() as db:
            row = db.execute("SELECT id FROM jobs WHERE status='queued' ORDER BY created LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET status='running', updated=? WHERE id=?", (time.time(), row[0]))
        return self.job(row[0])

    def requeue_interrupted(self) -> int:
        """Jobs left running by a previous process go back in the queue (they restart from their inputs)."""
        with self._tx() as db:
            return db.execute("UPDATE jobs SET status='queued', progress=0, message='restarted after a server "
                              "restart' WHERE status='running'").rowcount


def _job_dict(row: tuple) -> dict[str, Any]:
    jid, kind, status, params, progress, message, result, error, created, updated = row
    return {"id": jid, "kind": kind, "status": status, "params": json.loads(params), "progress": progress,
            "message": message, "result": json.loads(result) if result else None, "error": error,
            "created": created, "updated": updated}


def public_manifest(value: Any) -> Any:
    """``value`` (a manifest) with every absolute path in it reduced to its last part.

    A model trained here records where its photos were (a job folder of the server); the stored
    and downloadable file names only the folder.
    """
    if isinstance(value, dict):
        return {k: public_manifest(v) for k, v in value.items()}
    if isinstance(value, list):
        return [public_manifest(v) for v in value]
    if isinstance(value, str) and (PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute()):
        return PureWindowsPath(value).name if "\\" in value else PurePosixPath(value).name
    return value


def _summary_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    keys = ("accuracy", "balanced_accuracy", "mae", "n_val", "log_loss")
    return {k: metrics[k] for k in keys if k in metrics and isinstance(metrics[k], (int, float))}
