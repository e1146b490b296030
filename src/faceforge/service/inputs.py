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


async def image_input(file: UploadFile | None, url: str | None, settings: Settings) -> tuple[Any, str, tuple[int, int]]:
    """The request's image as an RGB array, how to call it in messages, and its size ``(w, h)``.

    A JPEG above ``settings.max_decode_pixels`` is decoded reduced (1/2, 1/4 or 1/8 per side:
    detection on it costs a fraction), so the array can be smaller than the image; answers give
    boxes in the image's own pixels with :func:`in_original`.

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
    return img, name, _original_size(data, img)


def _original_size(data: bytes, img: Any) -> tuple[int, int]:
    """The encoded image's ``(w, h)`` (after its EXIF rotation), which ``img`` may be a reduction of."""
    import io

    from PIL import Image

    ih, iw = img.shape[:2]
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    except Exception:  # decoded already, so this cannot fail in practice; keep the decoded size
        return iw, ih
    if (iw >= ih) != (w >= h):  # rotated by its EXIF orientation
        w, h = h, w
    return (w, h) if iw < w else (iw, ih)


def in_original(faces: Any, img: Any, size: tuple[int, int]) -> Any:
    """``faces`` found on ``img`` with boxes and landmarks in the pixels of the image of ``size``."""
    from faceforge.pipeline.finder import rescale_faces

    return rescale_faces(faces, img.shape[1] / size[0], size)


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
