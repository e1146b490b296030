"""``faceforge models``, ``serve`` and ``demo``: the model list, the HTTP service and the sample photos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from faceforge.cli.app import err, handle_errors, out, ray_address_option
from faceforge.errors import ParameterError


@handle_errors
def models(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List every pretrained model, the package that ships it, its licence, and whether it is installed."""
    from faceforge.registry import is_installed, list_models

    rows: list[dict[str, Any]] = [
        dict(name=s.name, task=s.task, installed=is_installed(s), package=s.package, license=s.license,
             file=s.file or _no_file(s), sha256=s.sha256, install=s.install, description=s.description)
        for s in list_models()]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    t = Table(title="faceforge models (nothing is ever downloaded)")
    for c in ("name", "task", "installed", "package", "license", "description"):
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(r["name"], r["task"], "[green]yes[/]" if r["installed"] else f"[red]no[/]: {r['install']}",
                  r["package"], r["license"], r["description"])
    out.print(t)


def _no_file(spec: Any) -> str:
    """What stands in the file column of a model without a weight file of its own."""
    if spec.task == "head":
        return "(no weights: fitted by train)"
    parts = list(spec.parts) or list((spec.input.get("networks") or {}).values())
    return f"(uses {', '.join(parts)})" if parts else "(compiled in)"


@handle_errors
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; other than loopback needs --api-key."),
    port: int = typer.Option(8000, "--port", "-p", help="TCP port (0: any free port)."),
    home: Optional[Path] = typer.Option(None, "--home",
                                        help="Data directory (default $FACEFORGE_HOME or ~/.faceforge)."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="FACEFORGE_API_KEY",
                                          help="Key required on API requests (X-API-Key header). Better: set "
                                               "FACEFORGE_API_KEY in the environment (a command line is visible "
                                               "to every user in ps)."),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", help="Largest image upload or fetched image."),
    max_request_mb: float = typer.Option(256.0, "--max-request-mb", help="Largest request (a video, or many "
                                                                          "photos to train on)."),
    allow_private_urls: bool = typer.Option(False, "--allow-private-urls",
                                            help="Let image URLs point at private / loopback addresses."),
    engine: Optional[str] = typer.Option(None, "--engine", metavar="local|ray",
                                         help="Where training jobs embed their photos: local (the job's process) "
                                              "or ray (a local Ray, or --ray-address). Default: $FACEFORGE_ENGINE, "
                                              "else local."),
    ray_address: Optional[str] = ray_address_option(),
) -> None:
    """Run the HTTP API and the web page (train from uploads or webcam, live classification in the browser)."""
    import os

    from faceforge.service import serve as run

    if api_key and os.environ.get("FACEFORGE_API_KEY") != api_key:
        err.print("[yellow]note[/] a key given with --api-key is visible to every user of this machine (ps); pass "
                  "it as FACEFORGE_API_KEY in the environment instead.", highlight=False)

    def ready(url: str) -> None:
        out.print(f"faceforge is running: open [bold]{url}[/] (API docs: {url}docs); Ctrl+C stops it.", highlight=False)

    if ray_address and engine not in (None, "ray"):
        raise ParameterError(f"--ray-address joins a Ray cluster, but --engine is {engine!r}; use --engine ray.")
    batch = {k: v for k, v in (("engine", "ray" if ray_address else engine), ("ray_address", ray_address)) if v}
    run(host, port, home=home, api_key=api_key, on_ready=ready, log_level="warning",
        max_image_mb=max_upload_mb, max_request_mb=max_request_mb, allow_private_urls=allow_private_urls, **batch)


@handle_errors
def demo(output: Path = typer.Option(Path("out/demo"), "-o", "--output", help="Folder for the results.")) -> None:
    """Analyse the sample photos shipped inside installed packages; write annotated images and JSON."""
    from faceforge.demo import run_demo

    run_demo(output, console=out)

