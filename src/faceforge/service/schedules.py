"""Scheduled pipelines: "every day at 02:00: ingest the inbox, retrain the model, promote it if better".

A schedule is a row of the service store (``service.db``, table ``schedules``: the source of
truth, so schedules survive restarts): a name, a 5-field crontab, a time zone (default: the
server's) and steps run in order, each ``{"step": "ingest" | "retrain" | "train", ...arguments}``
(the keyword arguments of :func:`faceforge.collect.ingest`, :func:`faceforge.collect.retrain`
and :func:`faceforge.train.train`).

The timer is APScheduler (a ``BackgroundScheduler`` with a ``MemoryJobStore``; ``coalesce``,
``max_instances=1``): at start every enabled schedule is added to it, and creating, changing,
enabling, disabling or deleting a schedule changes the row and the timer together. A firing
queues a job of kind ``"pipeline"`` on the service's :class:`~faceforge.service.jobs.JobRunner`
(:func:`faceforge.service.pipeline_child.pipeline_job` in a child process: progress, cancel,
timeout and attempts as for every job), with the schedule's id in the job's ``params``: the
history of a schedule's runs is its job records.

Rules:

- **Overlap**: a firing while a run of the same schedule is still queued or running is skipped,
  and recorded (an event ``skipped`` in ``GET /api/schedules/{id}/runs``).
- **Catch-up**: when the server starts, a schedule with ``catch_up`` (the default) whose next
  firing after its latest firing (or its latest change) passed while the server was down runs
  once, at start, however many firings were missed.
- **Paths**: every path a step names must resolve (``Path.resolve()``: ``..`` and symbolic links
  followed) inside one of the server's ``collect_roots``
  (:attr:`~faceforge.service.settings.Settings.collect_dirs`; a relative path is taken inside
  the first of them). This is checked when a schedule is stored, at "run now", and in the job's
  child before each step.
- **Weekdays** follow crontab (0 or 7 is Sunday; names work too): they are translated for
  APScheduler 3, which counts 0 as Monday. Unlike classic cron, a schedule restricting both the
  day of the month and the weekday fires only on days matching both.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from faceforge._sqlite import Transaction, connect
from faceforge.errors import ScheduleError
from faceforge.service.pipeline_child import check_steps, step_arguments
from faceforge.service.safety import RequestError

log = logging.getLogger("faceforge.service")

#: Crontab nicknames.
NICKNAMES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
             "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
#: Job states of a run still going (a firing meanwhile is skipped).
ACTIVE = ("preparing", "queued", "running")
#: Events kept per schedule.
EVENTS_KEPT = 200
_COLUMNS = "id, name, cron, timezone, steps, enabled, catch_up, created, updated, last_run, last_fired"


# -- checks ------------------------------------------------------------------------------------
def local_timezone() -> str:
    """The server's time zone as an IANA name (``UTC`` when it cannot be told)."""
    try:
        import tzlocal

        return tzlocal.get_localzone_name() or "UTC"
    except Exception:  # no zone configured: UTC
        return "UTC"


def check_timezone(name: str | None) -> str:
    """``name`` (default: the server's zone) if it is a known IANA time zone, else :class:`ScheduleError`."""
    from zoneinfo import ZoneInfo

    name = local_timezone() if not name else str(name).strip()
    try:
        ZoneInfo(name)
    except Exception:  # ZoneInfoNotFoundError, ValueError (a path-like key), ...
        raise ScheduleError(f"Unknown time zone {name!r}: give an IANA name such as 'Europe/Paris' or 'UTC' "
                            f"(or leave it out for the server's, {local_timezone()}).") from None
    return name


def _day(token: str) -> int:
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token)
    if token[:3] in _DAYS and len(token) == 3:
        return _DAYS.index(token)
    raise ValueError(f"weekday {token!r} is not 0-7 (0 or 7 = Sunday) or a name (sun, mon, ...)")


def _weekdays(field: str) -> str:
    """A crontab weekday field (0 or 7 = Sunday) as APScheduler 3 weekday names."""
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.lower().split(","):
        span, _, step = part.partition("/")
        if step and not (step.isdigit() and int(step) >= 1):
            raise ValueError(f"weekday step {step!r} is not a whole number >= 1")
        if span == "*":
            lo, hi = 0, 6
        elif "-" in span:
            a, b = span.split("-", 1)
            lo, hi = _day(a), _day(b)
            if lo > hi:
                raise ValueError(f"weekday range {span!r} runs backwards")
        else:
            lo = _day(span)
            hi = 7 if step else lo
        days.update(d % 7 for d in range(lo, hi + 1, int(step or 1)))
    return "*" if len(days) == 7 else ",".join(_DAYS[d] for d in sorted(days))


def cron_trigger(cron: str, timezone: str) -> Any:
    """An APScheduler ``CronTrigger`` for a 5-field crontab (or a nickname such as ``@daily``).

    Raises:
        ScheduleError: not 5 fields, or a field out of range; the message shows the format.
    """
    from apscheduler.triggers.cron import CronTrigger

    text = " ".join(str(cron).split())
    fields = NICKNAMES.get(text.lower(), text).split(" ")
    try:
        if len(fields) != 5:
            raise ValueError(f"it has {len(fields)} field(s)")
        return CronTrigger.from_crontab(" ".join(fields[:4] + [_weekdays(fields[4])]), timezone=timezone)
    except (ValueError, TypeError, KeyError, LookupError) as e:
        raise ScheduleError(f"Invalid cron {cron!r} ({e}): give 5 fields, minute hour day-of-month month weekday, "
                            f"e.g. '0 2 * * *' (every day at 02:00), '30 6 * * 1-5' (weekdays at 06:30), "
                            f"'*/15 * * * *' (every 15 minutes); weekday 0 or 7 is Sunday.") from None


def check_schedule(spec: dict[str, Any], roots: Sequence[Path]) -> dict[str, Any]:
    """A schedule's fields checked and normalised: name, cron, timezone, steps, enabled, catch_up.

    Raises:
        ParameterError: a bad name; :class:`ScheduleError`: a bad cron, time zone or step.
    """
    from faceforge.gallery import check_name

    out: dict[str, Any] = {"name": check_name(spec.get("name"), "schedule name"),  # type: ignore[arg-type]
                           "timezone": check_timezone(spec.get("timezone"))}
    out["cron"] = " ".join(str(spec.get("cron") or "").split())
    cron_trigger(out["cron"], out["timezone"])
    out["steps"] = check_steps(spec.get("steps"), roots)
    out["enabled"] = bool(spec.get("enabled", True))
    out["catch_up"] = bool(spec.get("catch_up", True))
    return out


# -- the table ---------------------------------------------------------------------------------
class ScheduleStore:
    """The ``schedules`` and ``schedule_events`` tables of ``service.db`` (made by the service
    store's migrations), and the schedules' pipeline jobs; safe to use from several threads."""

    def __init__(self, home: Any) -> None:
        self.home = home
        self._local = threading.local()

    def _conn(self) -> Any:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = connect(self.home.db_path)
        return db

    def get(self, sid: str) -> dict[str, Any]:
        row = self._conn().execute(f"SELECT {_COLUMNS} FROM schedules WHERE id=?", (str(sid),)).fetchone()
        if row is None:
            raise RequestError(f"No schedule {sid!r}; GET /api/schedules lists them.", 404)
        return _row(row)

    def all(self) -> list[dict[str, Any]]:
        return [_row(r) for r in self._conn().execute(f"SELECT {_COLUMNS} FROM schedules ORDER BY created")]

    def create(self, fields: dict[str, Any]) -> dict[str, Any]:
        sid, now = uuid.uuid4().hex, time.time()
        with Transaction(self._conn()) as db:
            db.execute(f"INSERT INTO schedules ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,NULL,NULL)",
                       (sid, fields["name"], fields["cron"], fields["timezone"], json.dumps(fields["steps"]),
                        int(fields["enabled"]), int(fields["catch_up"]), now, now))
        return self.get(sid)

    def update(self, sid: str, touch: bool = True, **fields: Any) -> dict[str, Any]:
        """Set columns; ``touch``: also ``updated`` (the reference of catch-up)."""
        if "steps" in fields:
            fields["steps"] = json.dumps(fields["steps"])
        for k in ("enabled", "catch_up"):
            if k in fields:
                fields[k] = int(bool(fields[k]))
        if touch:
            fields["updated"] = time.time()
        if fields:
            with Transaction(self._conn()) as db:
                db.execute(f"UPDATE schedules SET {', '.join(f'{k}=?' for k in fields)} WHERE id=?",
                           (*fields.values(), sid))
        return self.get(sid)

    def delete(self, sid: str) -> None:
        self.get(sid)
        with Transaction(self._conn()) as db:
            db.execute("DELETE FROM schedules WHERE id=?", (sid,))
            db.execute("DELETE FROM schedule_events WHERE schedule=?", (sid,))

    def add_event(self, sid: str, event: str, job: str | None, message: str) -> None:
        with Transaction(self._conn()) as db:
            db.execute("INSERT INTO schedule_events (schedule, at, event, job, message) VALUES (?,?,?,?,?)",
                       (sid, time.time(), event, job, message))
            db.execute("DELETE FROM schedule_events WHERE schedule=? AND id NOT IN (SELECT id FROM schedule_events "
                       "WHERE schedule=? ORDER BY id DESC LIMIT ?)", (sid, sid, EVENTS_KEPT))

    def events(self, sid: str, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._conn().execute("SELECT at, event, job, message FROM schedule_events WHERE schedule=? "
                                    "ORDER BY id DESC LIMIT ?", (sid, int(limit))).fetchall()
        return [{"at": a, "event": e, "job": j, "message": m} for a, e, j, m in rows]

    def run_ids(self, sid: str, limit: int = 50, active: bool = False) -> list[str]:
        """Ids of the schedule's pipeline jobs, newest first (``active``: only those still going)."""
        where = f" AND status IN ({','.join('?' * len(ACTIVE))})" if active else ""
        rows = self._conn().execute(
            "SELECT id FROM jobs WHERE kind='pipeline' AND json_extract(params, '$.schedule')=?" + where +
            " ORDER BY created DESC LIMIT ?", (sid, *(ACTIVE if active else ()), int(limit))).fetchall()
        return [r[0] for r in rows]


def _row(row: tuple) -> dict[str, Any]:
    sid, name, cron, tz, steps, enabled, catch_up, created, updated, last_run, last_fired = row
    return {"id": sid, "name": name, "cron": cron, "timezone": tz, "steps": json.loads(steps),
            "enabled": bool(enabled), "catch_up": bool(catch_up), "created": created, "updated": updated,
            "last_run": last_run, "last_fired": last_fired}


# -- the timer ---------------------------------------------------------------------------------
class Scheduler:
    """The schedules of one service: their table, APScheduler's timer, and the jobs they queue.

    Args:
        home: the service's :class:`~faceforge.service.state.Home`.
        runner: its :class:`~faceforge.service.jobs.JobRunner` (woken when a run is queued).
        roots: the folders steps may name (``Settings.collect_dirs``), resolved.

    Attributes:
        timer: the APScheduler ``BackgroundScheduler`` (``None`` until :meth:`start`); its job
            ids are the schedule ids.
    """

    def __init__(self, home: Any, runner: Any, roots: Sequence[Path]) -> None:
        self.home, self.runner = home, runner
        self.roots = [Path(r) for r in roots]
        self.store = ScheduleStore(home)
        self.timer: Any = None
        self._lock = threading.RLock()

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the timer with every enabled schedule, then run the missed ones (catch-up)."""
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        default = (self.home.path / "collect").resolve()
        if default in self.roots:
            default.mkdir(parents=True, exist_ok=True)
        self.timer = BackgroundScheduler(jobstores={"default": MemoryJobStore()},
                                         executors={"default": ThreadPoolExecutor(2)},
                                         job_defaults={"coalesce": True, "max_instances": 1,
                                                       "misfire_grace_time": None},
                                         timezone=local_timezone())
        self.timer.start()
        now = time.time()
        for s in self.store.all():
            if not s["enabled"]:
                continue
            try:
                self._arm(s)
                self._catch_up(s, now)
            except Exception:  # one bad row must not keep the others from running
                log.exception("schedule %s (%s) could not be started", s["id"], s["name"])

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.shutdown(wait=False)
            self.timer = None

    def _arm(self, s: dict[str, Any]) -> None:
        if self.timer is None:
            return
        self.timer.add_job(self._on_timer, cron_trigger(s["cron"], s["timezone"]), args=[s["id"]], id=s["id"],
                           name=s["name"], replace_existing=True)

    def _sync(self, s: dict[str, Any]) -> None:
        from apscheduler.jobstores.base import JobLookupError

        if self.timer is None:
            return
        if s["enabled"]:
            self._arm(s)
        else:
            try:
                self.timer.remove_job(s["id"])
            except JobLookupError:
                pass

    def _catch_up(self, s: dict[str, Any], now: float) -> None:
        """Run ``s`` once if a firing after its latest one (or its latest change) was missed."""
        if not s["catch_up"]:
            return
        trigger = cron_trigger(s["cron"], s["timezone"])
        ref = max(s["updated"], s["last_fired"] or 0.0, s["last_run"] or 0.0)
        ref_dt = datetime.fromtimestamp(ref, trigger.timezone)
        now_dt = datetime.fromtimestamp(now, trigger.timezone)
        missed = trigger.get_next_fire_time(ref_dt, now_dt)
        if missed is not None and missed <= now_dt:
            self.fire(s["id"], "catch_up", f"catch-up: the firing of {missed:%Y-%m-%d %H:%M %Z} was missed "
                                           f"while the server was down")

    def _on_timer(self, sid: str) -> None:
        try:
            self.fire(sid, "cron", "timer")
        except RequestError:  # deleted meanwhile (by another process on the same home)
            self._sync({"id": sid, "enabled": False})
        except Exception:  # keep the timer thread alive; the log says why
            log.exception("schedule %s: the firing failed", sid)

    # -- firing --------------------------------------------------------------------------------
    def fire(self, sid: str, trigger: str, message: str) -> str | None:
        """Queue a run of schedule ``sid`` unless one is still going (then the firing is recorded
        as skipped); the job id, or ``None`` when skipped.

        Args:
            sid: the schedule.
            trigger: ``"cron"``, ``"catch_up"`` or ``"run_now"`` (stored in the job's params).
            message: what fired it, for the schedule's events.
        """
        with self._lock:
            s = self.store.get(sid)
            now = time.time()
            if trigger != "run_now":
                self.store.update(sid, touch=False, last_fired=now)
            active = self.store.run_ids(sid, 1, active=True)
            if active:
                status = self.home.job(active[0])["status"]
                self.store.add_event(sid, "skipped", active[0], f"{message}: skipped, its run {active[0]} was "
                                                                 f"still {status}")
                log.info("schedule %s: firing skipped, run %s still %s", s["name"], active[0], status)
                return None
            params = {"schedule": sid, "schedule_name": s["name"], "trigger": trigger, "steps": s["steps"],
                      "collect_roots": self._public_roots()}
            job_id, _ = self.home.new_job("pipeline", params)
            self.home.queue_job(job_id)
            self.store.update(sid, touch=False, last_run=now)
            self.store.add_event(sid, "run", job_id, message)
        self.runner.wake()
        log.info("schedule %s: queued run %s (%s)", s["name"], job_id, message)
        return job_id

    def _public_roots(self) -> list[str]:
        """The roots for a job's params (which clients see): relative to the home when inside it."""
        return [str(r.relative_to(self.home.path)) if r.is_relative_to(self.home.path) else str(r)
                for r in self.roots]

    def run_now(self, sid: str) -> dict[str, Any]:
        """Queue a run at once (its paths checked first): the job.

        Raises:
            ScheduleError: a path of a step now lies outside the roots (422).
            RequestError: 404 no such schedule; 409 a run is still going.
        """
        s = self.store.get(sid)
        for i, step in enumerate(s["steps"]):
            step_arguments(step, self.roots, i)
        job_id = self.fire(sid, "run_now", "run now")
        if job_id is None:
            active = (self.store.run_ids(sid, 1, active=True) or ["?"])[0]
            raise RequestError(f"Schedule {s['name']!r} has a run still queued or running (job {active}); wait for "
                               f"it to end or cancel it (POST /api/jobs/{active}/cancel).", 409)
        return self.home.job(job_id)

    # -- the schedules -------------------------------------------------------------------------
    def describe(self, s: dict[str, Any]) -> dict[str, Any]:
        """``s`` as the API shows it: with its next firing and its latest run."""
        out = {k: v for k, v in s.items() if k != "last_fired"}
        out["next_run"] = self.next_run(s)
        last = self.store.run_ids(s["id"], 1)
        out["last_job"] = last[0] if last else None
        out["last_status"] = self.home.job(last[0])["status"] if last else None
        return out

    def next_run(self, s: dict[str, Any]) -> float | None:
        """When ``s`` fires next (Unix time), from the timer (or its cron when no timer runs)."""
        if not s["enabled"]:
            return None
        if self.timer is not None:
            job = self.timer.get_job(s["id"])
            when = getattr(job, "next_run_time", None)
            return when.timestamp() if when is not None else None
        try:
            trigger = cron_trigger(s["cron"], s["timezone"])
        except ScheduleError:  # a row this faceforge cannot read (e.g. a time zone gone from tzdata)
            return None
        when = trigger.get_next_fire_time(None, datetime.now(trigger.timezone) + timedelta(microseconds=1))
        return when.timestamp() if when is not None else None

    def list(self) -> list[dict[str, Any]]:
        return [self.describe(s) for s in self.store.all()]

    def get(self, sid: str) -> dict[str, Any]:
        return self.describe(self.store.get(sid))

    def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Store a new schedule (checked in full) and arm its timer."""
        with self._lock:
            s = self.store.create(check_schedule(spec, self.roots))
            self._sync(s)
        return self.describe(s)

    def update(self, sid: str, changes: dict[str, Any], replace: bool = False) -> dict[str, Any]:
        """Change a schedule (``replace``: every field from ``changes``), checked in full, and its timer."""
        with self._lock:
            old = self.store.get(sid)
            merged = dict(changes) if replace else {**old, **changes}
            s = self.store.update(sid, **check_schedule(merged, self.roots))
            self._sync(s)
        return self.describe(s)

    def set_enabled(self, sid: str, enabled: bool) -> dict[str, Any]:
        with self._lock:
            s = self.store.update(sid, enabled=enabled)
            self._sync(s)
        return self.describe(s)

    def delete(self, sid: str) -> None:
        """Delete a schedule and its timer (its past runs stay in the job records)."""
        with self._lock:
            self.store.delete(sid)
            self._sync({"id": sid, "enabled": False})

    def runs(self, sid: str, limit: int = 50) -> dict[str, Any]:
        """The schedule's pipeline jobs (newest first, with their reports) and its latest firings."""
        self.store.get(sid)
        return {"schedule": sid, "runs": [self.home.job(j) for j in self.store.run_ids(sid, limit)],
                "events": self.store.events(sid, limit)}
