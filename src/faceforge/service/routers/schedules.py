"""Schedules: pipelines (ingest, retrain, train) the service runs on a crontab; see
:mod:`faceforge.service.schedules` for the rules (overlap, catch-up, allowed paths)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.requests import HTTPConnection

from faceforge.service.deps import ApiKey
from faceforge.service.safety import RequestError
from faceforge.service.schedules import Scheduler
from faceforge.service.schemas import (
    Deleted,
    Error,
    Job,
    Schedule,
    ScheduleIn,
    SchedulePatch,
    ScheduleRuns,
    Schedules,
)

router = APIRouter(prefix="/api/schedules", tags=["schedules"], dependencies=[ApiKey])

_INVALID: dict[int | str, dict[str, Any]] = {
    422: {"model": Error, "description": "an invalid cron, time zone or step, or a path outside the server's "
                                         "collect_roots (the message names it)"}}


def get_scheduler(conn: HTTPConnection) -> Scheduler:
    """The service's :class:`~faceforge.service.schedules.Scheduler`."""
    return conn.app.state.scheduler


SchedulerDep = Annotated[Scheduler, Depends(get_scheduler)]


def _sid(schedule_id: str) -> str:
    if not (len(schedule_id) == 32 and all(c in "0123456789abcdef" for c in schedule_id)):
        raise RequestError(f"No schedule {schedule_id!r}; GET /api/schedules lists them.", 404)
    return schedule_id


@router.get("", response_model=Schedules)
def list_schedules(scheduler: SchedulerDep) -> dict[str, Any]:
    """Every schedule, oldest first, with its next firing and its latest run."""
    return {"schedules": scheduler.list()}


@router.post("", status_code=201, response_model=Schedule, responses=_INVALID)
def create_schedule(body: ScheduleIn, scheduler: SchedulerDep) -> dict[str, Any]:
    """Store a schedule and arm its timer. Every path of its steps must lie inside the server's
    ``collect_roots`` (``FACEFORGE_COLLECT_ROOTS``; default ``HOME/collect``)."""
    return scheduler.create(body.model_dump(exclude_unset=True))


@router.get("/{schedule_id}", response_model=Schedule)
def get_schedule(schedule_id: str, scheduler: SchedulerDep) -> dict[str, Any]:
    """One schedule."""
    return scheduler.get(_sid(schedule_id))


@router.put("/{schedule_id}", response_model=Schedule, responses=_INVALID)
def replace_schedule(schedule_id: str, body: ScheduleIn, scheduler: SchedulerDep) -> dict[str, Any]:
    """Replace a schedule (every field; those left out take their defaults)."""
    return scheduler.update(_sid(schedule_id), body.model_dump(exclude_unset=True), replace=True)


@router.patch("/{schedule_id}", response_model=Schedule, responses=_INVALID)
def change_schedule(schedule_id: str, body: SchedulePatch, scheduler: SchedulerDep) -> dict[str, Any]:
    """Change some fields of a schedule (``null`` or left out: unchanged)."""
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    return scheduler.update(_sid(schedule_id), changes)


@router.delete("/{schedule_id}", response_model=Deleted)
def delete_schedule(schedule_id: str, scheduler: SchedulerDep) -> dict[str, Any]:
    """Delete a schedule and its timer; its past runs stay in ``/api/jobs``."""
    scheduler.delete(_sid(schedule_id))
    return {"deleted": schedule_id}


@router.post("/{schedule_id}/enable", response_model=Schedule)
def enable_schedule(schedule_id: str, scheduler: SchedulerDep) -> dict[str, Any]:
    """Arm a schedule's timer (firings missed while it was disabled are not caught up)."""
    return scheduler.set_enabled(_sid(schedule_id), True)


@router.post("/{schedule_id}/disable", response_model=Schedule)
def disable_schedule(schedule_id: str, scheduler: SchedulerDep) -> dict[str, Any]:
    """Stop a schedule's timer (a run going on goes on; cancel it in ``/api/jobs``)."""
    return scheduler.set_enabled(_sid(schedule_id), False)


@router.post("/{schedule_id}/run", status_code=202, response_model=Job,
             responses={409: {"model": Error, "description": "a run of this schedule is still queued or running"},
                        **_INVALID})
def run_schedule(schedule_id: str, scheduler: SchedulerDep) -> dict[str, Any]:
    """Queue a run now (enabled or not); poll ``GET /api/jobs/{id}``."""
    return scheduler.run_now(_sid(schedule_id))


@router.get("/{schedule_id}/runs", response_model=ScheduleRuns)
def schedule_runs(schedule_id: str, scheduler: SchedulerDep,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> dict[str, Any]:
    """A schedule's runs (its pipeline jobs, newest first, each step's report in ``result.steps``)
    and its latest firings (``run`` or ``skipped``)."""
    return scheduler.runs(_sid(schedule_id), limit)
