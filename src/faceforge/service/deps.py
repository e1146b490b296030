"""FastAPI dependencies of the routes: the settings, the API-key check and the shared state.

Every route takes what it needs as an ``Annotated`` alias (``settings: SettingsDep``,
``engine: EngineDep``, ...). The objects live on ``app.state`` (made once by
:func:`~faceforge.service.app.create_app`); tests may replace any of them with
``app.dependency_overrides[get_settings] = ...``.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from faceforge.service.engine import Engine
from faceforge.service.jobs import JobRunner
from faceforge.service.safety import RequestError
from faceforge.service.settings import Settings
from faceforge.service.state import Home

KEY_MESSAGE = ("This server needs an API key: send it as the X-API-Key header (or Authorization: Bearer KEY); "
               "?key= in the URL is accepted only on the WebSocket /api/live.")


def get_settings(conn: HTTPConnection) -> Settings:
    """The app's :class:`~faceforge.service.settings.Settings`."""
    return conn.app.state.settings


def get_home(conn: HTTPConnection) -> Home:
    """The service's store on disk (models, jobs, the galleries file)."""
    return conn.app.state.home


def get_engine(conn: HTTPConnection) -> Engine:
    """The loaded models shared by all requests, and the inference lock."""
    return conn.app.state.engine


def get_runner(conn: HTTPConnection) -> JobRunner:
    """The background job runner."""
    return conn.app.state.runner


SettingsDep = Annotated[Settings, Depends(get_settings)]
HomeDep = Annotated[Home, Depends(get_home)]
EngineDep = Annotated[Engine, Depends(get_engine)]
RunnerDep = Annotated[JobRunner, Depends(get_runner)]


def api_key_ok(expected: str | None, headers: Mapping[str, str], query: Mapping[str, str] | None = None) -> bool:
    """Whether a request carries the API key ``expected`` (always true when no key is set).

    The key is accepted as the ``X-API-Key`` header or as ``Authorization: Bearer KEY``. Pass
    ``query`` (the query parameters) only where a browser cannot set headers (the WebSocket
    ``/api/live``): there the ``key`` query parameter counts too. Everywhere else ``?key=`` is
    not looked at, so keys do not end up in access logs and browser histories.
    """
    if not expected:
        return True
    given = headers.get("x-api-key") or ""
    auth = headers.get("authorization") or ""
    if not given and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if not given and query is not None:
        given = query.get("key") or ""
    return secrets.compare_digest(given.encode(), expected.encode())


_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="APIKey",
                           description="The server's API key (when it has one: `FACEFORGE_API_KEY`).")
_bearer = HTTPBearer(auto_error=False, scheme_name="Bearer", description="The API key as a bearer token.")


def require_api_key(conn: HTTPConnection, settings: SettingsDep,
                    key: Annotated[str | None, Security(_key_header)] = None,
                    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None) -> None:
    """Refuse (401) a request without the server's API key.

    ``key`` and ``bearer`` declare the two header forms in the OpenAPI document; the decision is
    :func:`api_key_ok` on the request itself, so every accepted form is checked the same way.

    Raises:
        RequestError: 401, the key is missing or wrong.
    """
    if not api_key_ok(settings.api_key, conn.headers):
        raise RequestError(KEY_MESSAGE, 401)


ApiKey = Depends(require_api_key)

