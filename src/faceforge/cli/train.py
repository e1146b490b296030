"""``faceforge train``, ``classify`` and ``evaluate``: face classifiers and their reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer
from rich.table import Table

from faceforge.cli.app import (
    engine_arg,
    engine_option,
    err,
    handle_errors,
    out,
    ray_address_option,
    record,
    workers_arg,
    write_records,
)


@handle_errors
def train(
    data: Path = typer.Argument(..., help="Folder with one sub-folder of photos per class, or a CSV of file,label."),
    output: Path = typer.Option(..., "-o", "--output", help="Model file to write (.ffm)."),
    embedder: str = typer.Option("auto", "--embedder", "-e",
                                 help="auto (default): score every installed embedder (and head) by "
                                      "cross-validation on your photos and use the best (prints the leaderboard); "
                                      "or force one: dlib-resnet (identity), agegender or gendernet (age, gender), "
                                      "expression (smiles and other expressions), effnet-lite0 (ImageNet "
                                      "features)."),
    head: Optional[str] = typer.Option(None, help="Default: chosen with --embedder auto, else logreg (ridge for "
                                       "numeric labels). Or force one: logreg, svm, knn, mlp, ridge; auto (logreg, "
                                       "svm and knn scored by cross-validation, the best used)."),
    detector: str = typer.Option("photo", "--detector", "-d"),
    crops: str = typer.Option("auto", help="auto (whole image when no face is found), always (photos are face crops), "
                              "never."),
    augment: bool = typer.Option(False, "--augment", help="Add flipped/rotated/brightened copies (cached)."),
    val: Optional[float] = typer.Option(None, help="Fraction held out for the validation report (0: none). Default: "
                                        "under 300 photos, repeated k-fold over all photos with a 95% interval; "
                                        "else 0.2."),
    folds: int = typer.Option(0, help="k-fold cross-validation instead of one hold-out (k >= 2)."),
    target_far: float = typer.Option(0.01, help="False-accept rate of the 'unknown' check (0 disables)."),
    label_column: Optional[str] = typer.Option(None, help="CSV: the label column (default: the second)."),
    path_column: Optional[str] = typer.Option(None, help="CSV: the file column (default: the first)."),
    image_root: Optional[Path] = typer.Option(None, help="CSV: folder the file paths are relative to."),
    known: Optional[list[str]] = typer.Option(None, "--known", help="A class that is a person to recognise; the "
                                              "other classes are negatives (e.g. --known me beside a not_me folder). "
                                              "Repeat for several."),
    negatives: Optional[list[str]] = typer.Option(None, "--negatives", help="The class of anyone else's faces "
                                                  "(e.g. --negatives not_me): the other classes are people to "
                                                  "recognise (the me / not-me rule). Default: every class is an "
                                                  "ordinary class, whatever its name."),
    curve: bool = typer.Option(True, "--curve/--no-curve", help="Plot a learning curve (one extra fit)."),
    accurate: bool = typer.Option(False, "--accurate", help="The accurate preset: faces found by the two-view "
                                  "detector and embedded averaged with their mirror image (slower); the model "
                                  "records it and `classify` finds and embeds its faces the same way."),
    seed: int = typer.Option(0),
    workers: int = typer.Option(0, help="Worker processes (0: one per core)."),
    engine: Optional[str] = engine_option(),
    ray_address: Optional[str] = ray_address_option(),
) -> None:
    # One line on purpose: rich help keeps a docstring's line breaks in the command listing.
    """Train a face classifier on cached embeddings; writes the model, a report, a confusion matrix and a learning curve."""  # noqa: E501
    from faceforge._fs import check_output
    from faceforge.train import train as _train

    check_output(output, [data, image_root], what="model file")
    crop_mode: Any = {"always": True, "never": False}.get(crops, crops)
    res = _train(data, output, embedder=embedder, head=head, detector=detector, crops=crop_mode,
                 augment=augment, val=val, folds=folds, target_far=target_far or None, seed=seed,
                 label_column=label_column, path_column=path_column, image_root=image_root,
                 workers=workers_arg(workers), known=known or None,
                 negatives=negatives or None, learning_curve=curve, quality="accurate" if accurate else "fast",
                 engine=engine_arg(engine, ray_address, workers))
    notes = ("negatives_hint", "few_for_folds")  # always shown, however many other problems there are
    for p in res.problems:
        if getattr(p, "kind", "") in notes:
            err.print(f"[yellow]note[/] {p.message}", highlight=False)
    print_problems([p for p in res.problems if getattr(p, "kind", "") not in ("wide_interval", *notes)])
    if res.report.get("auto"):
        print_leaderboard(res.report["auto"])
    v = res.report.get("validation") or {}
    h = res.report.get("headline") or {}
    print_headline(res.report)
    print_validation(v, "without the unknown check (top-1): " if h.get("unknown_check") else None,
                     warn=not h.get("warning"))
    print_report(res.report, title=f"validation: {v.get('description', v) if isinstance(v, dict) else v} "
                 f"(top-1, without the unknown check)")
    t = res.timings
    err.print(f"embeddings: {t['cache_hits']} cached, {t['cache_misses']} computed in {t['embed_s']:.1f} s; "
              f"fit {t['fit_s']:.1f} s; total {t['total_s']:.1f} s", highlight=False)
    out.print(f"[bold green]model written:[/] {res.model_path}  (report {res.report_path}"
              + (f", {', '.join(str(p) for p in res.plots)}" if res.plots else "") + ")", highlight=False)


@handle_errors
def classify(
    model: Path = typer.Argument(..., help="A model file from `faceforge train`."),
    paths: list[Path] = typer.Argument(..., help="Images, folders and videos."),
    top_k: int = typer.Option(3, "--top-k", help="Labels per face."),
    annotate: Optional[Path] = typer.Option(None, "--annotate", help="Save images with labelled boxes here."),
    jsonl: Optional[Path] = typer.Option(None, "--jsonl", help="Write one JSON record per image/frame here."),
    every: int = typer.Option(1, help="For videos: keep every n-th frame."),
    workers: int = typer.Option(0, help="Worker processes (0: one per core)."),
    engine: Optional[str] = engine_option(),
    ray_address: Optional[str] = ray_address_option(),
) -> None:
    """Classify every face in every image: top-k labels with scores (or 'unknown')."""
    from faceforge.tasks import classify_files

    skipped: list[tuple[str, str]] = []
    results = classify_files(model, paths, top_k=top_k, annotate=annotate, every=every, workers=workers_arg(workers),
                             progress="classify", skipped=skipped, engine=engine_arg(engine, ray_address, workers))
    write_records(results, lambda f: record(f, flatten=f.meta["model"]), jsonl, skipped, "classified",
                  protect=[*paths, model])


@handle_errors
def evaluate(
    model: Path = typer.Argument(..., help="A model file from `faceforge train`."),
    data: Path = typer.Argument(..., help="Labelled test data: class sub-folders or a CSV."),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write the report as JSON here."),
    workers: int = typer.Option(0),
    engine: Optional[str] = engine_option(),
    ray_address: Optional[str] = ray_address_option(),
) -> None:
    """Measure a model on labelled test data: accuracy, balanced accuracy, per class, confusion matrix."""
    from faceforge.sinks import atomic_write, check_output
    from faceforge.train import evaluate as _evaluate

    if report:
        check_output(report, [model, data], what="report")
    rep = _evaluate(model, data, workers=workers_arg(workers), engine=engine_arg(engine, ray_address, workers))
    h = rep.get("headline")
    if h and h.get("accuracy") is not None:  # what users get first; the head alone below
        out.print(f"[bold]{model.name} on {data}: {h['text']}[/]", highlight=False)
    print_report(rep, title=f"{model.name} on {data} (top-1 on the known classes, without the unknown check)"
                 if h else f"{model.name} on {data}")
    if report:
        atomic_write(report, json.dumps(rep, indent=2, default=str).encode())


# -- reports --------------------------------------------------------------------------------
def print_problems(problems: list[Any], limit: int = 15) -> None:
    order = {"error": 0, "warning": 1, "info": 2}
    shown = sorted(problems, key=lambda p: order.get(getattr(p, "severity", "info"), 3))
    for p in shown[:limit]:
        colour = {"error": "red", "warning": "yellow"}.get(p.severity, "dim")
        err.print(f"[{colour}]{p.severity}[/] {p.message}", highlight=False)
    if len(shown) > limit:
        err.print(f"... and {len(shown) - limit} more (see the report JSON)", highlight=False)


def print_leaderboard(auto: dict[str, Any], limit: int = 20) -> None:
    """The feature search's table: every (embedder, head) scored, best first, and the choice."""
    metric = auto.get("metric", "balanced_accuracy")
    pct = metric != "mae"
    t = Table(title=f"feature search leaderboard ({auto.get('how', '')}; {auto.get('seconds', 0):.1f} s)")
    for c in ("embedder", "head", metric.replace("_", " "), "95% interval", "photos", ""):
        t.add_column(c, justify="left" if c in ("embedder", "head", "") else "right", no_wrap=c == "embedder")
    chosen = auto.get("chosen") or {}

    def f(x: float) -> str:
        return f"{x:.1%}" if pct else f"{x:.2f}"

    for r in auto.get("leaderboard", [])[:limit]:
        ci = r.get("ci95")
        mark = "chosen" if (r["embedder"], r["head"]) == (chosen.get("embedder"), chosen.get("head")) else ""
        t.add_row(r["embedder"], r["head"], f(r["score"]), f"{f(ci[0])}-{f(ci[1])}" if ci else "",
                  str(r.get("photos", "")), mark)
    out.print(t)
    out.print(f"chosen: --embedder {chosen.get('embedder')} --head {chosen.get('head')}", highlight=False)


def print_headline(report: dict[str, Any]) -> None:
    """What users get (after the unknown check, validated fold by fold), with its denominators."""
    h = report.get("headline")
    if h and h.get("text"):
        out.print(f"[bold]what you get: {h['text']}[/]", highlight=False)
        if h.get("warning"):
            err.print(f"[yellow]warning[/] {h['warning'][0].upper() + h['warning'][1:]}", highlight=False)


def print_validation(v: Any, prefix: str | None = "", warn: bool = True) -> None:
    """The head alone: its score with interval and denominator, and the wide-interval warning.

    Args:
        v: the report's ``validation``.
        prefix: printed before the score; ``None`` when the headline already said it all (no
            unknown check: the headline is this score), then only the warning is printed.
        warn: print the wide-interval warning (not when the headline printed its own).
    """
    if not isinstance(v, dict):
        return
    from faceforge.train.validation import headline

    if prefix is not None or "mean" not in v:
        out.print(f"{prefix or ''}{headline(v)}", highlight=False)
    if warn and v.get("warning"):
        err.print(f"[yellow]warning[/] {v['warning'][0].upper() + v['warning'][1:]}", highlight=False)


def print_report(report: dict[str, Any], title: str = "") -> None:
    if "mae" in report:
        out.print(f"{title}\nMAE {report['mae']:.2f}  RMSE {report.get('rmse', float('nan')):.2f}  "
                  f"R2 {report.get('r2', float('nan')):.3f}", highlight=False)
        _print_curve(report)
        return
    if "accuracy" in report:
        _print_table(report, title)
    _print_unknown(report)
    _print_curve(report)


def _print_table(report: dict[str, Any], title: str) -> None:
    t = Table(title=f"{title}: accuracy {report['accuracy']:.1%}, balanced {report['balanced_accuracy']:.1%}"
              + (f", log loss {report['log_loss']:.3f}" if report.get("log_loss") is not None else ""))
    for c in ("class", "precision", "recall", "F1", "support"):
        t.add_column(c, justify="right" if c != "class" else "left")
    for name, m in report.get("per_class", {}).items():
        t.add_row(name, f"{m['precision']:.2f}", f"{m['recall']:.2f}", f"{m['f1']:.2f}", str(m["support"]))
    out.print(t)


def _print_unknown(report: dict[str, Any]) -> None:
    u = report.get("unknown") or {}
    if "disabled" in u:
        out.print(f"rule: {u.get('rule', 'attributes')}; unknown faces: off. {u['disabled']}", highlight=False)
    elif u:
        if u.get("rule"):
            out.print(f"rule: {u['rule']} ({u.get('why', '')})", highlight=False)
        if u.get("negatives"):
            out.print(f"known: {', '.join(u['known'])}; negatives: {', '.join(u['negatives'])}", highlight=False)
        trials = ""
        if u.get("impostor_trials") is not None:
            trials = (f" of {u['impostor_trials']} stranger trials (each class in turn left out), FRR {u['frr']:.1%} "
                      f"of {u['genuine_trials']} held-out known faces")
        out.print(f"unknown faces: threshold {u['threshold']:.3f} for a {u['target_far']:.1%} false-accept "
                  f"rate (measured FAR {u['far']:.1%}" + (trials or f", FRR {u['frr']:.1%}") + ")", highlight=False)
    if "open_set" in report:
        o = report["open_set"]
        line = f"with the unknown check: accuracy {o['accuracy']:.1%} over {o['known_faces'] + o['strangers']} faces"
        if o.get("known_rejected") is not None:
            line += f"; known faces called {o['rejected_label']}: {o['known_rejected']:.1%} of {o['known_faces']}"
        if o.get("strangers_rejected") is not None:
            line += f"; strangers called {o['rejected_label']}: {o['strangers_rejected']:.1%} of {o['strangers']}"
        out.print(line, highlight=False)


def _print_curve(report: dict[str, Any]) -> None:
    if report.get("learning_curve"):
        c = report["learning_curve"]
        pts = ", ".join(f"{n:.0f}: {np.mean(v):.3f}" for n, v in zip(c["train_images"], c["validation"]))
        folds = f", mean over {c['folds']} folds" if c.get("folds", 1) > 1 else ""
        out.print(f"learning curve ({c['metric']} by training images{folds}): {pts}", highlight=False)

