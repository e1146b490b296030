"""Find weight files inside installed packages, check them, and cache derived files.

Nothing here touches the network: a missing package is reported with its install command.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

from faceforge._fs import atomic_write as atomic_write_bytes
from faceforge._paths import cache_dir
from faceforge.errors import ModelIntegrityError, ModelNotFoundError
from faceforge.registry.registry import get_spec
from faceforge.registry.spec import ModelSpec


def is_installed(spec: ModelSpec | str) -> bool:
    """Return whether the package that ships ``spec``'s weights can be imported.

    A model made of ``parts`` (``mtcnn``) is installed when every part is.
    """
    spec = get_spec(spec) if isinstance(spec, str) else spec
    if not _importable(spec.module or spec.package.replace("-", "_")):
        return False
    return all(is_installed(p) for p in spec.parts)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _module_dir(module: str) -> Path:
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise ImportError(module)
    return Path(list(found.submodule_search_locations)[0])


def require(spec: ModelSpec | str) -> ModelSpec:
    """Return the spec if its package (and every part's) is installed, else raise with the install command."""
    spec = get_spec(spec) if isinstance(spec, str) else spec
    for part in spec.parts:
        require(part)
    if not is_installed(spec):
        raise ModelNotFoundError(
            f"Model {spec.name!r} needs the package {spec.package!r}, which is not installed. "
            f"Install it with: {spec.install}"
        )
    return spec


@functools.cache
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file, memoised per (path, mtime, size) within the process."""
    st = os.stat(path)
    return _sha256(str(path), st.st_mtime_ns, st.st_size)


def weight_path(spec: ModelSpec | str, verify: bool = True) -> Path:
    """Return the path of ``spec``'s weight file inside its installed package.

    Args:
        spec: a spec or registry name.
        verify: check the SHA-256 against the registry.

    Raises:
        ModelNotFoundError: the package is missing (the message gives the install command) or
            the file is absent from it.
        ModelIntegrityError: the file's checksum differs from the registry's.
    """
    spec = require(spec)
    if spec.module is None or not spec.file:
        if spec.parts:
            why = f"it is made of {', '.join(spec.parts)}; ask for their weight files"
        else:
            why = f"its weights are compiled into {spec.package!r} (or it needs none)"
        raise ModelNotFoundError(f"Model {spec.name!r} has no weight file of its own: {why}.")
    path = _module_dir(spec.module) / spec.file
    if not path.is_file():
        raise ModelNotFoundError(
            f"Model {spec.name!r}: expected {spec.file!r} inside package {spec.package!r} at {path}, "
            f"but it is not there. Reinstall the package with: {spec.install} --force-reinstall"
        )
    if verify and spec.sha256:
        got = sha256_file(path)
        if got != spec.sha256:
            raise ModelIntegrityError(
                f"Model {spec.name!r}: {path} has SHA-256 {got[:16]}..., expected {spec.sha256[:16]}.... "
                f"The package may be a different version; install it with: {spec.install} --force-reinstall"
            )
    return path


def derived_file(spec: ModelSpec | str, suffix: str, build: Callable[[Path], bytes], version: str = "1") -> Path:
    """Return a cached file derived from ``spec``'s weights, building it once if needed.

    The cache key holds the weights' checksum and ``version`` (bump it when the converter
    changes), so a new package version or converter never reuses a stale file.

    Args:
        spec: the source model.
        suffix: file suffix such as ``".onnx"``.
        build: function from the weight path to the derived file's bytes.
        version: converter version.
    """
    spec = get_spec(spec) if isinstance(spec, str) else spec
    src = weight_path(spec)
    key = (spec.sha256 or sha256_file(src))[:16]
    out = cache_dir() / f"{spec.name}-{key}-v{version}{suffix}"
    if not out.is_file():
        atomic_write_bytes(out, build(src))
    return out
