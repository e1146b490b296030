"""File-system helpers shared by every stage: atomic writes, their temporary files, and the output guard.

* :func:`atomic_write` writes through a temporary file ``.NAME.PID.RANDOM.tmp`` renamed into
  place; :func:`make_temp` makes such a file for writers that stream (JSON lines). A temporary
  file is removed on any Python-level exit; one left by a killed process (SIGKILL runs no code)
  is swept by the next write into the same folder (:func:`sweep_stale_temps`: its owner's pid
  is dead and it is older than :data:`STALE_TEMP_S`).
* :func:`check_output` refuses an output that is, holds or lies inside an input, before
  anything is written.

This module imports nothing from faceforge but its errors.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from faceforge.errors import OutputError

log = logging.getLogger("faceforge.fs")

#: A temporary file of a dead process is swept once it is this old (seconds).
STALE_TEMP_S = 60.0
#: Temporary files of older faceforge versions (no pid in the name) are swept at this age.
STALE_LEGACY_TEMP_S = 3600.0

_TEMP = re.compile(r"^\..+\.(\d+)\.[a-z0-9_]{8}\.tmp$")
_LEGACY_TEMP = re.compile(r"^\.(.+)\.[a-z0-9_]{8}\.tmp$")
_swept: set[str] = set()


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` runs (a zombie, dead but not yet reaped, counts as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return True  # no /proc (not Linux): kill(0) said it exists


def sweep_stale_temps(folder: str | os.PathLike, *, force: bool = False) -> list[Path]:
    """Remove the temporary files that killed writers left in ``folder``.

    A file ``.NAME.PID.RANDOM.tmp`` goes when process ``PID`` is dead and the file is older
    than :data:`STALE_TEMP_S`; a ``.NAME.RANDOM.tmp`` of an older version (no pid) when older
    than :data:`STALE_LEGACY_TEMP_S` and ``NAME`` exists beside it. Each folder is swept once per
    process unless ``force``.

    Args:
        folder: the folder to sweep.
        force: sweep even if this process swept it before.

    Returns:
        The files removed.
    """
    key = os.path.realpath(folder)
    if key in _swept and not force:
        return []
    _swept.add(key)
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(key))
    except OSError:
        return removed
    for e in entries:
        name = e.name
        if not (name.startswith(".") and name.endswith(".tmp")):
            continue
        m = _TEMP.match(name)
        try:
            if not e.is_file(follow_symlinks=False):
                continue
            age = now - e.stat(follow_symlinks=False).st_mtime
            if m is not None:
                pid = int(m.group(1))
                if age < STALE_TEMP_S or pid == os.getpid() or pid_alive(pid):
                    continue
            else:  # an older version's: only beside the file it was for (which was written since)
                legacy = _LEGACY_TEMP.match(name)
                if legacy is None or age < STALE_LEGACY_TEMP_S or not os.path.exists(os.path.join(key, legacy[1])):
                    continue
            os.unlink(e.path)
            removed.append(Path(e.path))
        except OSError:
            continue
    if removed:
        log.info("removed %d temporary file(s) left by killed writers in %s", len(removed), key)
    return removed


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def make_temp(path: str | os.PathLike) -> tuple[int, str]:
    """A new temporary file beside ``path`` (``.NAME.PID.RANDOM.tmp``), after sweeping stale ones.

    Returns:
        ``(fd, temp_path)`` as :func:`tempfile.mkstemp` gives them; the caller renames or removes it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(path.parent)
    return tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)


def atomic_write(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, fsync, rename.

    A reader never sees a half-written file, and an interrupted write leaves the old file intact
    (and its temporary file is removed, or swept by the next write when the process was killed).
    The file gets the permissions a plain ``open(path, "wb")`` would give (or keeps those of the
    file it replaces), not the temporary file's private 0600.
    """
    path = Path(path)
    fd, tmp = make_temp(path)
    try:
        try:
            mode = path.stat().st_mode & 0o777
        except OSError:
            mode = 0o666 & ~_UMASK
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# -- the output guard -----------------------------------------------------------------------------
def _real(p: str | os.PathLike) -> Path:
    return Path(os.path.normcase(os.path.realpath(os.path.expanduser(os.fspath(p)))))


def _expand(inputs: Iterable[str | os.PathLike | None]) -> list[str]:
    out: list[str] = []
    for p in inputs:
        if p is None or str(p) == "":
            continue
        text = os.fspath(p)
        if not os.path.exists(text) and glob.has_magic(text):
            out.extend(glob.glob(text, recursive=True))
        else:
            out.append(text)
    return out


def check_output(output: str | os.PathLike, inputs: Iterable[str | os.PathLike | None], *, kind: str = "file",
                 what: str = "output") -> Path:
    """Refuse an output that would overwrite or mix with an input, before anything is written.

    ``output`` is refused when it is an input, holds one (a folder with an input inside), or lies
    inside one (in an input folder, where it could overwrite an input or be read back as one
    by the next run). Symbolic links and ``..`` are resolved first; globs among the inputs are
    expanded. Also refused: a ``kind="folder"`` output that is an existing file, and a
    ``kind="file"`` output that is an existing folder.

    Args:
        output: the file or folder to be written.
        inputs: the paths the command reads (files, folders, globs; None entries are ignored).
        kind: ``"file"`` or ``"folder"``.
        what: what the output is, for the message (``"JSONL file"``, ``"model file"``...).

    Returns:
        ``output`` as a :class:`~pathlib.Path`.

    Raises:
        OutputError: the output and an input overlap, or the output is the wrong kind of path.
    """
    if kind not in ("file", "folder"):
        raise ValueError(f"kind must be 'file' or 'folder', got {kind!r}")
    out = Path(output)
    real = _real(out)
    for raw in _expand(inputs):
        inp = _real(raw)
        is_dir = inp.is_dir()
        noun = "folder" if is_dir else "file"
        if real == inp:
            if is_dir:
                raise OutputError(f"Refusing to write the {what} into the input folder {raw}: outputs would mix "
                                  f"with the inputs; choose a new folder outside the inputs.")
            raise OutputError(f"Refusing to overwrite the input file {raw} with the {what}; choose another "
                              f"path for the {what}, outside the inputs.")
        if real in inp.parents:
            raise OutputError(f"Refusing to overwrite the input {noun} {raw}: the {what} {out} holds it; choose a "
                              f"{'folder' if kind == 'folder' else 'path'} outside the inputs.")
        if inp in real.parents:
            raise OutputError(f"Refusing to write the {what} {out} inside the input {noun} {raw}: it could "
                              f"overwrite an input or be read back as one; choose a path outside {raw}.")
    if kind == "folder" and out.exists() and not out.is_dir():
        raise OutputError(f"The {what} {out} is an existing file, not a folder; give a new or empty folder.")
    if kind == "file" and out.is_dir():
        raise OutputError(f"The {what} {out} is an existing folder; give a file name inside it or elsewhere.")
    return out


def check_outputs(outputs: Iterable[tuple[str | os.PathLike | None, str, str]],
                  inputs: Iterable[str | os.PathLike | None]) -> None:
    """:func:`check_output` for several ``(output, kind, what)`` (None outputs are skipped) against the same inputs.

    Raises:
        OutputError: as :func:`check_output`.
    """
    ins = list(inputs)
    for output, kind, what in outputs:
        if output is not None:
            check_output(output, ins, kind=kind, what=what)


__all__ = ["STALE_TEMP_S", "atomic_write", "check_output", "check_outputs", "make_temp", "pid_alive",
           "sweep_stale_temps"]
