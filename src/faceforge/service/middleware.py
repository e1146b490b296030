"""ASGI guards around every request: the API key and the body size limit (checked before a
request body is read), and the last-resort answer to an unexpected error."""

from __future__ import annotations

import json
import logging
from typing import Any

from faceforge.service.deps import KEY_MESSAGE, api_key_ok

log = logging.getLogger("faceforge.service")

#: What a client is told about an unexpected error (the details go to the server's log only).
INTERNAL_MESSAGE = "Internal error: the server could not answer this request (the details are in its log)."

#: ``/api`` paths answered without a key (monitoring).
OPEN_PATHS = frozenset({"/api/health"})


class Guard:
    """Refuse an HTTP request to ``/api/...`` without the API key (401), and cut off a request
    body over ``limit`` bytes (413), counted as it arrives (a missing or lying Content-Length
    does not help).

    The routes check the key too (:func:`faceforge.service.deps.require_api_key`, which is what
    the OpenAPI document declares); this guard only makes sure an unauthenticated upload is
    refused before the server reads (and spools) its body. The key counts only as a header here
    (``X-API-Key`` or ``Authorization: Bearer``), never as ``?key=``.

    An exception no handler turned into an answer is logged with its traceback and answered
    with a generic 500 ``{"detail": ...}`` without details. It is not raised further: the
    server would then drop the keep-alive connection, and the client's next request on it
    would fail too.

    Args:
        app: the ASGI app to guard.
        limit: largest request body in bytes.
        api_key: the key requests must carry (``None``: no key needed).
    """

    def __init__(self, app: Any, limit: int, api_key: str | None = None) -> None:
        self.app, self.limit, self.api_key = app, limit, api_key

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers: dict[str, str] = {}
        for k, v in scope.get("headers") or []:
            headers.setdefault(k.decode("latin-1").lower(), v.decode("latin-1"))  # the first, as Starlette's
        path = scope.get("path", "")
        if self.api_key and path.startswith("/api/") and path not in OPEN_PATHS:
            if not api_key_ok(self.api_key, headers):
                return await plain(send, 401, KEY_MESSAGE)
        try:
            declared = int(headers.get("content-length", "0") or 0)
        except ValueError:
            declared = 0
        if declared > self.limit:
            return await plain(send, 413, f"Request body of {declared} bytes is over the "
                                          f"{self.limit / 1e6:.0f} MB limit.")
        seen, over = 0, False

        async def limited() -> dict:
            nonlocal seen, over
            if over:
                return {"type": "http.request", "body": b"", "more_body": False}
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:  # end the body here; the answer becomes 413 below
                    over = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return msg

        replaced = started = False

        async def guarded_send(msg: dict) -> None:
            nonlocal replaced, started
            if over:
                if not replaced:
                    replaced = started = True
                    await plain(send, 413, f"Request body over the {self.limit / 1e6:.0f} MB limit; "
                                           f"send less (the server's --max-request-mb sets it).")
                return
            if msg.get("type") == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited, guarded_send)
        except Exception:
            log.exception("unexpected error answering %s %s", scope.get("method"), path)
            if started:  # half an answer is out: only closing the connection tells the client
                raise
            await plain(send, 500, INTERNAL_MESSAGE)


async def plain(send: Any, status: int, message: str) -> None:
    """Answer ``{"detail": message}`` with ``status`` straight on the ASGI ``send``."""
    body = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
