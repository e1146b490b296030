"""What every command group shares: the Typer app, the consoles, the one error handler, batch output."""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, TypeVar

import typer
from rich.console import Console

from faceforge.errors import FaceforgeError, SourceError
from faceforge.types import Faces

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="faceforge: detect, align and embed faces; train and run face classifiers.",
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

#: Exit codes: a FaceforgeError (bad input, parameter or model) or an OS error (disk full, permission
#: denied), Ctrl+C, SIGTERM, and a closed pipe on stdout.
EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_BROKEN_PIPE = 2, 130, 143, 141

#: Set to 1 to see the traceback of an OS error instead of its one-line message.
DEBUG_ENV = "FACEFORGE_DEBUG"

F = TypeVar("F", bound=Callable[..., Any])


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that ``finally`` blocks run (temporary files go)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise Terminated()


def install_signal_handlers() -> None:
    """Make SIGTERM unwind like Ctrl+C (cleanup runs, exit code 143); call once in the main thread."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


def fail(e: Exception) -> None:
    """Print ``error: ...`` on stderr and exit with code 2."""
    err.print(f"[bold red]error:[/] {e}", highlight=False)
    raise typer.Exit(EXIT_ERROR)


_OS_HINTS = {errno.ENOSPC: "free some space, or write elsewhere",
             errno.EDQUOT: "free some space, or write elsewhere",
             errno.EACCES: "check the permissions, or choose another path",
             errno.EPERM: "check the permissions, or choose another path",
             errno.EROFS: "write elsewhere",
             errno.ENOENT: "check the path",
             errno.EISDIR: "give a file, not a folder",
             errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
             errno.EEXIST: "a file of that name is in the way; choose another path",
             errno.EMFILE: "raise the limit (ulimit -n), or use fewer workers"}


def os_error_message(e: OSError) -> str:
    """One line for an OS error: the path(s), what happened and the fix."""
    where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f)
    what = e.strerror or str(e) or type(e).__name__
    hint = _OS_HINTS.get(e.errno or -1)
    return f"{where + ': ' if where else ''}{what}" + (f"; {hint}" if hint else "")


def handle_errors(command: F) -> F:
    """The one error handler of the CLI: wrap a command so that a :class:`FaceforgeError` prints
    ``error: ...`` and exits with code 2, an OS error (disk full, permission denied) prints one
    line and exits with 2 (``FACEFORGE_DEBUG=1`` shows its traceback), Ctrl+C exits with 130 and
    SIGTERM with 143 (no traceback)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except FaceforgeError as e:
            fail(e)
        except Terminated:
            err.print("[yellow]terminated[/]", highlight=False)
            raise typer.Exit(EXIT_TERMINATED) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]", highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:  # the reader of stdout went away (`faceforge detect ... | head`): stop quietly
            with contextlib.suppress(OSError, ValueError):  # no more "Exception ignored" at exit either
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        except OSError as e:
            if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
                raise
            err.print(f"[bold red]error:[/] {os_error_message(e)}", highlight=False)
            raise typer.Exit(EXIT_ERROR) from None

    return wrapper  # type: ignore[return-value]


def nothing_done(skipped: list[tuple[str, str]], limit: int = 5) -> SourceError:
    """The error of a command that could use none of its inputs: how many, which and why."""
    why = "; ".join((w if p in w else f"{p}: {w}").rstrip(".") for p, w in skipped[:limit])
    more = f"; and {len(skipped) - limit} more (listed above)" if len(skipped) > limit else ""
    return SourceError(f"Nothing was processed: none of the {len(skipped)} input(s) could be used ({why}{more}). "
                       f"Fix or remove these files, or point the command at other ones.")


def print_skipped(skipped: Iterable[tuple[str, str]]) -> None:
    """Report files that were skipped, each with its reason (which usually names the file)."""
    for path, why in skipped:
        err.print(f"[yellow]skipped[/] {why if path in why else f'{path}: {why}'}", highlight=False)


def workers_arg(workers: int) -> Optional[int]:
    """``--workers 0`` (one per core) as the library's None."""
    return workers or None


def engine_option() -> Any:
    """The ``--engine`` option of every batch command."""
    return typer.Option(None, "--engine", metavar="local|ray",
                        help="Where the work runs: local (worker processes here) or ray (a local Ray, or the "
                             "cluster of --ray-address). Default: $FACEFORGE_ENGINE, else local.")


def ray_address_option() -> Any:
    """The ``--ray-address`` option of every batch command."""
    return typer.Option(None, "--ray-address", metavar="HOST:PORT",
                        help="A Ray cluster to join (`ray start --head` prints it); implies --engine ray. "
                             "Default: $RAY_ADDRESS, else a local Ray.")


def engine_arg(engine: Optional[str], ray_address: Optional[str], workers: int = 0) -> Any:
    """``--engine`` / ``--ray-address`` / ``--workers`` as the library's ``engine=`` argument.

    Returns:
        None (the library's default: ``$FACEFORGE_ENGINE``, else local), an engine name, or a
        built Ray engine (which carries the address and the number of workers).

    Raises:
        ParameterError: an unknown engine name, or an address with an engine other than ray.
    """
    from faceforge.errors import ParameterError
    from faceforge.runner import engine_names, get_engine

    if ray_address and engine not in (None, "ray"):
        raise ParameterError(f"--ray-address joins a Ray cluster, but --engine is {engine!r}; "
                             f"use --engine ray or leave --ray-address out.")
    if ray_address or engine == "ray":
        return get_engine("ray", address=ray_address, workers=workers_arg(workers))
    if engine is not None and engine not in engine_names():
        get_engine(engine)  # raises, naming the nearest engine
    return engine


def record(faces: Faces, *meta: str, flatten: Optional[str] = None) -> dict[str, Any]:
    """The JSON record of one image or frame: ``file``, ``frame``, the ``meta`` keys asked for, ``faces``."""
    rec: dict[str, Any] = {"file": faces.meta["source"], "frame": faces.meta["frame"]}
    rec.update({k: faces.meta[k] for k in meta})
    rec["faces"] = faces.to_dicts(flatten=flatten)
    return rec


def write_records(results: Iterable[Faces], to_record: Callable[[Faces], dict[str, Any]], jsonl: Optional[Path],
                  skipped: list[tuple[str, str]], done: str = "", protect: Iterable[Any] = ()) -> None:
    """Write one JSON record per image or frame (to ``jsonl``, else stdout), then the skipped files and a summary.

    Args:
        results: the records' faces, consumed here.
        to_record: a face record to its JSON object.
        jsonl: the file to write (atomically; left out when nothing was processed), or None for stdout.
        skipped: the ``(path, reason)`` of unusable inputs (filled while ``results`` runs).
        done: the verb of the summary (``"classified"``...).
        protect: the inputs (paths and model files) that ``jsonl`` must not overlap.

    Raises:
        OutputError: ``jsonl`` is, holds or lies inside an input.
        SourceError: no input could be processed at all (after listing the skipped ones).
    """
    from faceforge.sinks import JsonlWriter

    writer = JsonlWriter(jsonl, protect) if jsonl else None
    n_img = n_faces = 0
    ok = False
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
        ok = n_img > 0 or not skipped
    finally:
        if writer:
            writer.close(commit=ok)
    print_skipped(skipped)
    if not ok:
        raise nothing_done(skipped)
    done = f" {done}" if done else ""
    err.print(f"{n_faces} face(s){done} in {n_img} image(s)/frame(s); {len(skipped)} skipped"
              + (f"; results in {jsonl}" if jsonl else ""), highlight=False)
