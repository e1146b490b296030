"""Reading images from disk or memory into RGB uint8 arrays. Originals are only ever read."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from faceforge.errors import ImageError

#: Suffixes treated as images when walking folders. Files without a suffix are sniffed.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".pgm", ".ppm", ".pbm", ".pnm",
                  ".webp", ".tif", ".tiff", ".jfif"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}

#: Largest accepted image, in pixels (width x height). Larger files are refused, not guessed at.
MAX_PIXELS = 100_000_000
#: An image of more than :data:`BOMB_FLOOR` pixels with more than this many pixels per byte of
#: file is refused as a likely decompression bomb (photos hold a few pixels per byte; even a blank
#: RGB PNG about 350; a bomb thousands).
MAX_PIXELS_PER_BYTE = 500
BOMB_FLOOR = 4_000_000
#: A JPEG above the decode cap (``max_decode_pixels``, set by the service) with more pixels per byte
#: than this is refused: JPEG cannot go much below a bit per 8x8 block, so a near-blank picture of
#: tens of megapixels is the JPEG form of a bomb (camera photos hold 2 to 10 pixels per byte).
JPEG_MAX_PIXELS_PER_BYTE = 30


def to_rgb_uint8(image: Any, name: str = "image") -> np.ndarray:
    """Convert an array of any common layout into RGB ``uint8`` ``(H, W, 3)``.

    Accepts grey ``(H, W)`` or ``(H, W, 1)``, RGB, RGBA (alpha composited on white),
    ``uint16`` (scaled by 1/257), float in [0, 1], bool, and PIL images.

    Raises:
        ImageError: wrong number of dimensions or channels, or an empty image.
    """
    if hasattr(image, "mode") and hasattr(image, "size"):  # PIL image
        return _pil_to_rgb(image, name)
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(
            f"{name}: expected an image of shape (H, W), (H, W, 3) or (H, W, 4), got shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(f"{name}: the image is empty (shape {arr.shape})")
    if arr.dtype == np.uint8:
        pass
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        arr = (arr.astype(np.uint32) * 255 // 65535).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        hi = 255.0 if np.nanmax(arr) > 1.0 else 1.0
        arr = np.clip(np.nan_to_num(arr) * (255.0 / hi), 0, 255).round().astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.integer):
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    else:
        raise ImageError(f"{name}: unsupported pixel type {arr.dtype}; expected uint8, uint16 or float")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.shape[2] == 4:
        alpha = arr[:, :, 3:4].astype(np.float32) / 255.0
        arr = (arr[:, :, :3].astype(np.float32) * alpha + 255.0 * (1 - alpha)).round().astype(np.uint8)
    return np.ascontiguousarray(arr)


def _pil_to_rgb(img: Any, name: str) -> np.ndarray:
    from PIL import ImageOps

    img = ImageOps.exif_transpose(img) or img
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img)
        if arr.dtype != np.uint16:
            arr = np.clip(arr, 0, 65535).astype(np.uint16)
        return to_rgb_uint8(arr, name)
    if mode == "F":
        return to_rgb_uint8(np.asarray(img, np.float32), name)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        return to_rgb_uint8(np.asarray(img), name)
    if mode != "RGB":
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def load_image(source: str | os.PathLike | bytes | Any, max_pixels: int = MAX_PIXELS, *,
               max_decode_pixels: int | None = None) -> np.ndarray:
    """Read an image file (or bytes, or an array) as RGB ``uint8`` ``(H, W, 3)``.

    EXIF orientation is applied; grey, palette, RGBA and 16-bit files are converted. The
    file is opened read-only and never modified. Files without an extension are sniffed.

    Args:
        source: a path, raw encoded bytes, a numpy array or a PIL image.
        max_pixels: refuse images larger than this many pixels (decompression bombs). Images of
            more than :data:`BOMB_FLOOR` pixels in a file of under one byte per
            :data:`MAX_PIXELS_PER_BYTE` pixels are refused too, from the header, before decoding.
        max_decode_pixels: decode at most this many pixels (``None``: no limit below
            ``max_pixels``). A larger JPEG is decoded reduced by 2, 4 or 8 per side (cheap: the
            decoder skips the detail), so the array is smaller than the file's size; a larger
            image in another format is refused.

    Returns:
        ``(H, W, 3) uint8`` RGB array.

    Raises:
        ImageError: missing, unreadable, corrupt, unsupported or too large; the message names
            the file and what to do.

    Example:
        >>> from skimage import data
        >>> load_image(data.astronaut()).shape
        (512, 512, 3)
    """
    if isinstance(source, np.ndarray) or (hasattr(source, "mode") and hasattr(source, "size")):
        return to_rgb_uint8(source)
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, (bytes, bytearray, memoryview)):
        name, stream = "<bytes>", io.BytesIO(bytes(source))
        nbytes = len(stream.getbuffer())
    else:
        path = Path(source)
        name = str(path)
        if not path.exists():
            raise ImageError(f"{name}: no such file. Check the path.")
        if path.is_dir():
            raise ImageError(f"{name}: is a folder, not an image. Pass the folder to a command that walks folders.")
        nbytes = path.stat().st_size
        if nbytes == 0:
            raise ImageError(f"{name}: the file is empty (0 bytes); re-export or remove it.")
        stream = None
    old = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # we check the size from the header ourselves, below
        with Image.open(stream if stream is not None else name) as img:
            w, h = img.size
            if w * h > max_pixels:
                raise ImageError(
                    f"{name}: {w}x{h} is {w * h / 1e6:.0f} MP, above the {max_pixels / 1e6:.0f} MP limit; "
                    f"downscale it first or raise max_pixels."
                )
            _check_cost(img, name, nbytes, max_decode_pixels)
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)  # first frame of animated GIF / multi-page TIFF
            img.load()
            return _pil_to_rgb(img, name)
    except ImageError:
        raise
    except UnidentifiedImageError as e:
        raise ImageError(
            f"{name}: not an image faceforge can read (supported: JPEG, PNG, BMP, GIF, PGM/PPM, WebP, TIFF)."
        ) from e
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{name}: the image is corrupt or truncated ({e}); re-export or remove it.") from e
    finally:
        Image.MAX_IMAGE_PIXELS = old


def _check_cost(img: Any, name: str, nbytes: int, max_decode_pixels: int | None) -> None:
    """Refuse a likely bomb from its header; reduce a JPEG above ``max_decode_pixels`` as it is decoded."""
    w, h = img.size
    if w * h > BOMB_FLOOR and w * h > MAX_PIXELS_PER_BYTE * nbytes:
        raise ImageError(
            f"{name}: {w}x{h} ({w * h / 1e6:.0f} MP) in a file of only {nbytes / 1e3:,.1f} kB, "
            f"{w * h / max(nbytes, 1):,.0f} pixels per byte (photos hold a few): a likely decompression bomb; "
            f"refusing to decode it. If it is a real image, re-save it as a photo (JPEG) or downscale it."
        )
    if max_decode_pixels is None or w * h <= max_decode_pixels:
        return
    if img.format == "JPEG" and w * h > JPEG_MAX_PIXELS_PER_BYTE * nbytes:
        raise ImageError(
            f"{name}: a {w}x{h} ({w * h / 1e6:.0f} MP) JPEG in only {nbytes / 1e3:,.1f} kB, "
            f"{w * h / max(nbytes, 1):,.0f} pixels per byte (camera photos hold under 10): an almost blank "
            f"image that would cost seconds to decode and search; refusing it. If it is real, downscale it "
            f"to under {max_decode_pixels / 1e6:.0f} MP."
        )
    if img.format == "JPEG":
        for k in (2, 4, 8):
            if -(-w // k) * -(-h // k) <= max_decode_pixels:
                img.draft(img.mode, (max(1, w // k), max(1, h // k)))
                if img.size[0] * img.size[1] <= max_decode_pixels:
                    return
                break
    raise ImageError(
        f"{name}: {w}x{h} is {w * h / 1e6:.0f} MP, above the {max_decode_pixels / 1e6:.0f} MP decoded here "
        f"for {img.format or 'these'} images (only JPEGs are decoded reduced); downscale it or save it as a JPEG."
    )


def looks_like_image(path: str | os.PathLike) -> bool:
    """Cheap check used when walking folders: a known image suffix, or no suffix and a known magic."""
    p = Path(path)
    suf = p.suffix.lower()
    if suf in IMAGE_SUFFIXES:
        return True
    if suf and suf not in {""}:
        return False
    try:
        with open(p, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return (
        head.startswith(b"\xff\xd8\xff") or head.startswith(b"\x89PNG") or head[:3] == b"GIF"
        or head[:2] == b"BM" or head[:2] in (b"P2", b"P5", b"P3", b"P6")
        or head[:4] in (b"II*\x00", b"MM\x00*") or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
    )
