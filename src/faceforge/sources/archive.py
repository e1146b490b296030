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
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from faceforge._fs import atomic_write, check_output
from faceforge._paths import cache_dir
from faceforge.errors import SourceError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
#: Default limits: 20 GB uncompressed, 500,000 files.
MAX_BYTES = 20 * 1024**3
MAX_FILES = 500_000
#: An extraction may use at most this share of the free space where it is written.
DISK_SHARE = 0.5
#: Beyond :data:`RATIO_FLOOR` bytes, an archive may expand at most this many times (photos barely
#: compress; a 1 MB zip that expands to 1 GB is a bomb).
MAX_RATIO = 100
RATIO_FLOOR = 64 * 2**20


def _size(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def _budget(archive: Path, dest: Path, total: int, max_bytes: int) -> tuple[int, str]:
    """The most bytes the extraction may write, and the rule that sets it (for messages)."""
    where = dest.parent
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        free = int(shutil.disk_usage(where).free * DISK_SHARE)
    except OSError:
        free = max_bytes
    size = archive.stat().st_size
    rules = [(max_bytes, f"the limit of {_size(max_bytes)}; extract it yourself or raise max_bytes"),
             (free, f"{DISK_SHARE:.0%} of the free disk space ({_size(free / DISK_SHARE)} free); free some")]
    if total > RATIO_FLOOR:
        rules.append((MAX_RATIO * size, f"{MAX_RATIO} times its {_size(size)}: likely a zip bomb; "
                                        f"extract it yourself if you trust it"))
    return min(rules, key=lambda r: r[0])


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
    budget, rule = _budget(archive, dest, total, max_bytes)
    if total > budget:
        raise SourceError(f"{archive}: {_size(total)} uncompressed, more than {rule}.")
    budget = min(budget, total)  # the sizes in the headers bound what is written
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
                    if written > budget:  # sizes in the header can lie
                        raise SourceError(f"{archive}: more than {_size(budget)} when extracted (more "
                                          f"than its headers say); stopped, and the partial files removed.")
                    dst.write(chunk)
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SourceError(f"{archive}: the archive is damaged ({e}); nothing was extracted. "
                          f"Fix: download or pack it again.") from e
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
