"""Zip and tar(.gz/.bz2/.xz) archives as inputs, extracted safely.

Face sets (LFW and others) are distributed as archives. Extraction refuses members that would
land outside the target folder (absolute paths, ``..``), links and special files, and stops at
limits on the total uncompressed size and the number of files (zip bombs). Archives are
extracted once into the faceforge cache, keyed by their content hash; the archive itself is only
read.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from faceforge._fs import atomic_write, check_output
from faceforge._paths import cache_dir
from faceforge.errors import SourceError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
#: Default limits: 20 GB uncompressed, 500,000 files.
MAX_BYTES = 20 * 1024**3
MAX_FILES = 500_000


def is_archive(path: str | os.PathLike) -> bool:
    """True for a file whose name ends in an archive suffix (zip, tar, tar.gz, ...)."""
    name = str(path).lower()
    return Path(path).is_file() and any(name.endswith(s) for s in ARCHIVE_SUFFIXES)


def _safe_name(name: str, archive: Path) -> PurePosixPath | None:
    """The member's relative path, or None for directories; raises for unsafe names."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or (p.parts and p.parts[0].endswith(":")):
        raise SourceError(f"{archive}: member {name!r} has an absolute path; refusing to extract this archive.")
    if ".." in p.parts:
        raise SourceError(f"{archive}: member {name!r} points outside the archive folder ('..'); "
                          f"refusing to extract this archive.")
    parts = [x for x in p.parts if x not in ("", ".")]
    return PurePosixPath(*parts) if parts else None


def _check_collisions(archive: Path, names: list[PurePosixPath]) -> None:
    """Refuse an archive where one member's path is another's folder (``a`` and ``a/b.jpg``)."""
    files = set(names)
    for rel in names:
        for parent in rel.parents:
            if parent in files:
                raise SourceError(f"{archive}: member {str(parent)!r} is a file, but {str(rel)!r} needs it to be a "
                                  f"folder; refusing to extract this archive (rename one of them and pack it again).")


def extract_archive(archive: str | os.PathLike, dest: str | os.PathLike, *, max_bytes: int = MAX_BYTES,
                    max_files: int = MAX_FILES) -> Path:
    """Extract ``archive`` into ``dest`` safely (see the module docs) and return ``dest``.

    Everything is checked before anything is written; the extraction goes to a temporary folder
    that is renamed to ``dest`` at the end, so a failed extraction leaves nothing behind.

    Raises:
        SourceError: not a readable archive, an unsafe member, or a limit exceeded.
    """
    archive, dest = Path(archive), Path(dest)
    try:
        if zipfile.is_zipfile(archive):
            arc: Any = zipfile.ZipFile(archive)
            entries = [(i.filename, "dir" if i.is_dir() else
                        "link" if (i.external_attr >> 16) & 0o170000 == 0o120000 else "file", i.file_size, i)
                       for i in arc.infolist()]
            opener = arc.open
        elif tarfile.is_tarfile(archive):
            arc = tarfile.open(archive)
            entries = [(i.name, "dir" if i.isdir() else "file" if i.isfile() else "link", i.size, i)
                       for i in arc.getmembers()]
            opener = arc.extractfile
        else:
            raise SourceError(f"{archive}: not a zip or tar archive this tool can read.")
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as e:
        raise SourceError(f"{archive}: cannot read the archive ({e}).") from e
    with arc:
        members: list[tuple[PurePosixPath, Any]] = []
        total = 0
        for name, kind, size, info in entries:
            rel = _safe_name(name, archive)
            if rel is None or kind == "dir":
                continue
            if kind != "file":
                raise SourceError(f"{archive}: member {name!r} is a link or special file; refusing to extract.")
            total += size
            members.append((rel, info))
        _check_collisions(archive, [rel for rel, _ in members])
        return _extract(archive, dest, members, opener, total, max_bytes, max_files)


def _extract(archive: Path, dest: Path, members: list[tuple[PurePosixPath, Any]], opener: Any, total: int,
             max_bytes: int, max_files: int) -> Path:
    """Check the limits, then write ``members`` into a temporary folder renamed to ``dest``."""
    if len(members) > max_files:
        raise SourceError(f"{archive}: {len(members):,} files, more than the limit of {max_files:,}; "
                          f"extract it yourself or raise max_files.")
    if total > max_bytes:
        raise SourceError(f"{archive}: {total / 1e9:.1f} GB uncompressed, more than the limit of "
                          f"{max_bytes / 1e9:.1f} GB; extract it yourself or raise max_bytes.")
    tmp = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    written = 0
    try:
        for rel, info in members:
            out = tmp.joinpath(*rel.parts)
            out.parent.mkdir(parents=True, exist_ok=True)
            with opener(info) as src, open(out, "wb") as dst:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > max_bytes:  # sizes in the header can lie
                        raise SourceError(f"{archive}: more than {max_bytes / 1e9:.1f} GB when extracted; stopped.")
                    dst.write(chunk)
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def extracted(archive: str | os.PathLike, **limits: int) -> Path:
    """The folder holding ``archive``'s files, extracted once into the cache (keyed by content)."""
    archive = Path(archive)
    with open(archive, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    dest = cache_dir() / "archives" / digest[:24]
    check_output(dest, [archive], kind="folder", what="extraction folder")  # never rmtree the archive itself
    done = dest.with_name(dest.name + ".done")
    if not done.is_file():
        extract_archive(archive, dest, **limits)
        atomic_write(done, str(archive).encode())
    return dest
