"""What the routes read from a request: uploads (chunked, size-capped, typed by their bytes),
the image of a request (an upload or a URL), comma-separated lists, and inference under the lock."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

from fastapi import File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool

from faceforge.errors import ImageError
from faceforge.service.safety import IMAGE_TYPES, RequestError, check_type, fetch_url, limit_error
from faceforge.service.settings import Settings

FileField = Annotated[UploadFile | None, File(description="the image (JPEG, PNG, GIF, BMP, WebP, TIFF, PNM)")]
UrlField = Annotated[str | None, Form(description="or an http(s) URL of the image to fetch")]
TopK = Annotated[int, Form(ge=1, le=20)]


def client_name(f: Any) -> str:
    """A client's file name for messages and reports only (never a path): printable, at most 100 characters."""
    return "".join(c for c in (getattr(f, "filename", None) or "upload") if c.isprintable())[:100] or "upload"


async def read_limited(f: UploadFile, limit: int) -> bytes:
    """An upload's bytes, read in chunks.

    Raises:
        RequestError: 413 naming the file, when it is over ``limit`` bytes.
    """
    buf = bytearray()
    while chunk := await f.read(1 << 20):
        buf += chunk
        if len(buf) > limit:
            raise limit_error(client_name(f), limit)
    return bytes(buf)


async def read_upload(f: UploadFile, limit: int, allowed: tuple[str, ...]) -> tuple[bytes, str]:
    """An upload's bytes and sniffed type (one of ``allowed``; else 415, empty 400, too large 413)."""
    data = await read_limited(f, limit)
    return data, check_type(data, allowed, client_name(f))


async def image_input(file: UploadFile | None, url: str | None, settings: Settings) -> tuple[Any, str]:
    """The request's image as an RGB array, and how to call it in messages.

    Raises:
        RequestError: not exactly one of ``file`` / ``url`` (422), a refused or failed URL, a file
            of another type (415), too large (413) or undecodable (422).
    """
    from faceforge.sources import load_image

    if (file is None) == (not url):
        raise RequestError("Send exactly one image: a multipart file field 'file', or an 'url' to fetch.", 422)
    if file is not None:
        data, _ = await read_upload(file, settings.max_image_bytes, IMAGE_TYPES)
        name = client_name(file)
    else:
        got = await run_in_threadpool(fetch_url, url or "", max_bytes=settings.max_image_bytes,
                                      allow_private=settings.allow_private_urls, timeout=settings.url_timeout_s)
        data, name = got.data, f"URL {url!r}"
        check_type(data, IMAGE_TYPES, name)
    try:
        img = await run_in_threadpool(partial(load_image, data, settings.max_pixels,
                                              max_decode_pixels=settings.max_decode_pixels))
    except ImageError as e:
        raise RequestError(f"{name}: {e}", 422) from e
    return img, name


def split(s: str | None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [x.strip() for x in (s or "").split(",") if x.strip()]


def infer(engine: Any, fn: Callable[..., Any], *a: Any, **kw: Any) -> Any:
    """``fn(*a, **kw)`` holding the engine's inference lock (call it in a worker thread)."""
    with engine.lock:
        return fn(*a, **kw)


def check_photo_count(n: int, settings: Settings) -> None:
    """Refuse (413) more photos in one request than ``settings.max_photos``."""
    if n > settings.max_photos:
        raise RequestError(f"{n} photos is over the limit of {settings.max_photos} per request.", 413)
