"""The store of a model's versions: ``MODEL.versions/history.json``, its lock and the promotion stack.

Used by :mod:`faceforge.collect.versions` (the public API); every write is atomic
(:func:`faceforge._fs.atomic_write`). ``history.json`` is a list of version records; each record's
``promotions`` lists the times it was put at ``MODEL`` (``{"seq", "time", "how"}``, ``how`` one of
``import``, ``retrain``, ``promote``, ``rollback``). Replaying them in ``seq`` order gives the
promotion stack (:func:`stack`): a promotion pushes, a rollback pops, so rollback after rollback
walks back through the versions that were in use.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Iterator

from faceforge._fs import sha256_file
from faceforge._fs import atomic_write
from faceforge.errors import BusyError, VersionError

log = logging.getLogger("faceforge.collect.versions")

_NAME = re.compile(r"^v?0*(\d{1,6})$")


def versions_dir(model: str | os.PathLike) -> Path:
    """``MODEL.versions``: where the versions of ``model`` live."""
    return Path(os.fspath(model) + ".versions")



@contextlib.contextmanager
def lock(model: str | os.PathLike, wait: float | None = None) -> Iterator[None]:
    """Hold the lock of ``model``'s versions (``MODEL.versions/.lock``, ``fcntl.flock``).

    Args:
        model: the model file.
        wait: seconds to wait for another holder (None: as long as it takes; 0: not at all).

    Raises:
        BusyError: still held by another process (or another open of it) after ``wait`` seconds.
    """
    path = versions_dir(model) / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = None if wait is None else time.monotonic() + float(wait)
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    holder = path.read_text(errors="replace").strip() or "another process"
                    raise BusyError(f"{model}: another retrain, promotion or rollback of this model is running "
                                    f"(lock {path} held by pid {holder}); waited {wait} s. Wait for it to finish, "
                                    f"or pass a longer wait.") from None
                if not told:
                    log.info("%s: waiting for another retrain / promotion of this model", model)
                    told = True
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def load(model: Path) -> list[dict[str, Any]]:
    path = versions_dir(model) / "history.json"
    try:
        records = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        raise VersionError(f"{path}: unreadable version history ({e}); restore it from a backup, or move the "
                           f"folder {path.parent} away to start the versions of {model} afresh.") from e
    if not isinstance(records, list) or not all(isinstance(r, dict) and "version" in r for r in records):
        raise VersionError(f"{path}: not a faceforge version history (expected a list of version records); move "
                           f"the folder {path.parent} away to start the versions of {model} afresh.")
    return records


def save(model: Path, records: list[dict[str, Any]]) -> None:
    atomic_write(versions_dir(model) / "history.json", json.dumps(records, indent=2, default=str).encode())


def stack(records: list[dict[str, Any]]) -> list[str]:
    """The promoted versions, oldest first, replaying every promotion (a rollback pops the top)."""
    events = sorted((e["seq"], r["version"], e["how"]) for r in records for e in r.get("promotions", []))
    stack: list[str] = []
    for _, version, how in events:
        if how == "rollback" and stack:
            stack.pop()
        if not stack or stack[-1] != version:
            stack.append(version)
    return stack


def push(records: list[dict[str, Any]], record: dict[str, Any], how: str) -> None:
    seq = max((e["seq"] for r in records for e in r.get("promotions", [])), default=0) + 1
    record.setdefault("promotions", []).append({"seq": seq, "time": now(), "how": how})


def current(model: Path, records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The record whose bytes ``model`` holds (None: no model file, or one no version holds)."""
    if not model.is_file():
        return None
    sha = sha256_file(model)
    order = stack(records)
    mine = [r for r in records if r.get("sha256") == sha]
    if not mine:
        return None
    return max(mine, key=lambda r: order.index(r["version"]) if r["version"] in order else -1)


def find(model: Path, records: list[dict[str, Any]], version: Any) -> dict[str, Any]:
    m = _NAME.match(str(version).strip())
    name = f"v{int(m.group(1)):04d}" if m else str(version)
    for r in records:
        if r["version"] == name:
            return r
    have = ", ".join(r["version"] for r in records) or "none yet"
    raise VersionError(f"{model}: no version {version!r} (versions: {have}); give a version as 3 or v0003, see "
                       f"`faceforge models history {model}`.")


def install(model: Path, record: dict[str, Any]) -> None:
    """Copy a version's bytes (checked against its recorded SHA-256) over ``model``, and its report beside it."""
    folder = versions_dir(model)
    src = folder / record["file"]
    try:
        data = src.read_bytes()
    except OSError as e:
        raise VersionError(f"{model}: the file of version {record['version']} ({src}) cannot be read "
                           f"({e.strerror or e}); it cannot be promoted. Promote another version.") from e
    if hashlib.sha256(data).hexdigest() != record.get("sha256"):
        raise VersionError(f"{model}: the file of version {record['version']} ({src}) changed since it was stored "
                           f"(its SHA-256 differs from history.json's); it is not promoted. Promote another version.")
    atomic_write(model, data)
    rep = folder / (record.get("report") or "")
    if record.get("report") and rep.is_file():
        atomic_write(model.with_name(model.stem + ".report.json"), rep.read_bytes())


def adopt(model: Path, records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Keep a model file that no version holds as a new version ("imported"); returns the current record."""
    held = current(model, records)
    if held is not None or not model.is_file():
        return held
    from faceforge.train import load_classifier

    number = max((r["number"] for r in records), default=0) + 1
    name = f"v{number:04d}"
    folder = versions_dir(model)
    data = model.read_bytes()
    atomic_write(folder / f"{name}.ffm", data)
    record: dict[str, Any] = {"version": name, "number": number, "created": now(), "file": f"{name}.ffm",
                              "sha256": hashlib.sha256(data).hexdigest(), "promoted": True, "decision": "imported",
                              "reason": f"{name}: the model file found at {model}, which no version held (trained "
                                        f"outside retrain), kept so that a rollback can restore it",
                              "settings": settings_of(load_classifier(model).manifest), "metrics": None,
                              "dataset_state": None, "compared_with": None}
    sidecar = model.with_name(model.stem + ".report.json")
    if sidecar.is_file():
        atomic_write(folder / f"{name}.report.json", sidecar.read_bytes())
        record["report"] = f"{name}.report.json"
    push(records, record, "import")
    records.append(record)
    save(model, records)
    return record


def settings_of(manifest: dict[str, Any]) -> dict[str, Any]:
    """The training settings a model file records (its embedder, head, detector, unknown check...)."""
    s: dict[str, Any] = {"embedder": manifest["embedder"], "head": (manifest.get("head") or {}).get("kind"),
                         "detector": manifest.get("detector", "photo"), "crops": manifest.get("crops", "auto"),
                         "alignment": manifest.get("alignment"), "augment": bool(manifest.get("augment", False)),
                         "seed": int(manifest.get("seed", 0)), "task": manifest.get("task", "auto"),
                         "quality": manifest.get("quality", "fast")}
    if s["task"] == "classification":
        unknown = (manifest.get("metrics") or {}).get("unknown")
        if unknown is None:
            s["target_far"] = None  # trained without an unknown check
        elif "target_far" in unknown:
            s["target_far"] = unknown["target_far"]
        if unknown and unknown.get("rule") == "negatives" and unknown.get("negatives"):
            s["negatives"] = list(unknown["negatives"])
    return {k: v for k, v in s.items() if v is not None or k == "target_far"}


__all__ = ["adopt", "current", "find", "install", "load", "lock", "now", "push", "save", "settings_of",
           "stack", "versions_dir"]
