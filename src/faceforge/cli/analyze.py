"""``faceforge analyze`` and ``live``: attributes, your own models and who it is, on photos and on video."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from faceforge.cli.app import (
    engine_arg,
    engine_option,
    err,
    handle_errors,
    ray_address_option,
    record,
    workers_arg,
    write_records,
)
from faceforge.errors import ParameterError


@handle_errors
def analyze(
    paths: list[Path] = typer.Argument(..., help="Images, folders and videos."),
    attributes: str = typer.Option("gender,age,emotion", "--attributes", "-a",
                                   help="Built-in attributes, comma-separated (gender, age, emotion; '' for none)."),
    model: Optional[list[Path]] = typer.Option(None, "--model", "-m",
                                               help="Your own model file(s) from `faceforge train` "
                                               "(e.g. identity); reported under the file name."),
    detector: str = typer.Option("photo", "--detector", "-d"),
    top_k: int = typer.Option(3, "--top-k", help="Labels per face and model."),
    annotate: Optional[Path] = typer.Option(None, "--annotate", help="Save images with labelled boxes here."),
    jsonl: Optional[Path] = typer.Option(None, "--jsonl", help="Write one JSON record per image/frame here."),
    every: int = typer.Option(1, help="For videos: keep every n-th frame."),
    workers: int = typer.Option(0, help="Worker processes (0: one per core)."),
    engine: Optional[str] = engine_option(),
    ray_address: Optional[str] = ray_address_option(),
    gallery: Optional[Path] = typer.Option(None, "--gallery", "-g", help="A gallery file (`faceforge gallery enrol`): "
                                           "who each face is, reported as 'identity'."),
    gallery_name: str = typer.Option("default", "--gallery-name", help="The gallery's name inside the file."),
    accurate: bool = typer.Option(False, "--accurate", help="Gender and age averaged over the face, its mirror "
                                  "image and small rotations (lower age error, about 2.5x their cost; emotion "
                                  "already averages the mirror image)."),
) -> None:
    """Gender, age and emotion (and your own models, and who it is) for every face in every image or frame."""
    from faceforge.tasks import analyze_files

    skipped: list[tuple[str, str]] = []
    results = analyze_files(paths, attributes=[a.strip() for a in attributes.split(",") if a.strip()],
                            models=model or [], gallery=(gallery, gallery_name) if gallery else None,
                            detector=detector, top_k=top_k, annotate=annotate, every=every,
                            workers=workers_arg(workers), progress="analyze", skipped=skipped,
                            engine=engine_arg(engine, ray_address, workers),
                            quality="accurate" if accurate else "fast")
    write_records(results, record, jsonl, skipped, "analysed",
                  protect=[*paths, *(model or []), *([gallery] if gallery else [])])


@handle_errors
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
    tile: bool = typer.Option(False, "--tile",
                              help="BlazeFace: also detect on tiles (small faces in large frames; slower)."),
    tile_every: int = typer.Option(0, "--tile-every", help="Tile every n-th detection only (e.g. 15: small faces in "
                                                          "1080p at about 30 FPS)."),
    gallery: Optional[Path] = typer.Option(None, "--gallery", "-g", help="A gallery file: who each face is."),
    gallery_name: str = typer.Option("default", "--gallery-name", help="The gallery's name inside the file."),
    max_coast: float = typer.Option(0.2, "--max-coast", help="Seconds a face that is no longer detected stays on "
                                    "screen (drawn dashed grey, \"coasting\": true in the JSONL)."),
    cut_threshold: float = typer.Option(0.07, "--cut-threshold", help="Scene-cut sensitivity (grey-histogram "
                                        "distance between frames; a cut ends every track). 0: no cut detection."),
    reacquire_every: int = typer.Option(3, "--reacquire-every", help="Search a lost face's region with the photo "
                                        "detector at most every n frames (finds profiles; 0: never)."),
) -> None:
    # One line on purpose: rich help keeps a docstring's line breaks in the command listing.
    """Live video: faces tracked with stable ids, labels per face that do not flicker, classification off the capture thread."""  # noqa: E501
    from faceforge._fs import check_outputs
    from faceforge.attributes import load_attribute
    from faceforge.live import run_live
    from faceforge.tasks import face_models
    from faceforge.train import load_classifier

    inputs: list[Path] = [*([Path(source)] if Path(source).exists() else []), *(model or []),
                          *([gallery] if gallery else [])]
    check_outputs([(output, "file", "video file"), (jsonl, "file", "JSONL file")], inputs)
    models: dict[str, Any] = {}
    for a in [a.strip() for a in attributes.split(",") if a.strip()]:
        models[a] = load_attribute(a)
    for m in model or []:
        models[m.stem] = load_classifier(m)
    if gallery is not None:
        models.update(face_models([], (str(gallery), gallery_name)))
    if not models and not (output or jsonl or show or mjpeg is not None):
        raise ParameterError("Nothing to do: give --model and/or --attributes, and an output (--output, "
                             "--jsonl, --show or --mjpeg).")
    if mjpeg is not None:
        err.print(f"MJPEG stream on http://127.0.0.1:{mjpeg}/", highlight=False)
    stats = run_live(int(source) if source.isdigit() else source, models, detector=detector,
                     detect_every=detect_every, output=output, jsonl=jsonl, show=show, mjpeg=mjpeg,
                     max_frames=max_frames, realtime=realtime, drop=True if realtime else None,
                     detector_options={"tile": True} if tile else None, tile_every=tile_every,
                     max_coast=max_coast, cut_threshold=cut_threshold or None, reacquire_every=reacquire_every)
    d = stats.to_dict()
    err.print(f"{d['frames']} frames in {d['seconds']:.1f} s ({d['fps']:.1f} FPS), {d['dropped']} dropped, "
              f"{d['tracks']} tracks, {d['classifications']} classifications, label changes {d['label_flips']}, "
              f"{d['cuts']} scene cuts, {d['splits']} identity splits"
              + (f"; video {output}" if output else "") + (f"; results in {jsonl}" if jsonl else ""), highlight=False)

