"""The ``faceforge`` command line: a thin layer over the Python API."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from faceforge.errors import FaceforgeError, ParameterError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="faceforge: detect, align and embed faces; train and run face classifiers.",
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _print_skipped(skipped: list[tuple[str, str]]) -> None:
    """Report files that were skipped, each with its reason (which usually names the file)."""
    for path, why in skipped:
        err.print(f"[yellow]skipped[/] {why if path in why else f'{path}: {why}'}", highlight=False)


def _fail(e: Exception) -> None:
    err.print(f"[bold red]error:[/] {e}", highlight=False)
    raise typer.Exit(2)


# ---------------------------------------------------------------------------------------------
@app.command()
def models(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List every pretrained model, the package that ships it, its licence, and whether it is installed."""
    from faceforge.registry import is_installed, list_models

    rows = [dict(name=s.name, task=s.task, installed=is_installed(s), package=s.package, license=s.license,
                 file=s.file or "(compiled in)", sha256=s.sha256, install=s.install, description=s.description)
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


# ---------------------------------------------------------------------------------------------
class _DetectTask:
    """Per-image work of ``faceforge detect`` (runs in worker processes)."""

    def __init__(self, detector: str, min_score: float, crops: Optional[Path], annotate: Optional[Path],
                 crop_size: int, crop_template: str, protect: list[str]) -> None:
        self.detector, self.min_score = detector, min_score
        self.crops, self.annotate = crops, annotate
        self.crop_size, self.crop_template = crop_size, crop_template
        self.protect = protect

    def __call__(self, image: np.ndarray, item: Any) -> dict[str, Any]:
        from faceforge.align import align_faces
        from faceforge.pipeline import FaceFinder
        from faceforge.sinks import annotate, output_name, save_image

        t0 = time.perf_counter()
        faces = FaceFinder(self.detector, detector_options={"min_score": self.min_score}).find(image)
        ms = (time.perf_counter() - t0) * 1000
        stem = output_name(item.source) + (f"_f{item.index:06d}" if item.index else "")
        if self.crops is not None and len(faces):
            if self.crop_template == "margin":
                chips = align_faces(image, faces, "margin", self.crop_size, margin=1.4)
            else:
                chips = align_faces(image, faces, self.crop_template, self.crop_size)
            for i, chip in enumerate(chips):
                save_image(self.crops / f"{stem}_face{i}.png", chip, self.protect)
        if self.annotate is not None:
            save_image(self.annotate / f"{stem}.jpg", annotate(image, faces), self.protect)
        return {"file": item.source, "frame": item.index, "width": image.shape[1], "height": image.shape[0],
                "detector": self.detector, "ms": round(ms, 2), "faces": faces.to_dicts()}


@app.command()
def detect(
    paths: list[Path] = typer.Argument(..., help="Images, folders (searched recursively) and videos."),
    detector: str = typer.Option("photo", "--detector", "-d",
                                 help="photo (= yunet), live (= blazeface.full), yunet, blazeface.short, "
                                      "blazeface.full, mtcnn, haar."),
    min_score: float = typer.Option(0.5, help="Drop faces scoring below this (0-1)."),
    jsonl: Optional[Path] = typer.Option(None, "--jsonl", help="Write one JSON record per image/frame here."),
    save_crops: Optional[Path] = typer.Option(None, "--save-crops", help="Save a crop of every face in this folder."),
    crop_size: int = typer.Option(112, help="Side of saved crops in pixels."),
    crop_template: str = typer.Option("arcface112", help="arcface112 / dlib150 (aligned) or margin (box x1.4)."),
    annotate: Optional[Path] = typer.Option(None, "--annotate", help="Save images with boxes drawn in this folder."),
    every: int = typer.Option(1, help="For videos: keep every n-th frame."),
    workers: int = typer.Option(0, help="Worker processes (0: one per core)."),
) -> None:
    """Find faces (box, score, 5 landmarks) in images, folders and videos.

    Unreadable files are reported and skipped; inputs are only read, never modified.
    """
    from faceforge.detectors import get_detector, resolve_detector_name

    try:
        get_detector(detector)  # fail fast on a bad name or a missing package
        detector = resolve_detector_name(detector)
        _run_face_task(lambda files: _DetectTask(detector, min_score, save_crops, annotate, crop_size, crop_template,
                                                 files), paths, every, workers, jsonl, "detect", "")
    except FaceforgeError as e:
        _fail(e)


# ---------------------------------------------------------------------------------------------
class _EmbedTask:
    def __init__(self, detector: str, embedder: str, whole_image: bool, all_faces: bool) -> None:
        self.detector, self.embedder = detector, embedder
        self.whole_image, self.all_faces = whole_image, all_faces

    def __call__(self, image: np.ndarray, item: Any) -> dict[str, Any]:
        pipe = _pipeline(self.detector, self.embedder, self.whole_image)
        faces = pipe.embed(image, main_only=not self.all_faces)
        return {"file": item.source, "frame": item.index, "faces": faces.to_dicts(),
                "embedding": faces.embedding, "whole_image": bool(faces.whole_image.any())}


_PIPES: dict[tuple, Any] = {}


def _pipeline(detector: str, embedder: str, whole_image: bool):
    from faceforge.pipeline import FacePipeline

    key = (detector, embedder, whole_image)
    if key not in _PIPES:
        _PIPES[key] = FacePipeline(detector, embedder, whole_image_fallback=whole_image)
    return _PIPES[key]


@app.command()
def embed(
    paths: list[Path] = typer.Argument(..., help="Images, folders and videos."),
    output: Path = typer.Option(..., "-o", "--output", help="Output .npz (arrays) or .jsonl file."),
    embedder: str = typer.Option("dlib-resnet", "--embedder", "-e", help="dlib-resnet (identity) or effnet-lite0."),
    detector: str = typer.Option("photo", "--detector", "-d", help="photo (= yunet), live, or a detector name."),
    all_faces: bool = typer.Option(False, "--all-faces", help="Embed every face, not only the largest."),
    whole_image: bool = typer.Option(False, "--whole-image", help="Use the whole image when no face is found (face crops)."),
    workers: int = typer.Option(0, help="Worker processes (0: one per core)."),
) -> None:
    """Embed faces: one vector per face, saved as .npz (embeddings, files, boxes) or .jsonl."""
    from faceforge.batch import count_items, iter_items, run_task
    from faceforge.embedders import get_embedder
    from faceforge.sources import expand_paths
    from faceforge.sinks import atomic_write

    try:
        if output.suffix.lower() not in (".npz", ".jsonl"):
            raise FaceforgeError(f"--output must end in .npz or .jsonl, got {output.name!r}")
        emb = get_embedder(embedder)
        skipped: list[tuple[str, str]] = []
        files = expand_paths(paths, skipped=skipped)
        total = count_items(files)
        items = iter_items(files, skipped=skipped)
        recs: list[dict[str, Any]] = []
        task = _EmbedTask(detector, embedder, whole_image, all_faces)
        for res in run_task(task, items, workers or None, progress=f"embed ({embedder})", total=total):
            if res.error:
                skipped.append((res.item.source, res.error))
            elif not res.value["faces"]:
                skipped.append((res.item.source, "no face found (try --whole-image for face crops)"))
            else:
                recs.append(res.value)
        rows = [(r, i) for r in recs for i in range(len(r["faces"]))]
        if output.suffix.lower() == ".jsonl":
            lines = [json.dumps({"file": r["file"], "frame": r["frame"], "face": i, **r["faces"][i],
                                 "embedding": [round(float(v), 6) for v in r["embedding"][i]]}) for r, i in rows]
            atomic_write(output, ("\n".join(lines) + ("\n" if lines else "")).encode())
        else:
            import io

            buf = io.BytesIO()
            np.savez(buf, embeddings=np.array([r["embedding"][i] for r, i in rows], np.float32).reshape(-1, emb.dim),
                     files=np.array([r["file"] for r, _ in rows]), frames=np.array([r["frame"] for r, _ in rows]),
                     boxes=np.array([r["faces"][i]["box"] for r, i in rows], np.float32).reshape(-1, 4),
                     whole_image=np.array([r["whole_image"] for r, _ in rows]), embedder=np.array(embedder))
            atomic_write(output, buf.getvalue())
        _print_skipped(skipped)
        err.print(f"{len(rows)} embedding(s) of {emb.dim} dims from {len(recs)} image(s) -> {output}; "
                  f"{len(skipped)} skipped", highlight=False)
    except FaceforgeError as e:
        _fail(e)


# ---------------------------------------------------------------------------------------------
@app.command()
def verify(
    a: Path = typer.Argument(..., help="First image."),
    b: Path = typer.Argument(..., help="Second image."),
    threshold: Optional[float] = typer.Option(None, help="Distance threshold (default: the embedder's, 0.6)."),
    detector: str = typer.Option("photo", "--detector", "-d", help="photo (= yunet), live, or a detector name."),
    whole_image: bool = typer.Option(False, "--whole-image", help="Use the whole image when no face is found."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Are the main faces of two images the same person? Prints the distance and the threshold."""
    from faceforge.pipeline import FacePipeline, verify as _verify

    try:
        v = _verify(a, b, threshold, FacePipeline(detector, "dlib-resnet", whole_image_fallback=whole_image))
    except FaceforgeError as e:
        _fail(e)
        return
    if as_json:
        print(json.dumps(v.to_dict()))
    else:
        verdict = "[green]SAME person[/]" if v.same else "[red]DIFFERENT people[/]"
        out.print(f"{verdict}: distance {v.distance:.4f} {'<=' if v.same else '>'} threshold {v.threshold} "
                  f"({v.embedder})", highlight=False)


# ---------------------------------------------------------------------------------------------
@app.command()
def train(
    data: Path = typer.Argument(..., help="Folder with one sub-folder of photos per class, or a CSV of file,label."),
    output: Path = typer.Option(..., "-o", "--output", help="Model file to write (.ffm)."),
    embedder: str = typer.Option("dlib-resnet", "--embedder", "-e", help="dlib-resnet (identity) or effnet-lite0."),
    head: Optional[str] = typer.Option(None, help="logreg (default), svm, knn, mlp; ridge for numeric labels."),
    detector: str = typer.Option("photo", "--detector", "-d"),
    crops: str = typer.Option("auto", help="auto (whole image when no face is found), always (photos are face crops), never."),
    augment: bool = typer.Option(False, "--augment", help="Add flipped/rotated/brightened copies (cached)."),
    val: float = typer.Option(0.2, help="Fraction held out for the validation report."),
    folds: int = typer.Option(0, help="k-fold cross-validation instead of one hold-out (k >= 2)."),
    target_far: float = typer.Option(0.01, help="False-accept rate of the 'unknown' check (0 disables)."),
    label_column: Optional[str] = typer.Option(None, help="CSV: the label column (default: the second)."),
    path_column: Optional[str] = typer.Option(None, help="CSV: the file column (default: the first)."),
    image_root: Optional[Path] = typer.Option(None, help="CSV: folder the file paths are relative to."),
    known: Optional[list[str]] = typer.Option(None, "--known", help="A class that is a person to recognise; the "
                                              "other classes are negatives (e.g. --known me beside a not_me folder). "
                                              "Repeat for several. Default: classes named not_*, others, negatives or "
                                              "unknown are the negatives."),
    curve: bool = typer.Option(True, "--curve/--no-curve", help="Plot a learning curve (one extra fit)."),
    seed: int = typer.Option(0),
    workers: int = typer.Option(0, help="Worker processes (0: one per core)."),
) -> None:
    """Train a face classifier on cached embeddings; writes the model, a report, a confusion matrix and a learning curve."""
    from faceforge.train import train as _train

    crop_mode: Any = {"always": True, "never": False}.get(crops, crops)
    try:
        res = _train(data, output, embedder=embedder, head=head, detector=detector, crops=crop_mode,
                     augment=augment, val=val, folds=folds, target_far=target_far or None, seed=seed,
                     label_column=label_column, path_column=path_column, image_root=image_root,
                     workers=workers or None, known=known or None, learning_curve=curve)
    except FaceforgeError as e:
        _fail(e)
        return
    _print_problems(res.problems)
    _print_report(res.report, title=f"validation: {res.report.get('validation')}")
    t = res.timings
    err.print(f"embeddings: {t['cache_hits']} cached, {t['cache_misses']} computed in {t['embed_s']:.1f} s; "
              f"fit {t['fit_s']:.1f} s; total {t['total_s']:.1f} s", highlight=False)
    out.print(f"[bold green]model written:[/] {res.model_path}  (report {res.report_path}"
              + (f", {', '.join(str(p) for p in res.plots)}" if res.plots else "") + ")", highlight=False)


def _print_problems(problems: list[Any], limit: int = 15) -> None:
    order = {"error": 0, "warning": 1, "info": 2}
    shown = sorted(problems, key=lambda p: order.get(getattr(p, "severity", "info"), 3))
    for p in shown[:limit]:
        colour = {"error": "red", "warning": "yellow"}.get(p.severity, "dim")
        err.print(f"[{colour}]{p.severity}[/] {p.message}", highlight=False)
    if len(shown) > limit:
        err.print(f"... and {len(shown) - limit} more (see the report JSON)", highlight=False)


def _print_report(report: dict[str, Any], title: str = "") -> None:
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
    if "unknown" in report and "disabled" in report["unknown"]:
        out.print(f"unknown faces: off. {report['unknown']['disabled']}", highlight=False)
    elif "unknown" in report:
        u = report["unknown"]
        if u.get("negatives"):
            out.print(f"known: {', '.join(u['known'])}; negatives: {', '.join(u['negatives'])} "
                      f"({u.get('known_because', '')})", highlight=False)
        out.print(f"unknown faces: threshold {u['threshold']:.3f} for a {u['target_far']:.1%} false-accept "
                  f"rate (measured FAR {u['far']:.1%}, FRR {u['frr']:.1%})", highlight=False)
    if "open_set" in report:
        o = report["open_set"]
        line = f"with the unknown check: accuracy {o['accuracy']:.1%} over {o['known_faces'] + o['strangers']} faces"
        if o.get("known_rejected") is not None:
            line += f"; known faces called {o['rejected_label']}: {o['known_rejected']:.1%}"
        if o.get("strangers_rejected") is not None:
            line += f"; strangers called {o['rejected_label']}: {o['strangers_rejected']:.1%} of {o['strangers']}"
        out.print(line, highlight=False)


def _print_curve(report: dict[str, Any]) -> None:
    if report.get("learning_curve"):
        c = report["learning_curve"]
        pts = ", ".join(f"{n:.0f}: {np.mean(v):.3f}" for n, v in zip(c["train_images"], c["validation"]))
        out.print(f"learning curve ({c['metric']} by training images): {pts}", highlight=False)


class _ClassifyTask:
    def __init__(self, model: str, top_k: int, annotate: Optional[Path], protect: list[str]) -> None:
        self.model, self.top_k, self.annotate, self.protect = model, top_k, annotate, protect
        self._clf = None

    def __call__(self, image: np.ndarray, item: Any) -> dict[str, Any]:
        from faceforge.sinks import annotate, output_name, save_image
        from faceforge.train import load_classifier

        if self._clf is None:
            self._clf = load_classifier(self.model)
        res = self._clf.classify(image, self.top_k)
        faces = res.to_dicts(flatten=self._clf.name)
        if self.annotate is not None:
            labels = [f"{p.label} {p.score:.2f}" for p in res.predictions[self._clf.name]]
            img = annotate(image, res, labels) if len(res) else image
            stem = output_name(item.source) + (f"_f{item.index:06d}" if item.index else "")
            save_image(self.annotate / f"{stem}.jpg", img, self.protect)
        return {"file": item.source, "frame": item.index, "faces": faces}


@app.command()
def classify(
    model: Path = typer.Argument(..., help="A model file from `faceforge train`."),
    paths: list[Path] = typer.Argument(..., help="Images, folders and videos."),
    top_k: int = typer.Option(3, "--top-k", help="Labels per face."),
    annotate: Optional[Path] = typer.Option(None, "--annotate", help="Save images with labelled boxes here."),
    jsonl: Optional[Path] = typer.Option(None, "--jsonl", help="Write one JSON record per image/frame here."),
    every: int = typer.Option(1, help="For videos: keep every n-th frame."),
    workers: int = typer.Option(0, help="Worker processes (0: one per core)."),
) -> None:
    """Classify every face in every image: top-k labels with scores (or 'unknown')."""
    from faceforge.train import load_classifier

    try:
        load_classifier(model)  # fail fast: bad file, newer format, missing embedder
        _run_face_task(lambda files: _ClassifyTask(str(model), top_k, annotate, files + [str(model)]),
                       paths, every, workers, jsonl, "classify", "classified")
    except FaceforgeError as e:
        _fail(e)


def _run_face_task(make_task: Any, paths: list[Path], every: int, workers: int, jsonl: Optional[Path],
                   verb: str, done: str) -> None:
    """Run a per-image task over images, folders and videos on every core; JSON lines out.

    ``make_task(files)`` builds the picklable task (``files``: the inputs, which outputs must
    never overwrite). Video frames are decoded lazily, as the workers need them.
    """
    from faceforge.batch import count_items, iter_items, run_task
    from faceforge.sinks import JsonlWriter
    from faceforge.sources import expand_paths

    skipped: list[tuple[str, str]] = []
    files = expand_paths(paths, skipped=skipped)
    task = make_task([str(f) for f in files])
    writer = JsonlWriter(jsonl) if jsonl else None
    n_img = n_faces = 0
    try:
        for res in run_task(task, iter_items(files, every=every, skipped=skipped), workers or None,
                            progress=verb, total=count_items(files, every=every)):
            if res.error:
                skipped.append((res.item.source, res.error))
                continue
            n_img += 1
            n_faces += len(res.value["faces"])
            if writer:
                writer.write(res.value)
            else:
                out.print_json(json.dumps(res.value)) if sys.stdout.isatty() else print(json.dumps(res.value))
    finally:
        if writer:
            writer.close()
    _print_skipped(skipped)
    done = f" {done}" if done else ""
    err.print(f"{n_faces} face(s){done} in {n_img} image(s)/frame(s); {len(skipped)} skipped"
              + (f"; results in {jsonl}" if jsonl else ""), highlight=False)


@app.command()
def evaluate(
    model: Path = typer.Argument(..., help="A model file from `faceforge train`."),
    data: Path = typer.Argument(..., help="Labelled test data: class sub-folders or a CSV."),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write the report as JSON here."),
    workers: int = typer.Option(0),
) -> None:
    """Measure a model on labelled test data: accuracy, balanced accuracy, per class, confusion matrix."""
    from faceforge.sinks import atomic_write
    from faceforge.train import evaluate as _evaluate

    try:
        rep = _evaluate(model, data, workers=workers or None)
    except FaceforgeError as e:
        _fail(e)
        return
    _print_report(rep, title=f"{model.name} on {data}")
    if report:
        atomic_write(report, json.dumps(rep, indent=2, default=str).encode())


def _face_models(models: list[str], gallery: Optional[tuple[str, str]]) -> dict[str, Any]:
    """``{name: model}`` for model files (by file stem) and a gallery (``"identity"``)."""
    from faceforge.gallery import Gallery

    out: dict[str, Any] = {}
    for m in models:
        if Path(m).stem in out:
            raise ParameterError(f"Two models are called {Path(m).stem!r}; rename one of the files.")
        out[Path(m).stem] = m
    if gallery is not None:
        if not Path(gallery[0]).is_file():
            raise ParameterError(f"{gallery[0]}: no such gallery file; create it with `faceforge gallery enrol`.")
        out["identity"] = Gallery(gallery[0], gallery[1])
    return out


class _AnalyzeTask:
    def __init__(self, attributes: list[str], models: list[str], detector: str, top_k: int,
                 annotate: Optional[Path], protect: list[str], gallery: Optional[tuple[str, str]] = None) -> None:
        self.attributes, self.models, self.detector, self.top_k = attributes, models, detector, top_k
        self.annotate, self.protect, self.gallery = annotate, protect, gallery
        self._an = None

    def __call__(self, image: np.ndarray, item: Any) -> dict[str, Any]:
        from faceforge.attributes import Analyzer
        from faceforge.sinks import annotate, output_name, save_image

        if self._an is None:
            self._an = Analyzer(self.attributes, _face_models(self.models, self.gallery), detector=self.detector,
                                top_k=self.top_k)
        res = self._an.analyze(image)
        if self.annotate is not None:
            img = annotate(image, res, [r.label_text() for r in res.rows()]) if len(res) else image
            stem = output_name(item.source) + (f"_f{item.index:06d}" if item.index else "")
            save_image(self.annotate / f"{stem}.jpg", img, self.protect)
        return {"file": item.source, "frame": item.index, "faces": res.to_dicts()}


@app.command()
def analyze(
    paths: list[Path] = typer.Argument(..., help="Images, folders and videos."),
    attributes: str = typer.Option("gender,age,emotion", "--attributes", "-a",
                                   help="Built-in attributes, comma-separated (gender, age, emotion; '' for none)."),
    model: Optional[list[Path]] = typer.Option(None, "--model", "-m", help="Your own model file(s) from `faceforge train` "
                                               "(e.g. identity); reported under the file name."),
    detector: str = typer.Option("photo", "--detector", "-d"),
    top_k: int = typer.Option(3, "--top-k", help="Labels per face and model."),
    annotate: Optional[Path] = typer.Option(None, "--annotate", help="Save images with labelled boxes here."),
    jsonl: Optional[Path] = typer.Option(None, "--jsonl", help="Write one JSON record per image/frame here."),
    every: int = typer.Option(1, help="For videos: keep every n-th frame."),
    workers: int = typer.Option(0, help="Worker processes (0: one per core)."),
    gallery: Optional[Path] = typer.Option(None, "--gallery", "-g", help="A gallery file (`faceforge gallery enrol`): "
                                           "who each face is, reported as 'identity'."),
    gallery_name: str = typer.Option("default", "--gallery-name", help="The gallery's name inside the file."),
) -> None:
    """Gender, age and emotion (and your own models, and who it is) for every face in every image or frame."""
    from faceforge.attributes import Analyzer

    attrs = [a.strip() for a in attributes.split(",") if a.strip()]
    models = [str(m) for m in (model or [])]
    gal = (str(gallery), gallery_name) if gallery else None
    try:
        Analyzer(attrs, _face_models(models, gal), detector=detector)  # fail fast: unknown attribute, bad model file
        _run_face_task(lambda files: _AnalyzeTask(attrs, models, detector, top_k, annotate,
                                                  files + models + ([str(gallery)] if gallery else []), gal),
                       paths, every, workers, jsonl, "analyze", "analysed")
    except FaceforgeError as e:
        _fail(e)


@app.command()
def live(
    source: str = typer.Option("0", "--source", "-s", help="Webcam index, video file, stream URL (rtsp://, http://), "
                                                        "image folder or glob."),
    model: Optional[list[Path]] = typer.Option(None, "--model", "-m", help="Model file(s) from `faceforge train`."),
    attributes: str = typer.Option("", "--attributes", "-a", help="Built-in attributes, comma-separated "
                                                                  "(gender, age, emotion)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the annotated video here (.mp4/.avi)."),
    jsonl: Optional[Path] = typer.Option(None, "--jsonl", help="One JSON record per frame: track id, box, labels."),
    show: bool = typer.Option(False, "--show", help="Open a window (needs an OpenCV build with a GUI)."),
    mjpeg: Optional[int] = typer.Option(None, "--mjpeg", help="Serve an MJPEG stream on this port (http://localhost:PORT/)."),
    detector: str = typer.Option("live", "--detector", "-d"),
    detect_every: int = typer.Option(1, "--detect-every", help="Detect on every n-th frame; tracking in between."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", help="Stop after this many frames."),
    realtime: bool = typer.Option(False, "--realtime", help="Play files at their own speed (drop frames if slower)."),
    tile: bool = typer.Option(False, "--tile", help="BlazeFace: also detect on tiles (small faces in large frames; slower)."),
    tile_every: int = typer.Option(0, "--tile-every", help="Tile every n-th detection only (e.g. 15: small faces in "
                                                          "1080p at about 30 FPS)."),
    gallery: Optional[Path] = typer.Option(None, "--gallery", "-g", help="A gallery file: who each face is."),
    gallery_name: str = typer.Option("default", "--gallery-name", help="The gallery's name inside the file."),
) -> None:
    """Live video: faces tracked with stable ids, labels per face that do not flicker, classification off the capture thread."""
    from faceforge.attributes import load_attribute
    from faceforge.live import run_live
    from faceforge.train import load_classifier

    try:
        models: dict[str, Any] = {}
        for a in [a.strip() for a in attributes.split(",") if a.strip()]:
            models[a] = load_attribute(a)
        for m in model or []:
            models[m.stem] = load_classifier(m)
        if gallery is not None:
            models.update(_face_models([], (str(gallery), gallery_name)))
        if not models and not (output or jsonl or show or mjpeg is not None):
            raise ParameterError("Nothing to do: give --model and/or --attributes, and an output (--output, "
                                 "--jsonl, --show or --mjpeg).")
        if mjpeg is not None:
            err.print(f"MJPEG stream on http://127.0.0.1:{mjpeg}/", highlight=False)
        stats = run_live(int(source) if source.isdigit() else source, models, detector=detector,
                         detect_every=detect_every, output=output, jsonl=jsonl, show=show, mjpeg=mjpeg,
                         max_frames=max_frames, realtime=realtime, drop=True if realtime else None,
                         detector_options={"tile": True} if tile else None, tile_every=tile_every)
    except FaceforgeError as e:
        _fail(e)
        return
    d = stats.to_dict()
    err.print(f"{d['frames']} frames in {d['seconds']:.1f} s ({d['fps']:.1f} FPS), {d['dropped']} dropped, "
              f"{d['tracks']} tracks, {d['classifications']} classifications, label changes {d['label_flips']}"
              + (f"; video {output}" if output else "") + (f"; results in {jsonl}" if jsonl else ""), highlight=False)


@app.command()
def cluster(
    paths: list[Path] = typer.Argument(..., help="Unlabelled photos: files, folders, archives, videos."),
    output: Path = typer.Option(..., "-o", "--output", help="New folder for the groups (person_001/, ..., noise/)."),
    threshold: float = typer.Option(0.55, help="Average identity distance below which groups merge (lower: stricter)."),
    min_size: int = typer.Option(2, "--min-size", help="Smaller groups go to noise/."),
    detector: str = typer.Option("photo", "--detector", "-d"),
    workers: int = typer.Option(0, help="Worker processes (0: one per core)."),
) -> None:
    """Group the faces of unlabelled photos by person: rename the folders, then `faceforge train` them."""
    from faceforge.bootstrap import cluster_faces, write_groups

    try:
        out_dir = Path(output)
        if out_dir.exists() and any(out_dir.iterdir()):
            raise ParameterError(f"{out_dir} is not empty; choose a new or empty folder for the groups.")
        res = cluster_faces(paths, threshold=threshold, min_size=min_size, detector=detector, workers=workers or None)
        write_groups(res, out_dir, protect=[str(p) for p in paths])
    except FaceforgeError as e:
        _fail(e)
        return
    _print_skipped(res.skipped)
    sizes = res.sizes()
    noise = int((res.labels < 0).sum())
    out.print(f"{len(res.faces)} faces -> {res.n_groups} group(s) of sizes {sorted(sizes.values(), reverse=True)[:20]}"
              f"{' ...' if len(sizes) > 20 else ''}, {noise} in noise/; written to {out_dir} (clusters.csv lists "
              f"every crop and its source). Rename the folders after the people, then: faceforge train {out_dir} "
              f"-o people.ffm", highlight=False)


@app.command()
def autolabel(
    paths: list[Path] = typer.Argument(..., help="Unlabelled photos: files, folders, archives, videos."),
    model: Path = typer.Option(..., "--model", "-m", help="The teacher: a model file from `faceforge train`."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for class folders of crops, manifest.csv, summary.json."),
    min_confidence: float = typer.Option(0.6, "--min-confidence", help="Keep faces labelled with at least this score."),
    balance: str = typer.Option("none", help="none, or cap: at most as many faces per class as the rarest class has."),
    workers: int = typer.Option(0, help="Worker processes (0: one per core)."),
) -> None:
    """Label every face of unlabelled photos with a teacher model; resumes after an interruption."""
    from faceforge.bootstrap.autolabel import autolabel as _autolabel

    try:
        res = _autolabel(model, paths, output, min_confidence=min_confidence, balance=balance, workers=workers or None)
    except FaceforgeError as e:
        _fail(e)
        return
    _print_skipped(res.skipped)
    t = Table(title=f"{len(res.faces)} faces labelled"
                    + (f" ({res.resumed} images done in an earlier run)" if res.resumed else ""))
    for c in ("class", "predicted", f"kept (>= {min_confidence:g})"):
        t.add_column(c, justify="left" if c == "class" else "right")
    for c, n in res.predicted.items():
        t.add_row(c, str(n), str(res.counts.get(c, 0)))
    out.print(t)
    out.print("confidence: " + ", ".join(f"{k} {v}" for k, v in res.histogram.items()), highlight=False)
    if res.skew is not None and res.skew > 1.5:
        out.print(f"[yellow]class skew {res.skew:.1f}x among kept faces[/]: use --balance cap, or train the student "
                  f"with balanced class weights (the default).", highlight=False)
    out.print(f"written to {output}/ (a folder per class; manifest.csv; summary.json). "
              f"Next: faceforge train {output} -o student.ffm", highlight=False)


@app.command()
def distil(
    pseudo: Path = typer.Argument(..., help="An autolabel output folder (class folders of crops)."),
    output: Path = typer.Option(..., "-o", "--output", help="The student model file (.ffm)."),
    teacher: Optional[Path] = typer.Option(None, "--teacher", help="Default: the model recorded by autolabel."),
    embedder: str = typer.Option("dlib-resnet", "--embedder", "-e"),
    detector: str = typer.Option("live", "--detector", "-d", help="The student's detector (live: fast)."),
    head: Optional[str] = typer.Option(None),
    test: Optional[Path] = typer.Option(None, "--test", help="Labelled test data (folder or CSV) for both models."),
    label_column: Optional[str] = typer.Option(None, help="Test CSV: the label column."),
    image_root: Optional[Path] = typer.Option(None, help="Test CSV: folder the file paths are relative to."),
    workers: int = typer.Option(0),
) -> None:
    """Train a fast student on a teacher's pseudo-labels; report agreement, test accuracy and latency."""
    from faceforge.bootstrap import distil as _distil

    opts = {k: v for k, v in (("label_column", label_column), ("image_root", image_root)) if v is not None}
    try:
        res = _distil(pseudo, output, teacher=teacher, embedder=embedder, detector=detector, head=head, test=test,
                      test_options=opts, workers=workers or None)
    except FaceforgeError as e:
        _fail(e)
        return
    d = res.to_dict()
    lines = [f"student written: {d['model']}"]
    if d["agreement"] is not None:
        lines.append(f"agreement with the teacher (held-out pseudo-labels): {d['agreement']:.1%} "
                     f"(balanced {d['agreement_balanced']:.1%})")
    for name, r in d["test"].items():
        lines.append(f"{name} on {test}: accuracy {r['accuracy']:.1%}, balanced {r['balanced_accuracy']:.1%}")
    if d["latency_ms"]:
        lines.append(f"latency per image: student {d['latency_ms']['student']:.1f} ms, "
                     f"teacher {d['latency_ms']['teacher']:.1f} ms")
    out.print("\n".join(lines), highlight=False)


# ---------------------------------------------------------------------------------------------
gallery_app = typer.Typer(no_args_is_help=True, help="Identity galleries: enrol people from a few photos, then "
                                                      "identify and verify faces (no training).")
app.add_typer(gallery_app, name="gallery")
GALLERY_FILE = typer.Option(Path("gallery.db"), "--file", "-f", help="The gallery file (SQLite; created on first enrol).")
GALLERY_NAME = typer.Option("default", "--name", "-n", help="The gallery's name inside the file.")


def _open_gallery(path: Path, name: str, create: bool = False) -> Any:
    from faceforge.gallery import Gallery, list_galleries

    if not create and name not in list_galleries(path):
        raise ParameterError(f"{path}: no gallery {name!r} there; create it with `faceforge gallery enrol`.")
    return Gallery(path, name)


@gallery_app.command("enrol")
def gallery_enrol(
    person: str = typer.Argument(..., help="The person's name."),
    photos: list[Path] = typer.Argument(..., help="Photos (or folders of photos) of the person."),
    file: Path = GALLERY_FILE, name: str = GALLERY_NAME,
) -> None:
    """Add photos of a person to a gallery (the largest face of each photo)."""
    from faceforge.sources.media import expand_paths

    try:
        skipped: list[tuple[str, str]] = []
        files = expand_paths(photos, videos=False, skipped=skipped)
        _print_skipped(skipped)
        rep = _open_gallery(file, name, create=True).enrol(person, files)
    except FaceforgeError as e:
        _fail(e)
        return
    for p, m in rep.problems:
        err.print(f"[yellow]skipped[/] {p}: {m}", highlight=False)
    for p in rep.several_faces:
        err.print(f"[yellow]note[/] {p}: several faces; the largest was enrolled", highlight=False)
    out.print(f"{person}: {len(rep.added)} photo(s) added, {len(rep.duplicates)} already there, "
              f"{len(rep.problems)} skipped; {rep.faces} face(s) stored in {file}", highlight=False)


@gallery_app.command("list")
def gallery_list(file: Path = GALLERY_FILE, name: str = GALLERY_NAME,
                 as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The people of a gallery and how many faces each has."""
    try:
        people = _open_gallery(file, name).people()
    except FaceforgeError as e:
        _fail(e)
        return
    if as_json:
        out.print_json(json.dumps([p.to_dict() for p in people]))
        return
    t = Table("person", "faces", title=f"gallery {name!r} in {file}")
    for p in people:
        t.add_row(p.name, str(p.faces))
    out.print(t)


@gallery_app.command("identify")
def gallery_identify(
    images: list[Path] = typer.Argument(..., help="Images or folders."),
    file: Path = GALLERY_FILE, name: str = GALLERY_NAME,
    top_k: int = typer.Option(3, "--top-k"),
    jsonl: Optional[Path] = typer.Option(None, "--jsonl", help="Write one JSON record per image here."),
) -> None:
    """Who is each face of each image (or ``unknown``)."""
    from faceforge.sources.media import expand_paths

    try:
        g = _open_gallery(file, name)
        skipped: list[tuple[str, str]] = []
        files = expand_paths(images, videos=False, skipped=skipped)
        _print_skipped(skipped)
        lines = []
        for f in files:
            try:
                res = g.identify(f, top_k)
            except FaceforgeError as e:
                _print_skipped([(str(f), str(e))])
                continue
            for box, m in zip(res.xyxy.tolist(), res.predictions[g.name]):
                out.print(f"{f}: {m.label} (distance {m.distance:.3f}) at {[round(v) for v in box]}", highlight=False)
            if not len(res):
                out.print(f"{f}: no face", highlight=False)
            lines.append(json.dumps({"file": str(f), "faces": res.to_dicts(flatten=g.name)}))
        if jsonl:
            from faceforge._fs import atomic_write

            atomic_write(jsonl, ("\n".join(lines) + "\n").encode())
    except FaceforgeError as e:
        _fail(e)


@gallery_app.command("verify")
def gallery_verify(person: str = typer.Argument(...), image: Path = typer.Argument(...),
                   file: Path = GALLERY_FILE, name: str = GALLERY_NAME) -> None:
    """Is the main face of IMAGE this person? Exit code 0: yes, 1: no."""
    try:
        v = _open_gallery(file, name).verify(image, person)
    except FaceforgeError as e:
        _fail(e)
        return
    out.print(f"{'same' if v.same else 'different'}: distance {v.distance:.3f} (threshold {v.threshold})", highlight=False)
    raise typer.Exit(0 if v.same else 1)


@gallery_app.command("remove")
def gallery_remove(person: str = typer.Argument(...), file: Path = GALLERY_FILE, name: str = GALLERY_NAME) -> None:
    """Delete a person and all their stored faces."""
    try:
        n = _open_gallery(file, name).remove(person)
    except FaceforgeError as e:
        _fail(e)
        return
    out.print(f"removed {person} ({n} face(s))", highlight=False)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; other than loopback needs --api-key."),
    port: int = typer.Option(8000, "--port", "-p", help="TCP port (0: any free port)."),
    home: Optional[Path] = typer.Option(None, "--home", help="Data directory (default $FACEFORGE_HOME or ~/.faceforge)."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="FACEFORGE_API_KEY",
                                          help="Key required on API requests (X-API-Key header)."),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", help="Largest image upload or fetched image."),
    max_request_mb: float = typer.Option(256.0, "--max-request-mb", help="Largest request (a video, or many "
                                                                          "photos to train on)."),
    allow_private_urls: bool = typer.Option(False, "--allow-private-urls",
                                            help="Let image URLs point at private / loopback addresses."),
) -> None:
    """Run the HTTP API and the web page (train from uploads or webcam, live classification in the browser)."""
    from faceforge.service import serve as run

    def ready(url: str) -> None:
        out.print(f"faceforge is running: open [bold]{url}[/] (API docs: {url}docs); Ctrl+C stops it.", highlight=False)

    try:
        run(host, port, home=home, api_key=api_key, on_ready=ready, log_level="warning",
            max_image_mb=max_upload_mb, max_request_mb=max_request_mb, allow_private_urls=allow_private_urls)
    except FaceforgeError as e:
        _fail(e)


@app.command()
def demo(output: Path = typer.Option(Path("out/demo"), "-o", "--output", help="Folder for the results.")) -> None:
    """Analyse the sample photos shipped inside installed packages; write annotated images and JSON."""
    from faceforge.demo import run_demo

    try:
        run_demo(output, console=out)
    except FaceforgeError as e:
        _fail(e)


def main() -> None:
    """Entry point of the ``faceforge`` command."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
