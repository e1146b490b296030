"""``faceforge cluster``, ``autolabel`` and ``distil``: from unlabelled photos to a trained model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from faceforge.cli.app import (
    engine_arg,
    engine_option,
    handle_errors,
    out,
    print_skipped,
    ray_address_option,
    workers_arg,
)
from faceforge.errors import ParameterError, SourceError


@handle_errors
def cluster(
    paths: list[Path] = typer.Argument(..., help="Unlabelled photos: files, folders, archives, videos."),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="New folder for the groups (person_001/, ..., noise/)."),
    into: Optional[Path] = typer.Option(None, "--into", help="An earlier `cluster` output: the new photos' faces "
                                        "join its folders (renamed ones keep their names) or form new ones; "
                                        "nothing is reclustered."),
    threshold: float = typer.Option(0.55, help="Average identity distance below which groups merge (lower: stricter)."),
    min_size: int = typer.Option(2, "--min-size", help="Smaller groups go to noise/."),
    detector: str = typer.Option("photo", "--detector", "-d"),
    workers: int = typer.Option(0, help="Worker processes (0: one per core)."),
    engine: Optional[str] = engine_option(),
    ray_address: Optional[str] = ray_address_option(),
) -> None:
    """Group the faces of unlabelled photos by person: rename the folders, then `faceforge train` them."""
    from faceforge.bootstrap import cluster_faces, write_groups
    from faceforge.sinks import check_output

    if (output is None) == (into is None):
        raise ParameterError("Give -o NEW_FOLDER (a new clustering) or --into EARLIER_OUTPUT (add photos to one).")
    if into is not None:
        _cluster_into(paths, into, threshold, min_size, detector, workers, engine_arg(engine, ray_address, workers))
        return
    out_dir = check_output(Path(str(output)), paths, kind="folder", what="groups folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise ParameterError(f"{out_dir} is not empty; choose a new or empty folder for the groups.")
    res = cluster_faces(paths, threshold=threshold, min_size=min_size, detector=detector, workers=workers_arg(workers),
                        engine=engine_arg(engine, ray_address, workers))
    write_groups(res, out_dir, protect=[str(p) for p in paths])
    print_skipped(res.skipped)
    sizes = res.sizes()
    noise = int((res.labels < 0).sum())
    out.print(f"{len(res.faces)} faces -> {res.n_groups} group(s) of sizes {sorted(sizes.values(), reverse=True)[:20]}"
              f"{' ...' if len(sizes) > 20 else ''}, {noise} in noise/; written to {out_dir} (clusters.csv lists "
              f"every crop and its source). Rename the folders after the people, then: faceforge train {out_dir} "
              f"-o people.ffm", highlight=False)


def _cluster_into(paths: list[Path], into: Path, threshold: float, min_size: int, detector: str,
                  workers: int, engine: Any = None) -> None:
    """``cluster NEW --into EARLIER``: new faces join the earlier clustering's folders or form new ones."""
    from faceforge.bootstrap.cluster import embed_faces_of
    from faceforge.bootstrap.graph import update_groups
    from faceforge.sinks import check_output

    check_output(into, paths, kind="folder", what="groups folder")
    skipped: list[tuple[str, str]] = []
    faces = embed_faces_of(paths, detector=detector, workers=workers_arg(workers), skipped=skipped, engine=engine)
    if not faces:
        print_skipped(skipped)
        raise SourceError(f"No face found in the new photos ({len(skipped)} skipped); nothing was added to {into}.")
    rep = update_groups(into, faces, threshold=threshold, min_size=min_size, protect=[str(p) for p in paths])
    print_skipped(skipped + list(rep.skipped))
    joined = ", ".join(f"{k} +{v}" for k, v in sorted(rep.joined.items())) or "none"
    new = ", ".join(f"{k} ({v})" for k, v in sorted(rep.new_groups.items())) or "none"
    out.print(f"{len(faces)} new face(s) into {into}: joined {joined}; new groups {new}; {rep.noise} in noise/",
              highlight=False)


@handle_errors
def autolabel(
    paths: list[Path] = typer.Argument(..., help="Unlabelled photos: files, folders, archives, videos."),
    model: Path = typer.Option(..., "--model", "-m", help="The teacher: a model file from `faceforge train`."),
    output: Path = typer.Option(..., "-o", "--output",
                                help="Folder for class folders of crops, manifest.csv, summary.json."),
    min_confidence: float = typer.Option(0.6, "--min-confidence", help="Keep faces labelled with at least this score."),
    balance: str = typer.Option("none", help="none, or cap: at most as many faces per class as the rarest class has."),
    faces: str = typer.Option("main", "--faces", help="main: only the main face of each photo (the face a per-photo "
                                                        "label belongs to); all: background faces too."),
    workers: int = typer.Option(0, help="Worker processes (0: one per core)."),
    engine: Optional[str] = engine_option(),
    ray_address: Optional[str] = ray_address_option(),
) -> None:
    """Label every face of unlabelled photos with a teacher model; resumes after an interruption."""
    from faceforge.bootstrap.autolabel import autolabel as _autolabel

    res = _autolabel(model, paths, output, min_confidence=min_confidence, balance=balance, workers=workers_arg(workers),
                      faces=faces, engine=engine_arg(engine, ray_address, workers))
    print_skipped(res.skipped)
    t = Table(title=f"{len(res.faces)} faces labelled"
                    + (f" ({res.resumed} images done in an earlier run)" if res.resumed else ""))
    for c in ("class", "predicted", f"kept (>= {min_confidence:g})"):
        t.add_column(c, justify="left" if c == "class" else "right")
    for c, n in res.predicted.items():
        t.add_row(c, str(n), str(res.counts.get(c, 0)))
    out.print(t)
    out.print("confidence: " + ", ".join(f"{k} {v}" for k, v in res.histogram.items()), highlight=False)
    if res.background:
        out.print(f"{len(res.faces) - res.background} main faces (one per photo or frame), {res.background} background "
                  f"faces " + ("not kept (--faces all keeps them)" if faces == "main" else "kept"), highlight=False)
    if balance == "cap":
        out.print("balance cap dropped: " + (", ".join(f"{c} {n}" for c, n in res.dropped.items()) or "nothing")
                  + " (the least confident faces of each class)", highlight=False)
    if res.skew is not None and res.skew > 1.5:
        out.print(f"[yellow]class skew {res.skew:.1f}x among kept faces[/]: use --balance cap, or train the student "
                  f"with balanced class weights (the default).", highlight=False)
    out.print(f"written to {output}/ (a folder per class; manifest.csv; summary.json). "
              f"Next: faceforge distil {output} -o student.ffm", highlight=False)


@handle_errors
def distil(
    pseudo: Path = typer.Argument(..., help="An autolabel output folder (class folders of crops)."),
    output: Path = typer.Option(..., "-o", "--output", help="The student model file (.ffm)."),
    teacher: Optional[Path] = typer.Option(None, "--teacher", help="Default: the model recorded by autolabel."),
    embedder: str = typer.Option("auto", "--embedder", "-e",
                                 help="The student's: auto (default: every installed embedder and head scored by "
                                      "cross-validation on the pseudo-labels, the best used), or dlib-resnet "
                                      "(identity), agegender or gendernet (age, gender), expression (smiles and "
                                      "other expressions), effnet-lite0 (ImageNet features)."),
    detector: str = typer.Option("live", "--detector", "-d", help="The student's detector (live: fast)."),
    head: Optional[str] = typer.Option(None),
    test: Optional[Path] = typer.Option(None, "--test", help="Labelled test data (folder or CSV) for both models."),
    label_column: Optional[str] = typer.Option(None, help="Test CSV: the label column."),
    image_root: Optional[Path] = typer.Option(None, help="Test CSV: folder the file paths are relative to."),
    workers: int = typer.Option(0),
    engine: Optional[str] = engine_option(),
    ray_address: Optional[str] = ray_address_option(),
) -> None:
    """Train a fast student on a teacher's pseudo-labels; report agreement, test accuracy and latency."""
    from faceforge.bootstrap import distil as _distil
    from faceforge.sinks import check_output

    check_output(output, [pseudo, teacher, test], what="student model file")
    opts = {k: v for k, v in (("label_column", label_column), ("image_root", image_root)) if v is not None}
    res = _distil(pseudo, output, teacher=teacher, embedder=embedder, detector=detector, head=head, test=test,
                  test_options=opts, workers=workers_arg(workers),
                  engine=engine_arg(engine, ray_address, workers))
    d = res.to_dict()
    lines = [f"student written: {d['model']}"]
    a = d["agreement_detail"]
    if d["agreement"] is not None:
        lines.append(f"agreement with the teacher: {d['agreement']:.1%} (balanced {d['agreement_balanced']:.1%}) "
                     f"of {a['faces']} of the teacher's faces in {a['photos']} held-out photos"
                     + (f"; {a['missed']} not found by the student's detector" if a["missed"] else ""))
    else:
        lines.append(f"agreement with the teacher: {a.get('description', 'not measured')}")
    search = (d.get("student") or {}).get("search")
    if search:
        c = search["chosen"]
        lines.append(f"student: --embedder {c['embedder']} --head {c['head']} (chosen by the feature search, "
                     f"{len(search['leaderboard'])} candidates)")
    for name, r in d["test"].items():
        h = r.get("headline") or {}
        if h.get("accuracy") is not None:  # what users get first, then the head alone
            lines.append(f"{name} on {test}: {h['text']}; top-1 without the unknown check: accuracy "
                         f"{r['accuracy']:.1%}, balanced {r['balanced_accuracy']:.1%}")
        else:
            lines.append(f"{name} on {test}: accuracy {r['accuracy']:.1%}, balanced {r['balanced_accuracy']:.1%} "
                         f"over {r['images']} images")
    if d["latency_ms"]:
        lines.append(f"latency per image: student {d['latency_ms']['student']:.1f} ms, "
                     f"teacher {d['latency_ms']['teacher']:.1f} ms")
    out.print("\n".join(lines), highlight=False)

