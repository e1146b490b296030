"""``faceforge gallery ...``: enrol people from a few photos, then identify and verify faces."""

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
)
from faceforge.errors import FaceforgeError, ParameterError

gallery_app = typer.Typer(no_args_is_help=True, help="Identity galleries: enrol people from a few photos, then "
                                                      "identify and verify faces (no training).")
GALLERY_FILE = typer.Option(Path("gallery.db"), "--file", "-f",
                            help="The gallery file (SQLite; created on first enrol).")
GALLERY_NAME = typer.Option("default", "--name", "-n", help="The gallery's name inside the file.")
THRESHOLD = typer.Option(None, "--threshold", help="Distance at or below which a face is the person "
                                                   "(wins over --target-far).")
TARGET_FAR = typer.Option(None, "--target-far", help="False-accept rate wanted: the share of strangers taken for "
                                                     "someone enrolled (default 0.01 = 1%; the threshold is "
                                                     "calibrated for it).")
ACCURATE = typer.Option(False, "--accurate",
                        help="Accurate preset (each face and its mirror image embedded and averaged; its own "
                             "thresholds). A gallery keeps the preset it was created with: --accurate on enrol "
                             "creates an accurate gallery; on an existing gallery it must match (without it, "
                             "the gallery's own preset is used).")

#: ``gallery enrol`` embeds this many photos or fewer in its own process (workers cost a start-up).
FEW_PHOTOS = 10


def describe(threshold: float, far: float | None) -> str:
    """``threshold 0.460, expected false-accept rate 1.0%`` (the words every answer prints)."""
    rate = "not calibrated" if far is None else f"{100 * far:.2g}%"
    return f"threshold {threshold:.3f}, expected false-accept rate {rate}"


def _open_gallery(path: Path, name: str, create: bool = False, accurate: bool = False) -> Any:
    """The gallery (``accurate``: it must be, or be created, an ``"accurate"`` one)."""
    from faceforge.gallery import Gallery, list_galleries

    if not create and name not in list_galleries(path):
        raise ParameterError(f"{path}: no gallery {name!r} there; create it with `faceforge gallery enrol`.")
    return Gallery(path, name, quality="accurate" if accurate else None)


@gallery_app.command("enrol")
@handle_errors
def gallery_enrol(
    person: Optional[str] = typer.Argument(None, help="The person's name."),
    photos: Optional[list[Path]] = typer.Argument(None, help="Photos (or folders of photos) of the person."),
    file: Path = GALLERY_FILE, name: str = GALLERY_NAME,
    dataset: Optional[Path] = typer.Option(None, "--from", help="Enrol every class folder of this dataset (e.g. "
                                                                "what `faceforge ingest` fills) as a person, only "
                                                                "the photos not enrolled yet; no PERSON / PHOTOS."),
    workers: int = typer.Option(0, help="Processes (0: one per core). Ten photos or fewer are embedded "
                                        "here unless --workers or --engine is given."),
    engine: Optional[str] = engine_option(),
    ray_address: Optional[str] = ray_address_option(),
    accurate: bool = ACCURATE,
) -> None:
    """Add photos of a person to a gallery (the main face of each photo), or every class of a dataset (--from)."""
    from faceforge.sinks import check_output
    from faceforge.sources.media import expand_paths

    if dataset is not None:
        if person is not None or photos:
            raise ParameterError("--from DATASET enrols the dataset's class folders as people; give no PERSON or "
                                 "PHOTOS with it (or drop --from to enrol one person).")
        _enrol_dataset(dataset, file, name, engine_arg(engine, ray_address, workers), workers, accurate)
        return
    if person is None or not photos:
        raise ParameterError("Give a PERSON and their PHOTOS (`faceforge gallery enrol anna anna/*.jpg`), or "
                             "--from DATASET to enrol every class folder of a dataset.")
    check_output(file, photos, what="gallery file")
    skipped: list[tuple[str, str]] = []
    files = expand_paths(photos, videos=False, skipped=skipped)
    print_skipped(skipped)
    run = engine_arg(engine, ray_address, workers)
    many = _many(run, workers, len(files))
    rep = _open_gallery(file, name, create=True, accurate=accurate).enrol(
        person, files, engine=run if many else None, workers=workers if many else None,  # 0: one per core
        progress=f"enrol {person}" if many else None)
    _say_enrolled(rep, f" stored in {file}")


def _many(run: Any, workers: int, photos: int) -> bool:
    """Embed on the batch runner? When asked (an engine, workers) or above a few photos (the
    workers' start-up pays off there)."""
    return bool(run is not None or workers or photos > FEW_PHOTOS)


def _say_enrolled(rep: Any, where: str) -> None:
    """An enrol report's problems, notes and counts."""
    print_skipped(rep.problems)
    for p in rep.several_faces:
        err.print(f"[yellow]note[/] {p}: several faces; the main one (large, near the centre) was enrolled",
                  highlight=False)
    out.print(f"{rep.person}: {len(rep.added)} photo(s) added, {len(rep.duplicates)} already there, "
              f"{len(rep.problems)} skipped; {rep.faces} face(s){where}", highlight=False)


def _enrol_dataset(dataset: Path, file: Path, name: str, run: Any, workers: int, accurate: bool = False) -> None:
    """``gallery enrol --from DATASET``: each class folder enrolled as a person, new photos only."""
    from faceforge.collect.split import class_photos
    from faceforge.gallery.history import enrol_classes
    from faceforge.sinks import check_output

    check_output(file, [dataset], what="gallery file")
    photos = class_photos(dataset)
    if not photos:
        raise ParameterError(f"{dataset}: no photos in class folders (DATASET/PERSON/photo.jpg); nothing to enrol.")
    many = _many(run, workers, len(photos))
    g = _open_gallery(file, name, create=True, accurate=accurate)
    reports, skipped = enrol_classes(g, photos, engine=run if many else None,
                                     workers=workers if many else None, progress=many)
    for rep in reports:
        _say_enrolled(rep, "")
    for label, why in skipped:
        err.print(f"[yellow]note[/] {label}: {why}" if label not in why else f"[yellow]note[/] {why}", highlight=False)
    out.print(f"{sum(len(r.added) for r in reports)} photo(s) of {len(reports)} people enrolled from {dataset} "
              f"into {file}", highlight=False)


@gallery_app.command("history")
@handle_errors
def gallery_history(file: Path = GALLERY_FILE, name: str = GALLERY_NAME,
                    as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Who was enrolled, removed or dropped when (oldest first)."""
    rows = _open_gallery(file, name).history()
    if as_json:
        out.print_json(json.dumps(rows))
        return
    t = Table("when (UTC)", "action", "person", "photos", "faces after", title=f"history of gallery {name!r} in {file}")
    for r in rows:
        t.add_row(r["when"].replace("T", " ")[:19], r["action"], r["person"] or "(all)", str(r["photos"]),
                  str(r["faces"]))
    out.print(t)


@gallery_app.command("list")
@handle_errors
def gallery_list(file: Path = GALLERY_FILE, name: str = GALLERY_NAME,
                 as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The people of a gallery and how many faces each has."""
    people = _open_gallery(file, name).people()
    if as_json:
        out.print_json(json.dumps([p.to_dict() for p in people]))
        return
    t = Table("person", "faces", title=f"gallery {name!r} in {file}")
    for p in people:
        t.add_row(p.name, str(p.faces))
    out.print(t)


@gallery_app.command("identify")
@handle_errors
def gallery_identify(
    images: list[Path] = typer.Argument(..., help="Images or folders."),
    file: Path = GALLERY_FILE, name: str = GALLERY_NAME,
    top_k: int = typer.Option(3, "--top-k"),
    jsonl: Optional[Path] = typer.Option(None, "--jsonl", help="Write one JSON record per image here."),
    threshold: Optional[float] = THRESHOLD, target_far: Optional[float] = TARGET_FAR,
    accurate: bool = ACCURATE,
) -> None:
    """Who is each face of each image (or ``unknown``)."""
    from faceforge.sinks import check_output
    from faceforge.sources.media import expand_paths

    if jsonl:
        check_output(jsonl, [*images, file], what="JSONL file")
    g = _open_gallery(file, name, accurate=accurate)
    thr, far = g.decision(threshold, target_far)
    err.print(describe(thr, far), highlight=False)
    skipped: list[tuple[str, str]] = []
    files = expand_paths(images, videos=False, skipped=skipped)
    print_skipped(skipped)
    lines = []
    for f in files:
        try:
            res = g.identify(f, top_k, threshold=threshold, target_far=target_far)
        except FaceforgeError as e:  # one bad photo is reported; the others go on
            print_skipped([(str(f), str(e))])
            continue
        for box, m in zip(res.xyxy.tolist(), res.predictions[g.name]):
            out.print(f"{f}: {m.label} (distance {m.distance:.3f}) at {[round(v) for v in box]}", highlight=False)
        if not len(res):
            out.print(f"{f}: no face", highlight=False)
        lines.append(json.dumps({"file": str(f), "faces": res.to_dicts(flatten=g.name)}))
    if jsonl:
        from faceforge._fs import atomic_write

        atomic_write(jsonl, ("\n".join(lines) + "\n").encode())


@gallery_app.command("verify")
@handle_errors
def gallery_verify(person: str = typer.Argument(...), image: Path = typer.Argument(...),
                   file: Path = GALLERY_FILE, name: str = GALLERY_NAME,
                   threshold: Optional[float] = THRESHOLD, target_far: Optional[float] = TARGET_FAR,
                   accurate: bool = ACCURATE,
                   as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Is the main face of IMAGE this person? Exit code 0: yes, 1: no."""
    v = _open_gallery(file, name, accurate=accurate).verify(image, person, threshold=threshold, target_far=target_far)
    if as_json:
        print(json.dumps(v.to_dict()))
    else:
        out.print(f"{'same' if v.same else 'different'}: distance {v.distance:.3f} ({describe(v.threshold, v.far)})",
                  highlight=False)
    raise typer.Exit(0 if v.same else 1)


@gallery_app.command("remove")
@handle_errors
def gallery_remove(person: str = typer.Argument(...), file: Path = GALLERY_FILE, name: str = GALLERY_NAME) -> None:
    """Delete a person and all their stored faces."""
    n = _open_gallery(file, name).remove(person)
    out.print(f"removed {person} ({n} face(s))", highlight=False)
