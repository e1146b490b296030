"""What an inbox holds: every image under it (folders, archives, archives in folders) and its class.

The class of a file is the name of the folder holding it (archives are transparent), unless that
folder is the inbox itself or a dated folder (a name starting ``YYYY-MM-DD``): then the file is
unlabelled (:func:`class_of`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: A folder whose name starts with a date is never a class.
DATE_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}")
#: Files beside the photos that are expected (notes) and ignored without a word.
QUIET_SUFFIXES = {".md", ".txt", ".csv", ".tsv", ".json", ".xml", ".db", ".ini", ".yaml", ".yml", ".log"}


def class_of(rel: str) -> str | None:
    """The class of a file at ``rel`` (its path inside the inbox, ``/``-separated; archives are
    transparent): its folder's name, or None when it lies in the inbox itself or a dated folder."""
    parts = rel.split("/")[:-1]
    if not parts or DATE_FOLDER.match(parts[-1]):
        return None
    return parts[-1]


def list_inbox(inbox: Path) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Every image under ``inbox``: ``{path (to read), key (where it is), label}``; and the files
    that are no images ``(key, reason)`` (quiet notes left out)."""
    from faceforge.sources.archive import is_archive
    from faceforge.sources.walk import walk

    found: list[dict[str, Any]] = []
    others: list[tuple[str, str]] = []

    def add(root: Any, key_of: Callable[[str], str], base: str) -> None:
        entries, skipped = walk([root], videos=False)
        for e in entries:
            rel = f"{base}/{e.name}" if base else e.name
            found.append({"path": e.path, "key": key_of(e.name), "label": class_of(rel),
                          "name": rel})
        for s in skipped:
            p = Path(s.source)
            try:
                rel = p.relative_to(root).as_posix() if Path(root).is_dir() else p.name
            except ValueError:
                rel = p.name
            if is_archive(p) and Path(root).is_dir():  # an archive dropped into the inbox folder
                sub = f"{base}/{rel}" if base else rel
                add(p, _member_key(p), "/".join(sub.split("/")[:-1]))
            elif p.suffix.lower() not in QUIET_SUFFIXES and not p.name.upper().startswith("README"):
                others.append((str(p), f"{p}: {s.reason}"))

    if inbox.is_dir():
        add(inbox, lambda n: str((inbox / n).resolve()), "")
    elif is_archive(inbox):
        add(inbox, _member_key(inbox), "")
    else:
        found.append({"path": str(inbox), "key": str(inbox.resolve()), "label": None, "name": inbox.name})
    return found, others


def _member_key(archive: Path) -> Callable[[str], str]:
    """Where a member of ``archive`` is: ``ARCHIVE!MEMBER``."""
    where = str(archive.resolve())
    return lambda name: f"{where}!{name}"
