"""``faceforge export``: a model as ONNX (classifier.onnx + model.json, optionally detector.onnx)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from faceforge.cli.app import handle_errors, out
from faceforge.errors import ParameterError

FORMATS = ("onnx", "web")


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


@handle_errors
def export(
    model: Path = typer.Argument(..., help="A model file from `faceforge train`."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder to write classifier.onnx and model.json to."),
    format: str = typer.Option("onnx", "--format",
                               help="Export format: onnx, or web (a zip for the browser; -o names the zip)."),
    with_detector: bool = typer.Option(False, "--with-detector",
                                       help="Also write detector.onnx (image in, faces and landmarks out)."),
    opset: int = typer.Option(17, "--opset", help="Lowest ONNX opset to write (17-21)."),
    check_image: Optional[Path] = typer.Option(None, "--check-image",
                                               help="Check parity on the faces of this photo (default: test chips)."),
) -> None:
    """Export a model to ONNX: one graph from aligned face chip to probabilities, plus a JSON sidecar."""
    from faceforge.export import export_model
    from faceforge.export.classifier import load_model
    from faceforge.export.parity import chips_from_image, compare, synthetic_chips

    if format not in FORMATS:
        raise ParameterError(f"--format {format!r} is not supported; choose one of: {', '.join(FORMATS)}.")
    if format == "web":  # the browser bundle (faceforge.export.bundle): one zip, the detector inside
        from faceforge.export.bundle import build_bundle

        info = build_bundle(model, output)
        out.print(f"{info['path']}  {_size(info['bytes'])}  (unzip, run `python3 -m http.server` in it, open "
                  "http://localhost:8000/)", highlight=False)
        return
    clf, _ = load_model(model)
    res = export_model(clf, output, with_detector=with_detector, opset=opset)
    for name, n in res.sizes.items():
        out.print(f"{res.folder / name}  {_size(n)}", highlight=False)
    inputs = res.sidecar["inputs"]
    chips = chips_from_image(clf, check_image, inputs) if check_image else synthetic_chips(inputs)
    rep = compare(clf, res, chips)
    diffs = ", ".join(f"{k} {v:.1e}" for k, v in rep["max_abs_diff"].items())
    agree = [f"{k.replace('_', ' ')} {'yes' if v else 'NO'}" for k, v in rep.items() if k.endswith("_agree")]
    where = f"the faces of {check_image}" if check_image else "synthetic test chips"
    out.print(f"parity (onnxruntime vs faceforge on {rep['faces']} {where}): max |diff| {diffs}; "
              + "; ".join(agree) + f"  (opset {res.opset})", highlight=False)
