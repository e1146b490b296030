"""``faceforge ingest`` and ``faceforge watch``: new photos from inbox folders into a dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from faceforge.cli.app import (
    engine_arg,
    engine_option,
    err,
    handle_errors,
    out,
    print_skipped,
    ray_address_option,
    workers_arg,
)
from faceforge.errors import ParameterError


INTO = typer.Option(..., "--into", help="The dataset: a folder of class folders (created when missing).")
MODEL = typer.Option(None, "--model", "-m", help="A classifier that files unlabelled faces.")
GALLERY = typer.Option(None, "--gallery", "-g", help="A gallery file that files unlabelled faces.")
GALLERY_NAME = typer.Option("default", "--gallery-name", help="The gallery's name in the file.")
MIN_CONFIDENCE = typer.Option(0.8, "--min-confidence", help="The model's score an unlabelled face needs to be filed.")


def _options(model: Optional[Path], gallery: Optional[Path], gallery_name: str, min_confidence: float,
             engine: Optional[str], ray_address: Optional[str], workers: int) -> dict[str, Any]:
    if gallery is None and gallery_name != "default":
        raise ParameterError("--gallery-name needs -g GALLERY_FILE.")
    return {"model": model, "gallery": (gallery, gallery_name) if gallery is not None else None,
            "min_confidence": min_confidence, "engine": engine_arg(engine, ray_address, workers),
            "workers": workers_arg(workers)}


def print_report(rep: Any, as_json: bool = False) -> None:
    """The report of one ingest run: a short table and the health warnings (or its JSON)."""
    if as_json:
        print(json.dumps(rep.to_dict()))
        return
    print_skipped(rep.unreadable)
    if rep.nothing_new:
        out.print(f"nothing new in {', '.join(rep.inboxes)} ({rep.already_seen} file(s) seen before, "
                  f"{rep.duplicates} duplicate(s)); dataset {rep.dataset}", highlight=False)
    else:
        t = Table(title=f"ingest {rep.run_id}: {rep.new} new file(s) into {rep.dataset}", title_justify="left")
        t.add_column("what")
        t.add_column("files", justify="right")
        for what, n in (("already seen", rep.already_seen), ("duplicates", rep.duplicates),
                        ("near duplicates", rep.near_duplicates), ("unreadable", len(rep.unreadable)),
                        ("no face", rep.no_face)):
            t.add_row(what, str(n))
        for c, n in sorted(rep.routed.items()):
            t.add_row(f"filed into {c}/", str(n))
        for why, n in sorted(rep.review.items()):
            t.add_row(f"to review/: {why}", str(n))
        out.print(t)
    for c, why in sorted(rep.refused.items()):
        err.print(f"[yellow]refused[/] the new photos of {c!r} (sent to review/): {why}", highlight=False)
    for h in rep.health:
        for w in h["warnings"]:
            if "refused" not in h["flags"] or "refused" in w:
                err.print(f"[yellow]health[/] {w}", highlight=False)


@handle_errors
def ingest(
    inboxes: list[Path] = typer.Argument(..., help="Inbox folders (any layout: dated folders, class folders, loose "
                                                   "files), archives or photos; only read, never changed."),
    into: Path = INTO, model: Optional[Path] = MODEL, gallery: Optional[Path] = GALLERY,
    gallery_name: str = GALLERY_NAME, min_confidence: float = MIN_CONFIDENCE,
    workers: int = typer.Option(0, help="Worker processes (0: one per core)."),
    engine: Optional[str] = engine_option(),
    ray_address: Optional[str] = ray_address_option(),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """File the new photos of inbox folders into a dataset: once each, de-duplicated, doubtful faces to review/.

    Exit code 0: the run filed, queued or found nothing new; 1: every new file was unreadable;
    2: bad arguments (a missing inbox, the dataset inside an inbox...).
    """
    from faceforge.collect.ingest import ingest as _ingest

    rep = _ingest(inboxes, into, progress=not as_json,
                  **_options(model, gallery, gallery_name, min_confidence, engine, ray_address, workers))
    print_report(rep, as_json)
    if rep.new and len(rep.unreadable) >= rep.new:  # new files, not one of them usable: a cron job must see it
        err.print(f"error: none of the {rep.new} new file(s) could be read (listed above); replace them with "
                  f"readable photos (JPEG, PNG...).", highlight=False)
        raise typer.Exit(1)


@handle_errors
def watch(
    inboxes: list[Path] = typer.Argument(..., help="Inbox folders to watch."),
    into: Path = INTO, model: Optional[Path] = MODEL, gallery: Optional[Path] = GALLERY,
    gallery_name: str = GALLERY_NAME, min_confidence: float = MIN_CONFIDENCE,
    settle: float = typer.Option(2.0, "--settle", help="Seconds without a change before new files are ingested."),
    workers: int = typer.Option(0, help="Worker processes (0: one per core)."),
    engine: Optional[str] = engine_option(),
    ray_address: Optional[str] = ray_address_option(),
    as_json: bool = typer.Option(False, "--json", help="Print each run's report as one JSON line."),
) -> None:
    """Ingest new photos as they arrive in inbox folders (Ctrl+C stops)."""
    from faceforge.collect.watch import watch as _watch

    if not as_json:
        err.print(f"watching {', '.join(map(str, inboxes))} -> {into} (Ctrl+C stops)", highlight=False)
    _watch(inboxes, into, settle_s=settle, on_report=lambda rep: print_report(rep, as_json),
           **_options(model, gallery, gallery_name, min_confidence, engine, ray_address, workers))
