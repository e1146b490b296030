"""``faceforge detect``, ``embed`` and ``verify``: faces, their embeddings, and one-to-one verification."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from faceforge._fs import check_output
from faceforge.cli.app import (
    engine_arg,
    engine_option,
    err,
    handle_errors,
    nothing_done,
    out,
    print_skipped,
    ray_address_option,
    record,
    workers_arg,
    write_records,
)
from faceforge.errors import FaceforgeError

ACCURATE_HELP = ("Accurate preset: each face and its mirror image embedded and averaged (higher verification "
                 "accuracy, about 2x the embedding time); its own embeddings and calibrated thresholds.")


@handle_errors
def detect(
    paths: list[Path] = typer.Argument(..., help="Images, folders (searched recursively) and videos."),
    detector: str = typer.Option("photo", "--detector", "-d",
                                 help="photo (= yunet), live (= blazeface.full), yunet, blazeface.short, "
                                      "blazeface.full, mtcnn, haar."),
    min_score: Optional[float] = typer.Option(None, help="Drop faces scoring below this (0-1). Default: 0.5, or "
                                              "with --accurate the preset's threshold (its fused score)."),
    accurate: bool = typer.Option(False, "--accurate", help="Test-time augmented detection: the photo and the photo "
                                  "enlarged 1.5x, fused; more small faces at the fast default's false-positive "
                                  "rate, for about 4x the time (photo detector only)."),
    target_fp: Optional[float] = typer.Option(None, "--target-fp", help="Instead of --min-score: the threshold "
                                              "that gave this many false positives per photo on the WIDER FACE "
                                              "development photos (0.1-2; the default threshold gives 0.56)."),
    jsonl: Optional[Path] = typer.Option(None, "--jsonl", help="Write one JSON record per image/frame here."),
    save_crops: Optional[Path] = typer.Option(None, "--save-crops", help="Save a crop of every face in this folder."),
    crop_size: int = typer.Option(112, help="Side of saved crops in pixels."),
    crop_template: str = typer.Option("arcface112", help="arcface112 / dlib150 (aligned) or margin (box x1.4)."),
    annotate: Optional[Path] = typer.Option(None, "--annotate", help="Save images with boxes drawn in this folder."),
    every: int = typer.Option(1, help="For videos: keep every n-th frame."),
    workers: int = typer.Option(0, help="Worker processes (0: one per core)."),
    engine: Optional[str] = engine_option(),
    ray_address: Optional[str] = ray_address_option(),
) -> None:
    """Find faces (box, score, 5 landmarks) in images, folders and videos.

    Unreadable files are reported and skipped; inputs are only read, never modified.
    """
    from faceforge.tasks import detect_files

    skipped: list[tuple[str, str]] = []
    results = detect_files(paths, detector=detector, min_score=min_score, every=every, crops=save_crops,
                           crop_size=crop_size, crop_template=crop_template, annotate=annotate,
                           workers=workers_arg(workers), progress="detect", skipped=skipped,
                           engine=engine_arg(engine, ray_address, workers), quality="accurate" if accurate else "fast",
                           target_fp=target_fp)
    write_records(results, lambda f: record(f, "width", "height", "detector", "ms"), jsonl, skipped, protect=paths)


@handle_errors
def embed(
    paths: list[Path] = typer.Argument(..., help="Images, folders and videos."),
    output: Path = typer.Option(..., "-o", "--output", help="Output .npz (arrays) or .jsonl file."),
    embedder: str = typer.Option("dlib-resnet", "--embedder", "-e",
                                 help="dlib-resnet (identity), agegender or gendernet (age, gender), effnet-lite0 "
                                      "(ImageNet features), expression (smiles and other expressions)."),
    detector: str = typer.Option("photo", "--detector", "-d", help="photo (= yunet), live, or a detector name."),
    all_faces: bool = typer.Option(False, "--all-faces", help="Embed every face, not only the largest."),
    whole_image: bool = typer.Option(False, "--whole-image",
                                     help="Use the whole image when no face is found (face crops)."),
    accurate: bool = typer.Option(False, "--accurate", help=ACCURATE_HELP),
    workers: int = typer.Option(0, help="Worker processes (0: one per core)."),
    engine: Optional[str] = engine_option(),
    ray_address: Optional[str] = ray_address_option(),
) -> None:
    """Embed faces: one vector per face, saved as .npz (embeddings, files, boxes) or .jsonl."""
    from faceforge.embedders import get_embedder
    from faceforge.sinks import atomic_write
    from faceforge.tasks import embed_files

    if output.suffix.lower() not in (".npz", ".jsonl"):
        raise FaceforgeError(f"--output must end in .npz or .jsonl, got {output.name!r}")
    check_output(output, paths, what="embeddings file")
    emb = get_embedder(embedder)
    skipped: list[tuple[str, str]] = []
    recs = []
    n_img = 0
    for faces in embed_files(paths, embedder=embedder, detector=detector, all_faces=all_faces,
                             whole_image=whole_image, workers=workers_arg(workers), progress=f"embed ({embedder})",
                             skipped=skipped, engine=engine_arg(engine, ray_address, workers),
                             quality="accurate" if accurate else "fast"):
        n_img += 1
        if len(faces):
            recs.append(faces)
        else:
            skipped.append((faces.meta["source"], "no face found (try --whole-image for face crops)"))
    if not n_img and skipped:
        print_skipped(skipped)
        raise nothing_done(skipped)
    as_jsonl = output.suffix.lower() == ".jsonl"
    rows = [(f, i, d) for f in recs for i, d in enumerate(f.to_dicts(embeddings=as_jsonl))]
    if as_jsonl:
        lines = [json.dumps({"file": f.meta["source"], "frame": f.meta["frame"], "face": i, **d}) for f, i, d in rows]
        atomic_write(output, ("\n".join(lines) + ("\n" if lines else "")).encode())
    else:
        import io

        buf = io.BytesIO()
        arrays: dict[str, Any] = {
            "embeddings": np.array([f.embedding[i] for f, i, _ in rows], np.float32).reshape(-1, emb.dim),
            "files": np.array([f.meta["source"] for f, _, _ in rows]),
            "frames": np.array([f.meta["frame"] for f, _, _ in rows]),
            "boxes": np.array([d["box"] for _, _, d in rows], np.float32).reshape(-1, 4),
            "whole_image": np.array([bool(f.whole_image[i]) for f, i, _ in rows]),
            "embedder": np.array(embedder)}
        if accurate:  # fast files stay as they were
            arrays["quality"] = np.array("accurate")
        np.savez(buf, **arrays)
        atomic_write(output, buf.getvalue())
    print_skipped(skipped)
    err.print(f"{len(rows)} embedding(s) of {emb.dim} dims from {len(recs)} image(s) -> {output}; "
              f"{len(skipped)} skipped", highlight=False)


@handle_errors
def verify(
    a: Path = typer.Argument(..., help="First image."),
    b: Path = typer.Argument(..., help="Second image."),
    threshold: Optional[float] = typer.Option(None, help="Distance threshold (wins over --target-far)."),
    target_far: Optional[float] = typer.Option(None, "--target-far",
                                               help="False-accept rate wanted: the share of pairs of different "
                                                    "people called the same (default 0.01 = 1%; the threshold "
                                                    "is calibrated for it: 0.60 for dlib-resnet)."),
    detector: str = typer.Option("photo", "--detector", "-d", help="photo (= yunet), live, or a detector name."),
    whole_image: bool = typer.Option(False, "--whole-image", help="Use the whole image when no face is found."),
    accurate: bool = typer.Option(False, "--accurate", help=ACCURATE_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Are the main faces of two images the same person? Prints the distance, the threshold and its
    expected false-accept rate."""
    from faceforge.pipeline import FacePipeline
    from faceforge.pipeline import verify as _verify

    quality = "accurate" if accurate else "fast"
    v = _verify(a, b, threshold, FacePipeline(detector, "dlib-resnet", whole_image_fallback=whole_image,
                                              quality=quality), target_far=target_far)
    if as_json:
        print(json.dumps(v.to_dict()))
    else:
        verdict = "[green]SAME person[/]" if v.same else "[red]DIFFERENT people[/]"
        rate = "not calibrated" if v.far is None else f"{100 * v.far:.2g}%"
        out.print(f"{verdict}: distance {v.distance:.4f} {'<=' if v.same else '>'} threshold {v.threshold} "
                  f"({v.embedder}{', accurate' if accurate else ''}; expected false-accept rate {rate})",
                  highlight=False)
