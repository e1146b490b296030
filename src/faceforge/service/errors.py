"""The service's answer to each error family: one exception handler per family, ``{"detail": message}``.

=======================================================  ======
error                                                    status
=======================================================  ======
:class:`~faceforge.service.safety.RequestError`          its ``status`` (400, 401, 404, 409, 413, 415, 422)
:class:`~faceforge.gallery.GalleryError` (no such one)   404
:class:`~faceforge.errors.ModelNotFoundError`            404
:class:`~faceforge.errors.ImageError`                    422
:class:`~faceforge.errors.ParameterError`                422
any other :class:`~faceforge.errors.FaceforgeError`      400 (``SourceError``, ``BundleError``, ``DatasetError``, ...)
=======================================================  ======

Starlette picks the handler of the nearest class in the error's MRO, so a subclass answers like
its family unless it gets a handler of its own.

No answer names a place on the server: every message goes through :func:`scrub_paths`, which
turns paths inside the service's home into names relative to it (``jobs/<id>/photos/00001.png``)
and other server paths (the temporary folder, the user's home, the installation) into their
file names. Request validation errors (422) get the same treatment. An error no handler takes
is answered by :class:`~faceforge.service.middleware.Guard` with a generic 500.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
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

_PATH_END = r"""[^\s'"`,;:()\[\]{}<>]*"""


def _roots(home: str | os.PathLike | None) -> list[tuple[str, bool]]:
    """``(root, relative)``: server folders whose paths must not reach a client, longest first;
    ``relative``: paths inside it become relative names (else only the file name is kept)."""
    import faceforge

    found: dict[str, bool] = {}

    def add(p: str | os.PathLike | None, relative: bool) -> None:
        if not p:
            return
        for v in {str(p), os.path.realpath(p)}:
            v = v.rstrip("/\\")
            if len(v) > 1:
                found.setdefault(v, relative)

    add(home, True)
    add(tempfile.gettempdir(), False)
    add(Path.home(), False)
    add(sys.prefix, False)
    add(Path(faceforge.__file__).resolve().parent.parent, False)
    return sorted(found.items(), key=lambda kv: -len(kv[0]))


def scrub_paths(text: str, home: str | os.PathLike | None = None, extra: Iterable[str | os.PathLike] = ()) -> str:
    """``text`` without absolute server paths.

    Args:
        text: a message for a client.
        home: the service's home folder: paths inside it become names relative to it.
        extra: more folders whose paths become names relative to them (e.g. a job's folder),
            checked before ``home``.

    Returns:
        The message, with paths under ``extra`` and ``home`` relative to them and other server
        paths (temporary folder, user home, installation) cut to their file names.
    """
    roots = [(r, True) for e in extra for r in {str(e), os.path.realpath(e)}] + _roots(home)
    for root, relative in sorted(roots, key=lambda kv: -len(kv[0])):
        if root not in text:
            continue

        def repl(m: re.Match, relative: bool = relative) -> str:
            rest = m.group(1).lstrip("/\\")
            if relative:
                return rest or "."
            return re.split(r"[/\\]", rest)[-1] if rest else "<server folder>"

        text = re.sub(re.escape(root) + r"((?:[/\\]" + _PATH_END + r")?)(?![\w.-])", repl, text)
    return text


def scrub_json(value: Any, home: str | os.PathLike | None = None, extra: Iterable[str | os.PathLike] = ()) -> Any:
    """:func:`scrub_paths` on every string (and key) inside a JSON-like value."""
    extra = list(extra)
    if isinstance(value, str):
        return scrub_paths(value, home, extra)
    if isinstance(value, dict):
        return {scrub_json(k, home, extra): scrub_json(v, home, extra) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_json(v, home, extra) for v in value]
    return value


def _home_of(request: Request) -> Any:
    settings = getattr(request.app.state, "settings", None)
    return getattr(settings, "home", None)


def error_response(status: int, message: str, home: str | os.PathLike | None = None) -> JSONResponse:
    """``{"detail": message}`` with ``status``, without server paths (:func:`scrub_paths`)."""
    return JSONResponse({"detail": scrub_paths(message, home)}, status_code=status)


def _family(status: int) -> Handler:
    async def handler(request: Request, e: Exception) -> JSONResponse:
        return error_response(status, str(e), _home_of(request))

    handler.__name__ = f"answer_{status}"
    return handler


async def _request_error(request: Request, e: Exception) -> JSONResponse:
    return error_response(getattr(e, "status", 400), str(e), _home_of(request))


async def _validation_error(request: Request, e: Exception) -> JSONResponse:
    from fastapi.encoders import jsonable_encoder

    errors: list[Any] = list(getattr(e, "errors", list)())
    return JSONResponse({"detail": scrub_json(jsonable_encoder(errors), _home_of(request))}, status_code=422)


def error_statuses() -> dict[type[Exception], int]:
    """The HTTP status of each error family (other than :class:`RequestError`, which carries its own)."""
    from faceforge.gallery import GalleryError

    return {FaceforgeError: 400, SourceError: 400, BundleError: 400, DatasetError: 400,
            ImageError: 422, ParameterError: 422, ModelNotFoundError: 404, GalleryError: 404}


def add_error_handlers(app: FastAPI) -> None:
    """Register one handler per error family on ``app``."""
    from fastapi.exceptions import RequestValidationError

    handlers: dict[Any, Handler] = {RequestError: _request_error, RequestValidationError: _validation_error}
    for cls, status in error_statuses().items():
        handlers[cls] = _family(status)
    for cls, handler in handlers.items():
        app.add_exception_handler(cls, handler)
