"""Background jobs of the service: training a model from uploaded photos, analysing an uploaded video.

Jobs live in the service database with their inputs in ``jobs/<id>/``, so a job queued or
running when the server stops is run again (from its inputs) when it starts, up to
``job_attempts`` times in all (then it is marked failed, with its error).

Each job runs in a child process (:mod:`faceforge.service.job_child`), the leader of its own
process group: its progress comes back as JSON lines on its stdout, everything it writes to
stderr goes to ``jobs/<id>/stderr.log`` (never a pipe that fills up), and a job that runs past
``job_timeout_s`` or is cancelled (``POST /api/jobs/{id}/cancel``) is killed with every process
it started. ``job_workers`` threads run jobs side by side (one by default: a job uses both
cores by itself). Whatever a job ends with (done, failed, cancelled), its inputs are deleted.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from faceforge.errors import FaceforgeError
from faceforge.service.errors import scrub_json, scrub_paths
from faceforge.service.state import Home

log = logging.getLogger("faceforge.service")

#: Files of a job's folder kept once it ended (its outputs and the tail of its stderr).
OUTPUTS = ("frames.jsonl", "stderr.log")
#: How much of ``stderr.log`` is kept once a job ended.
STDERR_KEEP = 64 * 1024


class JobStopped(Exception):
    """A job's child was killed: ``status`` is ``cancelled``, ``failed`` (timeout) or ``None`` (shutdown)."""

    def __init__(self, status: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status


class JobRunner:
    """Worker threads that run queued jobs, oldest first, each in a child process.

    Args:
        home: the service's store.
        engine: the loaded models (unused by jobs themselves, kept for embedding code).
        timeout_s: longest a job may run before it is killed and marked failed.
        attempts: most times a job is started; one interrupted (server stopped or killed)
            that often is marked failed instead of being run again.
        workers: jobs run side by side.

    Attributes:
        entries: job kind -> ``"module:function"`` run in the child (see
            :mod:`faceforge.service.job_child`); ``finishers``: kind -> what the server does
            with a child's result (training stores the model).
    """

    def __init__(self, home: Home, engine: Any, *, timeout_s: float = 7200.0, attempts: int = 3,
                 workers: int = 1, batch_engine: str = "local", ray_address: str | None = None) -> None:
        self.home = home
        self.engine = engine
        self.batch = {"name": batch_engine, "address": ray_address}  # where a job's batch work runs
        self.timeout_s, self.attempts, self.workers = float(timeout_s), max(1, int(attempts)), max(1, int(workers))
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._procs: dict[str, subprocess.Popen] = {}
        self._active: set[str] = set()
        self._cancel: set[str] = set()
        self.entries: dict[str, str] = {"train": "faceforge.service.job_child:train_job",
                                        "video": "faceforge.service.job_child:video_job",
                                        "pipeline": "faceforge.service.pipeline_child:pipeline_job"}
        self.finishers: dict[str, Callable[[str, dict[str, Any], Path, Any], Any]] = {"train": self._store_model}

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self.recover()
        self._stop.clear()
        self._threads = [threading.Thread(target=self._loop, name=f"faceforge-jobs-{i}", daemon=True)
                         for i in range(self.workers)]
        for t in self._threads:
            t.start()

    def recover(self) -> None:
        """After a restart: sweep jobs whose upload never finished, requeue interrupted jobs, and
        fail those interrupted :attr:`attempts` times already."""
        for job in self.home.jobs(1_000_000, status="preparing"):
            self.home.discard_job_dir(job["id"])
        requeued = 0
        for job in self.home.jobs(1_000_000, status="running"):
            jid = job["id"]
            n = _attempts(self.home.job_dir(jid))
            if n >= self.attempts:
                tail = _last_line(self.home.job_dir(jid) / "stderr.log")
                self._end(jid, "failed", error=scrub_paths(
                    f"interrupted {n} times (the server stopped or was killed while it ran); not run again"
                    + (f". Its last output: {tail}" if tail else ""), self.home.path, [self.home.job_dir(jid)]))
            else:
                self.home.update_job(jid, status="queued", progress=0.0,
                                     message=f"restarted after a server restart (attempt {n + 1} of {self.attempts})")
                requeued += 1
        if requeued:
            log.info("requeued %d job(s) interrupted by the last shutdown", requeued)

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the workers; running jobs are killed and stay ``running``, so they are requeued at
        the next start (counting as an attempt)."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            procs = list(self._procs.values())
        for p in procs:
            _kill_group(p)
        for t in self._threads:
            t.join(timeout)

    def cancel(self, job_id: str) -> bool:
        """Ask for a running job to be killed and marked ``cancelled``; whether this runner runs it."""
        with self._lock:
            self._cancel.add(job_id)
            p = self._procs.get(job_id)
            active = job_id in self._active
        if p is not None:
            _kill_group(p)
        return active

    def is_active(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._active

    def _loop(self) -> None:
        while not self._stop.is_set():
            job = self.home.next_job()
            if job is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            self.run(job)

    # -- one job ---------------------------------------------------------------------------------
    def run(self, job: dict[str, Any]) -> None:
        """Run a claimed job (status ``running``) to its end."""
        jid = job["id"]
        with self._lock:
            self._active.add(jid)
        d = self.home.job_dir(jid)
        try:
            result = self._run_child(jid, job["kind"], job["params"], d)
            fin = self.finishers.get(job["kind"])
            if fin is not None:
                result = fin(jid, job["params"], d, result)
            self._end(jid, "done", result=scrub_json(result, self.home.path, [d]))
        except JobStopped as e:
            if e.status is not None:
                self._end(jid, e.status, error=str(e))
        except FaceforgeError as e:
            self._end(jid, "failed", error=scrub_paths(str(e), self.home.path, [d]))
        except Exception as e:  # a bug: keep the server up, record it
            log.error("job %s failed: %s", jid, traceback.format_exc())
            self._end(jid, "failed", error=scrub_paths(f"internal error: {type(e).__name__}: {e}",
                                                       self.home.path, [d]))
        finally:
            with self._lock:
                self._active.discard(jid)
                self._cancel.discard(jid)
                self._procs.pop(jid, None)

    def _end(self, jid: str, status: str, *, result: Any = None, error: str | None = None) -> None:
        """Delete a job's inputs (its outputs and the tail of its stderr stay), then record its end
        (so a client that sees the end finds the inputs gone)."""
        drop_inputs(self.home.job_dir(jid))
        if status == "done":
            self.home.update_job(jid, status=status, progress=1.0, message="done", result=result, error=None)
        else:
            self.home.update_job(jid, status=status, message=status, error=error)

    def _run_child(self, jid: str, kind: str, params: dict[str, Any], d: Path) -> Any:
        entry = self.entries.get(kind)
        if entry is None:
            raise FaceforgeError(f"unknown job kind {kind!r}; this server runs: {', '.join(self.entries)}")
        n = _attempts(d) + 1
        (d / "attempts").write_text(str(n))
        (d / "job.json").write_text(json.dumps({"entry": entry, "params": params, "home": str(self.home.path),
                                                    "engine": self.batch}))
        self.home.update_job(jid, progress=0.02, message="starting" if n == 1 else f"starting (attempt {n})")
        with open(d / "stderr.log", "ab") as err:
            proc = subprocess.Popen([sys.executable, "-m", "faceforge.service.job_child", str(d)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                    start_new_session=True)
        with self._lock:
            self._procs[jid] = proc
            cancelled = jid in self._cancel
        if cancelled or self._stop.is_set():
            _kill_group(proc)
        outcome: list[Any] = []
        reader = threading.Thread(target=self._read_progress, args=(jid, proc, outcome), daemon=True,
                                  name=f"faceforge-job-{jid[:8]}")
        reader.start()
        deadline = time.monotonic() + self.timeout_s
        stopped: JobStopped | None = None
        while proc.poll() is None:
            with self._lock:
                cancelled = jid in self._cancel
            if cancelled:
                stopped = JobStopped("cancelled", "cancelled by request")
            elif self._stop.is_set():
                stopped = JobStopped(None, "the server stopped")
            elif time.monotonic() > deadline:
                stopped = JobStopped("failed", f"stopped after {self.timeout_s:g} s, the longest a job may run "
                                               f"(the server's job_timeout_s setting, FACEFORGE_JOB_TIMEOUT_S)")
            if stopped is not None:
                _kill_group(proc)
                break
            try:
                proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
        proc.wait()
        _kill_group(proc)  # workers it left behind
        if stopped is None and self._stop.is_set():
            stopped = JobStopped(None, "the server stopped")
        reader.join(5.0)
        if proc.stdin is not None:
            proc.stdin.close()
        with self._lock:
            if jid in self._cancel:
                stopped = JobStopped("cancelled", "cancelled by request")
        if stopped is not None:
            raise stopped
        if not outcome:
            tail = _last_line(d / "stderr.log")
            log.error("job %s: child exited with %s; its stderr is in %s", jid, proc.returncode, d / "stderr.log")
            raise FaceforgeError(f"the job stopped unexpectedly (exit code {proc.returncode})"
                                 + (f": {tail}" if tail else ""))
        status, payload = outcome[-1]
        if status != "done":
            raise FaceforgeError(str(payload))
        return payload

    def _read_progress(self, jid: str, proc: subprocess.Popen, outcome: list[Any]) -> None:
        """Read the child's stdout: progress lines update the job, the last other line is its outcome."""
        if proc.stdout is None:  # never: stdout is a pipe (this narrows its type)
            return
        for raw in proc.stdout:
            try:
                kind, payload = json.loads(raw)
            except (ValueError, TypeError):
                continue
            if kind == "progress":
                try:
                    self.home.update_job(jid, progress=float(payload[0]), message=str(payload[1])[:200])
                except Exception:  # a progress line must never end the job
                    log.debug("job %s: bad progress line %r", jid, raw[:200])
            elif kind in ("done", "error"):
                outcome.append((kind, payload))

    def _store_model(self, jid: str, params: dict[str, Any], d: Path, result: Any) -> Any:
        info = self.home.add_model(params["name"], (d / "model.ffm").read_bytes(), f"training job {jid}",
                                   replace=bool(params.get("replace", False)))
        return {**result, "model": info}


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill a job's child and every process in its group (it leads one of its own)."""
    killpg = getattr(os, "killpg", None)
    try:
        if killpg is not None:
            killpg(proc.pid, signal.SIGKILL)
        elif proc.poll() is None:
            proc.kill()
    except (ProcessLookupError, PermissionError, OSError):
        pass


def _attempts(d: Path) -> int:
    """How many times a job was started (``d/attempts``)."""
    try:
        return int((d / "attempts").read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _last_line(path: Path, limit: int = 300) -> str:
    """The last non-empty line of a (log) file, at most ``limit`` characters."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
            lines = [x for x in f.read().decode("utf-8", "replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1].strip()[:limit] if lines else ""


def drop_inputs(d: Path) -> None:
    """Delete a finished job's inputs (uploaded photos and videos, its working files): only its
    outputs (:data:`OUTPUTS`) stay, ``stderr.log`` cut to its last :data:`STDERR_KEEP` bytes."""
    import shutil

    if not d.is_dir():
        return
    for p in d.iterdir():
        if p.name in OUTPUTS:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    log_path = d / "stderr.log"
    try:
        size = log_path.stat().st_size
        if size == 0:
            log_path.unlink()
        elif size > STDERR_KEEP:
            with open(log_path, "rb") as f:
                f.seek(size - STDERR_KEEP)
                tail = f.read()
            log_path.write_bytes(tail)
    except OSError:
        pass


def write_training_inputs(d: Path, items: list[tuple[str, bytes, str]]) -> None:
    """``items`` = ``(label, data, ext)``: photos under generated names and ``labels.csv``."""
    from faceforge._fs import atomic_write

    photos = d / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["file", "label"])
    for i, (label, data, ext) in enumerate(items):
        name = f"{i:05d}.{ext}"
        (photos / name).write_bytes(data)
        w.writerow([name, label])
    atomic_write(d / "labels.csv", buf.getvalue().encode())
