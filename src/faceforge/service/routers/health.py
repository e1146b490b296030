"""``GET /api/health``: liveness and version, answered without an API key (for monitoring)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

import faceforge
from faceforge.service.deps import SettingsDep
from faceforge.service.schemas import Health

router = APIRouter(prefix="/api", tags=["service"])


@router.get("/health", response_model=Health)
def health(settings: SettingsDep) -> dict[str, Any]:
    """Liveness and versions (no API key needed)."""
    return {"status": "ok", "version": faceforge.__version__, "auth": bool(settings.api_key)}
