"""The service's answer to each error family: one exception handler per family, ``{"detail": message}``.

=======================================================  ======
error                                                    status
=======================================================  ======
:class:`~faceforge.service.safety.RequestError`          its ``status`` (400, 401, 404, 409, 413, 415, 422, 502)
:class:`~faceforge.gallery.GalleryError` (no such one)   404
:class:`~faceforge.errors.ModelNotFoundError`            404
:class:`~faceforge.errors.ImageError`                    422
:class:`~faceforge.errors.ParameterError`                422
any other :class:`~faceforge.errors.FaceforgeError`      400 (``SourceError``, ``BundleError``, ``DatasetError``, ...)
=======================================================  ======

Starlette picks the handler of the nearest class in the error's MRO, so a subclass answers like
its family unless it gets a handler of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from faceforge.errors import (
    BundleError,
    DatasetError,
    FaceforgeError,
    ImageError,
    ModelNotFoundError,
    ParameterError,
    SourceError,
)
from faceforge.service.safety import RequestError

Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]


def error_response(status: int, message: str) -> JSONResponse:
    """``{"detail": message}`` with ``status``."""
    return JSONResponse({"detail": message}, status_code=status)


def _family(status: int) -> Handler:
    async def handler(request: Request, e: Exception) -> JSONResponse:
        return error_response(status, str(e))

    handler.__name__ = f"answer_{status}"
    return handler


async def _request_error(request: Request, e: Exception) -> JSONResponse:
    return error_response(getattr(e, "status", 400), str(e))


def error_statuses() -> dict[type[Exception], int]:
    """The HTTP status of each error family (other than :class:`RequestError`, which carries its own)."""
    from faceforge.gallery import GalleryError

    return {FaceforgeError: 400, SourceError: 400, BundleError: 400, DatasetError: 400,
            ImageError: 422, ParameterError: 422, ModelNotFoundError: 404, GalleryError: 404}


def add_error_handlers(app: FastAPI) -> None:
    """Register one handler per error family on ``app``."""
    handlers: dict[Any, Handler] = {RequestError: _request_error}
    for cls, status in error_statuses().items():
        handlers[cls] = _family(status)
    for cls, handler in handlers.items():
        app.add_exception_handler(cls, handler)
