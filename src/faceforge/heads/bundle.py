"""The model file: one zip holding ``manifest.json`` and ``arrays.npz`` (no pickle anywhere).

This module owns only the container and its ``format_version``; what the manifest says about
the model (labels, embedder, metrics, ...) is decided by the layer that trains it.
"""

from __future__ import annotations

import io
import json
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


def load_bundle(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a model file written by :func:`save_bundle`.

    Returns:
        ``(manifest, arrays)``; arrays are loaded eagerly with ``allow_pickle=False``.

    Raises:
        BundleError: the file is missing, not a faceforge model, from a newer faceforge
            (the message names the version to upgrade to), or damaged.
    """
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"{path}: no such model file. Fix: check the path (train one with `faceforge train`).")
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            missing = [m for m in (MANIFEST, ARRAYS) if m not in names]
            if missing:
                raise BundleError(
                    f"{path} is not a faceforge model: the zip lacks {', '.join(missing)}. "
                    f"Fix: pass a file written by `faceforge train`."
                )
            raw_manifest = z.read(MANIFEST)
            raw_arrays = z.read(ARRAYS)
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise BundleError(
            f"{path} is not a faceforge model (not a zip file, or a damaged one: {e}). "
            f"Fix: pass a file written by `faceforge train`."
        ) from e
    except OSError as e:
        raise BundleError(f"{path}: cannot read the model file ({e}).") from e
    try:
        manifest = json.loads(raw_manifest.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise BundleError(f"{path}: manifest.json is damaged ({e}). Fix: retrain or restore the model file.") from e
    if not isinstance(manifest, dict) or not isinstance(manifest.get("format_version"), int):
        raise BundleError(
            f"{path} is not a faceforge model: manifest.json has no integer format_version. "
            f"Fix: pass a file written by `faceforge train`."
        )
    if manifest["format_version"] > FORMAT_VERSION:
        need = manifest.get("faceforge_version", "a newer version")
        raise BundleError(
            f"{path} was written by faceforge {need} in model format {manifest['format_version']}, but this is "
            f"faceforge {_version()}, which reads format {FORMAT_VERSION} and older. "
            f"Fix: upgrade: pip install -U 'faceforge>={need}'."
        )
    try:
        with np.load(io.BytesIO(raw_arrays), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise BundleError(
            f"{path}: arrays.npz is damaged or holds pickled data ({e}). Fix: retrain or restore the model file."
        ) from e
    return manifest, arrays
