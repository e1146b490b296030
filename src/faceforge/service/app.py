"""The HTTP API and web page: a thin layer over faceforge's Python API.

Create the app with :func:`create_app` (tests, other ASGI servers) or run it with
``faceforge serve``. Interactive API docs are at ``/docs``; the web page is at ``/``.

The routes live in :mod:`faceforge.service.routers` (one router per area); what they share
(settings, the API-key check, the store and the loaded models) comes from the dependencies in
:mod:`faceforge.service.deps`; errors become answers in :mod:`faceforge.service.errors`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from faceforge.service.schemas import Error
from faceforge.service.settings import Settings, make_settings

log = logging.getLogger("faceforge.service")

#: Error answers every API route may give (shown in ``/docs``).
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Error, "description": "refused: the message says why and what to send instead"},
    401: {"model": Error, "description": "the server needs an API key (X-API-Key or Authorization: Bearer)"},
    404: {"model": Error, "description": "no such model, gallery, person or job"},
}


def create_app(settings: Settings | None = None, **overrides: Any) -> Any:
    """The FastAPI application.

    Args:
        settings: the service's settings (``None``: read ``FACEFORGE_*`` environment variables).
        **overrides: :class:`~faceforge.service.settings.Settings` fields to set, e.g. ``home=``,
            ``api_key=``, ``max_image_mb=``, ``run_jobs=``.

    Returns:
        A :class:`fastapi.FastAPI` app; its ``state`` holds ``settings``, ``home``, ``engine``,
        ``runner`` and ``scheduler`` (:class:`~faceforge.service.schedules.Scheduler`).

    Raises:
        ParameterError: an unknown setting or a value out of range.
    """
    from fastapi import FastAPI

    import faceforge
    from faceforge.service.engine import Engine
    from faceforge.service.errors import add_error_handlers
    from faceforge.service.jobs import JobRunner
    from faceforge.service.middleware import Guard
    from faceforge.service.routers import faces, galleries, health, jobs, live, models, schedules, web
    from faceforge.service.schedules import Scheduler
    from faceforge.service.state import Home

    settings = make_settings(settings, **overrides)
    home = Home(settings.home)
    engine = Engine(home)
    runner = JobRunner(home, engine, timeout_s=settings.job_timeout_s, attempts=settings.job_attempts,
                       workers=settings.job_workers, batch_engine=settings.engine, ray_address=settings.ray_address)
    scheduler = Scheduler(home, runner, settings.collect_dirs)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.run_jobs:
            runner.start()
        if settings.run_schedules:
            scheduler.start()
        yield
        scheduler.stop()
        runner.stop()

    app = FastAPI(title="faceforge", version=faceforge.__version__, lifespan=lifespan,
                  description="Detect, analyse, classify and identify faces; train models; manage galleries. "
                              "Send images as multipart uploads (`file`) or as an `url` to fetch.")
    app.state.settings, app.state.home, app.state.engine, app.state.runner = settings, home, engine, runner
    app.state.scheduler = scheduler
    add_error_handlers(app)
    app.include_router(health.router)
    for area in (faces, models, jobs, galleries, schedules):
        app.include_router(area.router, responses=ERRORS)
    app.include_router(live.router)
    app.include_router(web.router)
    web.mount_static(app)
    app.add_middleware(Guard, limit=settings.max_request_bytes, api_key=settings.api_key)
    return app


__all__ = ["Settings", "create_app"]
