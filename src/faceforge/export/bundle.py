"""A browser bundle: the exported model, the detector, one HTML + one JS page and onnxruntime-web, in one zip.

Unzipped and served by any static web server (``python3 -m http.server``), ``index.html``
classifies the webcam entirely in the browser: nothing is fetched from outside the folder.
onnxruntime-web comes from the npm registry at set-up time (``./run`` puts
``onnxruntime-web@1.30.0``'s wasm build into ``.cache/npm/``, checksum checked); this module only
finds those files (:func:`ort_web_files`).
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from faceforge.errors import ModelNotFoundError

log = logging.getLogger(__name__)

#: The onnxruntime-web release the page is written for.
ORT_WEB_VERSION = "1.30.0"
#: The files of it the bundle ships: the ES-module bundle (its wasm loader inside) and the plain
#: SIMD wasm build (run single-threaded, so no cross-origin isolation is needed).
ORT_WEB_FILES = ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm")
#: The page's own files, in ``faceforge/export/web``.
PAGE_FILES = ("index.html", "app.js")


def _candidates() -> list[Path]:
    env = os.environ.get("FACEFORGE_ORT_WEB")
    if env:
        return [Path(env)]
    sub = Path(".cache") / "npm" / f"onnxruntime-web-{ORT_WEB_VERSION}"
    repo = Path(__file__).resolve().parents[3]  # src/faceforge/export/bundle.py -> the checkout
    return [repo / sub, Path.cwd() / sub]


def ort_web_files() -> dict[str, Path]:
    """Where the set-up put onnxruntime-web's files.

    Looked for in ``$FACEFORGE_ORT_WEB`` when it is set (a folder holding :data:`ORT_WEB_FILES`),
    else in ``.cache/npm/onnxruntime-web-1.30.0`` of the source checkout, then of the current folder.

    Returns:
        File name -> path, for each of :data:`ORT_WEB_FILES`.

    Raises:
        ModelNotFoundError: the files are not there; the message says how to get them.
    """
    tried = []
    for folder in _candidates():
        files = {n: folder / n for n in ORT_WEB_FILES}
        if all(p.is_file() for p in files.values()):
            return files
        tried.append(str(folder))
    raise ModelNotFoundError(
        f"the browser bundle needs onnxruntime-web {ORT_WEB_VERSION} ({', '.join(ORT_WEB_FILES)}), which is not "
        f"set up; looked in: {'; '.join(tried)}. Fix: run ./run once in the faceforge checkout (its set-up fetches "
        f"it from the npm registry with npm into .cache/npm/), or set FACEFORGE_ORT_WEB to a folder holding "
        f"those files (from `npm pack onnxruntime-web@{ORT_WEB_VERSION}`, package/dist/).")


def page_files() -> dict[str, bytes]:
    """The page's HTML and JS (shipped inside faceforge)."""
    from importlib import resources

    web = resources.files("faceforge.export") / "web"
    return {n: (web / n).read_bytes() for n in PAGE_FILES}


def build_bundle(model: Any, out_zip: str | os.PathLike, *, detector: str = "short") -> dict[str, Any]:
    """Write the browser bundle of ``model`` to ``out_zip`` (atomically).

    The zip holds ``classifier.onnx``, ``detector.onnx`` and ``model.json`` (what
    :func:`faceforge.export.export_model` writes with ``with_detector=True``), ``index.html``,
    ``app.js`` and onnxruntime-web's :data:`ORT_WEB_FILES`, all at its top level.

    Args:
        model: a model file (``.ffm``) or a loaded classifier, as ``export_model`` takes.
        out_zip: the zip to write (replaced atomically if it exists).
        detector: ``"short"`` (default: webcams) or ``"full"`` BlazeFace.

    Returns:
        ``{"path", "bytes", "files": {name: bytes}}``.

    Raises:
        ModelNotFoundError: onnxruntime-web is not set up (see :func:`ort_web_files`).
        BundleError, ParameterError, OutputError: as ``export_model`` raises them.
    """
    from faceforge._fs import atomic_write, check_output
    from faceforge.export import export_model
    from faceforge.export.detector import export_detector

    ort_files = ort_web_files()  # fail before the export's work
    out = check_output(out_zip, [model] if isinstance(model, (str, os.PathLike)) else [], kind="file",
                       what="browser bundle")
    with tempfile.TemporaryDirectory(prefix="faceforge-bundle-") as tmp:
        folder = Path(tmp) / "model"
        export_model(model, folder, with_detector=True)
        side_path = folder / "model.json"
        side = json.loads(side_path.read_text())
        if not (folder / "detector.onnx").is_file() or detector != "short":
            side["detector"] = sec = export_detector(folder, kind=detector)
            side.setdefault("files", {})[sec["file"]] = {"sha256": sec["sha256"], "bytes": sec["bytes"]}
            side_path.write_text(json.dumps(side, indent=2) + "\n")
        buf = io.BytesIO()
        sizes: dict[str, int] = {}
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
            for name in sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
                data = (folder / name).read_bytes()
                z.writestr(name, data)
                sizes[name] = len(data)
            for name, data in page_files().items():
                z.writestr(name, data)
                sizes[name] = len(data)
            for name, path in ort_files.items():
                data = path.read_bytes()
                z.writestr(name, data)
                sizes[name] = len(data)
            z.writestr("README.txt", _readme(side))
    atomic_write(out, buf.getvalue())
    log.info("wrote the browser bundle %s (%d bytes)", out, out.stat().st_size)
    return {"path": out, "bytes": out.stat().st_size, "files": sizes}


def _readme(side: dict[str, Any]) -> str:
    name = (side.get("model") or {}).get("name") or "model"
    return (f"faceforge browser bundle: {name}\n\n"
            "Unzip, then serve this folder with any static web server and open it, e.g.\n"
            "    python3 -m http.server 8000    ->  http://localhost:8000/\n"
            "(browsers do not load WebAssembly from file:// pages). The page asks for the webcam, finds faces\n"
            "with detector.onnx, aligns them as model.json says and classifies them with classifier.onnx, all\n"
            f"in the browser with onnxruntime-web {ORT_WEB_VERSION} (MIT; ort.wasm.bundle.min.mjs and\n"
            "ort-wasm-simd-threaded.wasm); nothing is fetched from the internet.\n"
            "Licences of the weights inside: see model.json (licences, detector.licence).\n")
