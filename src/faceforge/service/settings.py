"""The service's settings: limits and switches, read from ``FACEFORGE_*`` environment variables.

``Settings()`` reads the environment (``FACEFORGE_HOME``, ``FACEFORGE_API_KEY``,
``FACEFORGE_MAX_IMAGE_MB``, ...); keyword arguments win over it. Routes get the settings through
the :func:`faceforge.service.deps.get_settings` dependency, which tests may override.
"""

from __future__ import annotations

from pathlib import Path
import os
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from faceforge.errors import ParameterError


def _default_home() -> Path:
    return Path.home() / ".faceforge"


class Settings(BaseSettings):
    """Limits and switches of one service.

    Attributes:
        home: data directory (models, galleries, jobs); ``$FACEFORGE_HOME`` or ``~/.faceforge``.
        api_key: required on every ``/api`` request when set, as the header ``X-API-Key`` or
            ``Authorization: Bearer KEY`` (``?key=`` only on the WebSocket ``/api/live``, where
            browsers cannot set headers). Pass it as ``FACEFORGE_API_KEY`` in the environment
            (a command-line argument is visible to every user in ``ps``). ``faceforge serve``
            refuses a non-loopback address without one.
        max_image_mb: largest image upload or fetched image.
        max_request_mb: largest request body (a video, or a training request with many photos).
        max_pixels: largest image in pixels (decompression bombs are refused before decoding).
        max_photos: most photos in one training or enrolment request.
        allow_private_urls: let image URLs point at private / loopback addresses (off: SSRF).
        url_timeout_s: timeout for fetching an image URL.
        job_timeout_s: longest a background job (training, video) may run; it is then killed
            and marked failed.
        job_attempts: most times a job is started; a job interrupted (server stopped or killed)
            that often is marked failed instead of being run again at each restart.
        job_workers: background jobs run side by side.
        run_jobs: run background jobs in this process (tests may turn it off).
        engine: where training jobs embed their photos: ``"local"`` (the job's own process) or
            ``"ray"`` (a local Ray, or the cluster of ``ray_address``); ``"serial"`` is the same as
            local; ``FACEFORGE_ENGINE``. Video
            jobs track faces frame after frame in one process whatever the engine.
        ray_address: the Ray cluster of ``engine="ray"`` (``FACEFORGE_RAY_ADDRESS``; default
            ``$RAY_ADDRESS``, else a local Ray).
        collect_roots: the only folders a schedule's steps may name (inboxes, datasets, model
            files): every path of a step must resolve inside one of them. Empty (default) means
            ``[home / "collect"]``; see :attr:`collect_dirs`. ``FACEFORGE_COLLECT_ROOTS`` takes a
            JSON list or folders separated by ``os.pathsep`` (``/data/inbox:/data/people``).
        run_schedules: run the schedules' timer in this process (tests may turn it off).
    """

    model_config = SettingsConfigDict(env_prefix="FACEFORGE_", extra="forbid")

    home: Path = Field(default_factory=_default_home)
    api_key: str | None = None
    max_image_mb: float = Field(20.0, gt=0)
    max_request_mb: float = Field(256.0, gt=0)
    max_pixels: int = Field(40_000_000, gt=0)
    max_photos: int = Field(2000, ge=1)
    allow_private_urls: bool = False
    url_timeout_s: float = Field(10.0, gt=0)
    job_timeout_s: float = Field(7200.0, gt=0)
    job_attempts: int = Field(3, ge=1)
    job_workers: int = Field(1, ge=1, le=16)
    run_jobs: bool = True
    engine: Literal["local", "serial", "ray"] = "local"
    ray_address: str | None = None
    #: most pixels decoded per image: a larger JPEG is decoded reduced (1/2 to 1/8 per side, cheap),
    #: a larger image in another format is refused (a small PNG can hold gigapixels that cost seconds)
    max_decode_pixels: int = Field(16_000_000, gt=0)
    collect_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    run_schedules: bool = True

    @field_validator("collect_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        """``FACEFORGE_COLLECT_ROOTS``: a JSON list, or folders separated by ``os.pathsep``."""
        if isinstance(value, str):
            import json

            text = value.strip()
            return json.loads(text) if text.startswith("[") else [x for x in text.split(os.pathsep) if x.strip()]
        return value

    @property
    def collect_dirs(self) -> list[Path]:
        """:attr:`collect_roots` resolved (symbolic links followed), or ``[home / "collect"]`` when empty."""
        roots = self.collect_roots or [Path(self.home) / "collect"]
        return [Path(r).expanduser().resolve() for r in roots]

    @property
    def max_image_bytes(self) -> int:
        """:attr:`max_image_mb` in bytes."""
        return int(self.max_image_mb * 1e6)

    @property
    def max_request_bytes(self) -> int:
        """:attr:`max_request_mb` in bytes."""
        return int(self.max_request_mb * 1e6)


def make_settings(settings: Settings | None = None, **overrides: Any) -> Settings:
    """``settings`` with ``overrides`` applied, or new :class:`Settings` (environment + ``overrides``).

    Args:
        settings: settings to start from (``None``: read the environment).
        **overrides: :class:`Settings` fields, e.g. ``home=``, ``api_key=``, ``max_image_mb=``.

    Returns:
        The validated settings.

    Raises:
        ParameterError: an unknown field or a value out of range.
    """
    try:
        if settings is None:
            return Settings(**overrides)
        if not overrides:
            return settings
        return Settings(**{**settings.model_dump(), **overrides})
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'settings'}: {err['msg']}" for err in e.errors())
        raise ParameterError(f"Invalid service settings ({problems}); the fields are: "
                             f"{', '.join(Settings.model_fields)}.") from e
