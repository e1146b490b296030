"""What every command group shares: the Typer app, the consoles, the one error handler, batch output."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, TypeVar

import typer
from rich.console import Console

from faceforge.errors import FaceforgeError
from faceforge.types import Faces

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="faceforge: detect, align and embed faces; train and run face classifiers.",
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

#: Exit codes: a FaceforgeError (bad input, parameter or model) and Ctrl+C.
EXIT_ERROR, EXIT_INTERRUPTED = 2, 130

F = TypeVar("F", bound=Callable[..., Any])


def fail(e: Exception) -> None:
    """Print ``error: ...`` on stderr and exit with code 2."""
    err.print(f"[bold red]error:[/] {e}", highlight=False)
    raise typer.Exit(EXIT_ERROR)


def handle_errors(command: F) -> F:
    """The one error handler of the CLI: wrap a command so that a :class:`FaceforgeError` prints
    ``error: ...`` and exits with code 2, and Ctrl+C exits with code 130 (no traceback)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except FaceforgeError as e:
            fail(e)
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]", highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


def print_skipped(skipped: Iterable[tuple[str, str]]) -> None:
    """Report files that were skipped, each with its reason (which usually names the file)."""
    for path, why in skipped:
        err.print(f"[yellow]skipped[/] {why if path in why else f'{path}: {why}'}", highlight=False)


def workers_arg(workers: int) -> Optional[int]:
    """``--workers 0`` (one per core) as the library's None."""
    return workers or None


def record(faces: Faces, *meta: str, flatten: Optional[str] = None) -> dict[str, Any]:
    """The JSON record of one image or frame: ``file``, ``frame``, the ``meta`` keys asked for, ``faces``."""
    rec: dict[str, Any] = {"file": faces.meta["source"], "frame": faces.meta["frame"]}
    rec.update({k: faces.meta[k] for k in meta})
    rec["faces"] = faces.to_dicts(flatten=flatten)
    return rec


def write_records(results: Iterable[Faces], to_record: Callable[[Faces], dict[str, Any]], jsonl: Optional[Path],
                  skipped: list[tuple[str, str]], done: str = "") -> None:
    """Write one JSON record per image or frame (to ``jsonl``, else stdout), then the skipped files and a summary."""
    from faceforge.sinks import JsonlWriter

    writer = JsonlWriter(jsonl) if jsonl else None
    n_img = n_faces = 0
    try:
        for faces in results:
            n_img += 1
            n_faces += len(faces)
            rec = to_record(faces)
            if writer:
                writer.write(rec)
            elif sys.stdout.isatty():
                out.print_json(json.dumps(rec))
            else:
                print(json.dumps(rec))
    finally:
        if writer:
            writer.close()
    print_skipped(skipped)
    done = f" {done}" if done else ""
    err.print(f"{n_faces} face(s){done} in {n_img} image(s)/frame(s); {len(skipped)} skipped"
              + (f"; results in {jsonl}" if jsonl else ""), highlight=False)
