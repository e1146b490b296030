"""The web page: ``/`` (index.html) and its files under ``/static`` (ES modules, no build step)."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

WEB = Path(__file__).resolve().parent.parent / "web"

# Module scripts load only with a JavaScript MIME type; some systems' mime tables lack .js / .mjs.
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> Response:
    """The page (it asks for the API key itself when the server needs one)."""
    return FileResponse(WEB / "index.html", media_type="text/html")


def mount_static(app: FastAPI) -> None:
    """Serve the page's scripts and style sheet under ``/static``."""
    app.mount("/static", StaticFiles(directory=WEB), name="static")
