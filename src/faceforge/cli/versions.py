"""``faceforge retrain`` and ``faceforge models [history|promote|rollback]``: model versions.

``faceforge models`` alone still lists the pretrained models (:func:`faceforge.cli.serve.models`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from faceforge.cli import serve
from faceforge.cli.app import engine_arg, engine_option, handle_errors, out, ray_address_option, workers_arg

models_app = typer.Typer(invoke_without_command=True,
                         help="The pretrained models (alone: the table), and the versions of a trained model "
                              "(history, promote, rollback).")


@models_app.callback()
def models_main(ctx: typer.Context,
                as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List every pretrained model, the package that ships it, its licence, and whether it is installed;
    or, with a subcommand, the versions of a model trained by ``faceforge retrain``."""
    if ctx.invoked_subcommand is None:
        serve.models(as_json=as_json)


def _pct(metric: str, value: Any) -> str:
    from faceforge.collect.versions import METRICS

    if value is None:
        return "-"
    return f"{100 * value:.1f}%" if METRICS.get(metric, True) else f"{value:.3g}"


def _metrics_line(metrics: dict[str, Any]) -> str:
    m = metrics["metric"]
    new, cur = metrics.get("new") or {}, metrics.get("current") or {}
    line = (f"{m.replace('_', ' ')} ({metrics.get('source') or '-'}) on {metrics.get('validation_photos', 0)} "
            f"validation photos of {metrics.get('validation_classes', 0)} classes: {new.get('version')} "
            f"{_pct(m, new.get('value'))}")
    if cur:
        line += f", {cur.get('version')} {_pct(m, cur.get('value'))}"
    return line


@handle_errors
def retrain(
    dataset: Path = typer.Argument(..., help="The dataset: one folder of photos per class (what ingest fills)."),
    model: Path = typer.Option(..., "--model", "-m", help="The promoted model file (e.g. people.ffm); its "
                                                          "versions are kept in MODEL.versions/."),
    promote: str = typer.Option("if_better", "--promote", metavar="if_better|always|never",
                                help="if_better: promote only when not worse than the current model on the fixed "
                                     "validation split (new >= current - margin); always; never."),
    margin: Optional[float] = typer.Option(None, "--margin", help="How much worse the new version may be and "
                                                                  "still be promoted (0.01 = one point of accuracy; "
                                                                  "default 0.005, and 0 for mae / rmse)."),
    metric: str = typer.Option("balanced_accuracy", "--metric",
                               help="balanced_accuracy, accuracy (classes); mae, rmse (numbers)."),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Share of photos (by hash of their bytes) held "
                                                                   "out for validation, the same for every version."),
    embedder: Optional[str] = typer.Option(None, "--embedder", "-e",
                                           help="Embedder for this and later versions (auto: search again). "
                                                "Default: the current model's."),
    head: Optional[str] = typer.Option(None, "--head", help="Head for this and later versions. Default: the "
                                                            "current model's."),
    engine: Optional[str] = engine_option(),
    ray_address: Optional[str] = ray_address_option(),
    workers: int = typer.Option(0, "--workers", help="Processes to embed with (0: one per core)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train a new version of MODEL on DATASET (warm, same settings), keep it, and promote it if not worse."""
    from faceforge.collect.versions import retrain as run

    overrides: dict[str, Any] = {k: v for k, v in (("embedder", embedder), ("head", head)) if v is not None}
    res = run(dataset, model, promote=promote, margin=margin, metric=metric, val_fraction=val_fraction,
              engine=engine_arg(engine, ray_address, workers), workers=workers_arg(workers), progress=not as_json,
              **overrides)
    if as_json:
        print(json.dumps(res.to_dict(), default=str))
        return
    out.print(res.reason, highlight=False)
    out.print(_metrics_line(res.metrics), highlight=False)
    t = res.record.get("train") or {}
    out.print(f"{res.version}: {res.file} ({t.get('photos')} training photos, {t.get('cache_hits')} embeddings from "
              f"the cache, {res.seconds:.1f} s); the model in use: {res.model}", highlight=False)


@models_app.command("history")
@handle_errors
def models_history(model: Path = typer.Argument(..., help="The model file (people.ffm)."),
                   as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The versions of MODEL: when, the dataset they saw, their metrics, and which one is in use."""
    from faceforge.collect.versions import history

    rows = history(model)
    if as_json:
        print(json.dumps(rows, default=str))
        return
    if not rows:
        out.print(f"{model}: no versions yet; `faceforge retrain DATASET --model {model}` makes the first.",
                  highlight=False)
        return
    t = Table("version", "created", "in use", "decision", "photos", "metric", "reason", title=f"versions of {model}")
    for r in rows:
        m = r.get("metrics") or {}
        value = (m.get("new") or {}).get("value")
        state = r.get("dataset_state") or {}
        created = str(r.get("created", ""))[:16].replace("T", " ")
        t.add_row(r["version"], created, "[green]yes[/]" if r["current"] else "",
                  str(r.get("decision", "")), str(state.get("photos", "-")),
                  _pct(m.get("metric", "balanced_accuracy"), value) if m else "-", str(r.get("reason", "")))
    out.print(t)


@models_app.command("promote")
@handle_errors
def models_promote(model: Path = typer.Argument(..., help="The model file (people.ffm)."),
                   version: str = typer.Argument(..., help="The version: 3 or v0003.")) -> None:
    """Make VERSION the model in use at MODEL (its exact bytes)."""
    from faceforge.collect.versions import promote

    r = promote(model, version)
    out.print(f"{r['version']} is now {model}", highlight=False)


@models_app.command("rollback")
@handle_errors
def models_rollback(model: Path = typer.Argument(..., help="The model file (people.ffm).")) -> None:
    """Put back the version that was in use before the current one."""
    from faceforge.collect.versions import rollback

    r = rollback(model)
    out.print(f"rolled back: {r['version']} is now {model}", highlight=False)
