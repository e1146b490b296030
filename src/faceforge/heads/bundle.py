"""The model file: one zip holding ``manifest.json`` and ``arrays.npz`` (no pickle anywhere).

This module owns only the container and its ``format_version``; what the manifest says about
the model (labels, embedder, metrics, ...) is decided by the layer that trains it.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from faceforge._fs import atomic_write
from faceforge.errors import BundleError, ParameterError

#: Version of the container layout. Readers accept this version and older.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"


def _version() -> str:
    from faceforge import __version__

    return __version__


def save_bundle(path: str | os.PathLike, manifest: dict[str, Any], arrays: dict[str, Any]) -> Path:
    """Write a model file atomically (a reader never sees a half-written file).

    Args:
        path: destination, conventionally ``*.faceforge`` or ``*.zip``.
        manifest: JSON-serialisable dict (strict JSON: no NaN). ``format_version`` and
            ``faceforge_version`` are added (overwriting any given).
        arrays: name -> numeric/string numpy array (no object arrays).

    Returns:
        The path written.

    Raises:
        ParameterError: the manifest is not JSON-serialisable, or an array cannot be stored
            without pickle.
    """
    if not isinstance(manifest, dict):
        raise ParameterError(f"manifest must be a dict, but got {type(manifest).__name__}.")
    full = {**manifest, "format_version": FORMAT_VERSION, "faceforge_version": _version()}
    try:
        text = json.dumps(full, indent=2, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise ParameterError(
            f"the manifest must be JSON-serialisable (numbers, strings, lists, dicts; no NaN): {e}. "
            f"Fix: convert numpy values with .tolist() / float()."
        ) from e
    clean: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not name:
            raise ParameterError(f"array names must be non-empty strings, but got {name!r}.")
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise ParameterError(
                f"array {name!r} has dtype object, which cannot be stored without pickle. "
                f"Fix: store numbers or fixed-width strings (np.array(list_of_str))."
            )
        clean[name] = arr
    npz = io.BytesIO()
    np.savez(npz, allow_pickle=False, **clean)  # explicit, so no array name can stand in for it
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(MANIFEST, text.encode("utf-8"))
        z.writestr(ARRAYS, npz.getvalue())
    return atomic_write(path, buf.getvalue())


#: Largest ``manifest.json`` accepted, uncompressed.
MAX_MANIFEST_BYTES = 16 * 2**20
#: Largest total of the arrays accepted, uncompressed (checked from the zip headers before reading).
MAX_ARRAY_BYTES = 2**30
#: Most arrays in one model file.
MAX_ARRAYS = 10_000
#: Largest expansion (uncompressed / file size) accepted once the arrays exceed :data:`RATIO_FLOOR`
#: bytes: real weights barely compress, a decompression bomb expands thousands of times.
MAX_RATIO = 50
RATIO_FLOOR = 16 * 2**20


def _refuse(name: str, what: str) -> BundleError:
    return BundleError(f"{name}: {what}; refusing to load it (a damaged model file, or a decompression bomb). "
                       f"Fix: pass a model file written by `faceforge train`.")


def _read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, name: str) -> bytearray:
    """A zip member's bytes, read in chunks, never more than ``cap`` nor than its header says."""
    if info.file_size > cap:
        raise _refuse(name, f"{info.filename} holds {info.file_size / 1e6:,.1f} MB uncompressed, "
                            f"over the limit of {cap / 1e6:,.1f} MB")
    buf = bytearray()
    with z.open(info) as f:
        while chunk := f.read(min(1 << 20, info.file_size + 1 - len(buf))):
            buf += chunk
            if len(buf) > info.file_size:  # zipfile stops at the header's size; this keeps that promise
                raise _refuse(name, f"{info.filename} holds more bytes than its header says")
    return buf


def _members(z: zipfile.ZipFile, name: str, limit: int) -> dict[str, zipfile.ZipInfo]:
    """The zip's members by name (at most ``limit``, each name once)."""
    infos = z.infolist()
    if len(infos) > limit:
        raise _refuse(name, f"the zip holds {len(infos):,} members, more than the {limit:,} allowed")
    out: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        if info.filename in out:
            raise _refuse(name, f"the zip holds {info.filename!r} twice")
        out[info.filename] = info
    return out


def _check_expansion(total: int, size: int, name: str, what: str) -> None:
    if total > RATIO_FLOOR and total > MAX_RATIO * max(size, 1):
        raise _refuse(name, f"{what} would expand to {total / 1e6:,.0f} MB from a {size / 1e3:,.0f} kB file "
                            f"({total / max(size, 1):,.0f} times; real weights barely compress)")


def _read_arrays(raw: bytes | bytearray, name: str, size: int, max_bytes: int) -> dict[str, np.ndarray]:
    """The arrays in ``arrays.npz``, every member's size checked from its header before it is read."""
    with zipfile.ZipFile(io.BytesIO(raw)) as npz:
        members = _members(npz, name, MAX_ARRAYS)
        total = sum(i.file_size for i in members.values())
        if total > max_bytes:
            raise _refuse(name, f"its arrays hold {total / 1e6:,.1f} MB uncompressed, over the limit of "
                                f"{max_bytes / 1e6:,.1f} MB")
        _check_expansion(total, size, name, "its arrays")
        arrays: dict[str, np.ndarray] = {}
        for member, info in members.items():
            if not member.endswith(".npy"):
                raise _refuse(name, f"arrays.npz holds {member!r}, which is not a .npy array")
            arrays[member[:-4]] = _npy(_read_member(npz, info, max_bytes, name), name, member)
    return arrays


def _npy(data: bytearray, name: str, member: str) -> np.ndarray:
    """The array in ``.npy`` bytes, its header checked against the data before anything is allocated."""
    f = io.BytesIO(data)
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise _refuse(name, f"array {member!r} is in .npy format {version}, which faceforge does not write")
    if dtype.hasobject:
        raise _refuse(name, f"array {member!r} holds Python objects (pickled data)")
    count = math.prod(int(s) for s in shape)
    offset = f.tell()
    if count < 0 or count * dtype.itemsize != len(data) - offset:
        raise _refuse(name, f"array {member!r} claims shape {shape} of {dtype}, but holds "
                            f"{len(data) - offset:,} bytes of data")
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)


def load_bundle(path: str | os.PathLike, *, max_bytes: int = MAX_ARRAY_BYTES,
                name: str | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a model file written by :func:`save_bundle`.

    Sizes are checked from the zip headers (of the file and of the ``.npz`` inside it) before
    anything is decompressed, and every member is read in bounded chunks, so a small file that
    would expand to gigabytes is refused at once, without allocating them.

    Args:
        path: the model file.
        max_bytes: the largest total size of the arrays, uncompressed.
        name: what to call the file in messages (default: ``path``), e.g. a client's file name.

    Returns:
        ``(manifest, arrays)``; arrays are loaded eagerly with ``allow_pickle=False``.

    Raises:
        BundleError: the file is missing, not a faceforge model, from a newer faceforge
            (the message names the version to upgrade to), too large when expanded, or damaged.
    """
    path = Path(path)
    label = str(path) if name is None else name
    if not path.is_file():
        raise BundleError(f"{label}: no such model file. Fix: check the path (train one with `faceforge train`).")
    try:
        size = path.stat().st_size
        with zipfile.ZipFile(path) as z:
            names = _members(z, label, 64)
            missing = [m for m in (MANIFEST, ARRAYS) if m not in names]
            if missing:
                raise BundleError(
                    f"{label} is not a faceforge model: the zip lacks {', '.join(missing)}. "
                    f"Fix: pass a file written by `faceforge train`."
                )
            _check_expansion(names[ARRAYS].file_size, size, label, "arrays.npz")
            raw_manifest = _read_member(z, names[MANIFEST], MAX_MANIFEST_BYTES, label)
            # the .npz adds a header per array to the arrays' own bytes
            raw_arrays = _read_member(z, names[ARRAYS], max_bytes + 2**20 + 1024 * MAX_ARRAYS, label)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError) as e:
        raise BundleError(
            f"{label} is not a faceforge model (not a zip file, or a damaged one: {e}). "
            f"Fix: pass a file written by `faceforge train`."
        ) from e
    except OSError as e:
        raise BundleError(f"{label}: cannot read the model file ({e}).") from e
    try:
        manifest = json.loads(raw_manifest.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise BundleError(f"{label}: manifest.json is damaged ({e}). Fix: retrain or restore the model file.") from e
    if not isinstance(manifest, dict) or not isinstance(manifest.get("format_version"), int):
        raise BundleError(
            f"{label} is not a faceforge model: manifest.json has no integer format_version. "
            f"Fix: pass a file written by `faceforge train`."
        )
    if manifest["format_version"] > FORMAT_VERSION:
        need = manifest.get("faceforge_version", "a newer version")
        raise BundleError(
            f"{label} was written by faceforge {need} in model format {manifest['format_version']}, but this is "
            f"faceforge {_version()}, which reads format {FORMAT_VERSION} and older. "
            f"Fix: upgrade: pip install -U 'faceforge>={need}'."
        )
    try:
        arrays = _read_arrays(raw_arrays, label, size, max_bytes)
    except BundleError:
        raise
    except (ValueError, OSError, EOFError, KeyError, NotImplementedError, zipfile.BadZipFile, zlib.error) as e:
        raise BundleError(
            f"{label}: arrays.npz is damaged or holds pickled data ({e}). Fix: retrain or restore the model file."
        ) from e
    return manifest, arrays


def replace_manifest(src: str | os.PathLike, dst: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    """Write ``src``'s model file to ``dst`` with another manifest; the arrays are copied byte for byte.

    Args:
        src: a model file (already checked with :func:`load_bundle`).
        dst: where to write (atomically).
        manifest: the new manifest (strict JSON).

    Returns:
        The path written.

    Raises:
        BundleError: ``src`` cannot be read.
    """
    text = json.dumps(manifest, indent=2, allow_nan=False, ensure_ascii=False)
    try:
        with zipfile.ZipFile(src) as z:
            raw = z.read(ARRAYS)
    except (OSError, zipfile.BadZipFile, zlib.error, KeyError) as e:
        raise BundleError(f"cannot read the model file to rewrite it ({e}).") from e
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as out:
        out.writestr(MANIFEST, text.encode("utf-8"))
        out.writestr(ARRAYS, raw)
    return atomic_write(dst, buf.getvalue())


def read_manifest(path: str | os.PathLike, name: str | None = None) -> dict[str, Any]:
    """Only the manifest of a model file (read with the same size cap as :func:`load_bundle`).

    Raises:
        BundleError: the file is not a readable model file.
    """
    label = str(path) if name is None else name
    try:
        with zipfile.ZipFile(path) as z:
            names = _members(z, label, 64)
            if MANIFEST not in names:
                raise BundleError(f"{label} is not a faceforge model: the zip lacks {MANIFEST}.")
            manifest = json.loads(_read_member(z, names[MANIFEST], MAX_MANIFEST_BYTES, label).decode("utf-8"))
    except (OSError, zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError, RecursionError) as e:
        raise BundleError(f"{label}: cannot read the model's manifest ({e}).") from e
    if not isinstance(manifest, dict):
        raise BundleError(f"{label}: manifest.json is not an object; the model file is damaged.")
    return manifest
