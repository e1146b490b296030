"""The service's model files: list, upload, download (as .ffm or as a browser bundle), delete."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response

from faceforge.service.deps import ApiKey, EngineDep, HomeDep, SettingsDep
from faceforge.service.inputs import client_name, read_limited
from faceforge.service.safety import RequestError
from faceforge.service.schemas import Deleted, Error, ModelInfo, Models

router = APIRouter(prefix="/api/models", tags=["models"], dependencies=[ApiKey])

_ZIP: dict[int | str, dict[str, Any]] = {200: {"description": "the model file (a zip archive)",
              "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}}}


@router.get("", response_model=Models, response_model_exclude_unset=True)
def list_models(home: HomeDep) -> dict[str, Any]:
    """Your models and the built-in attributes."""
    from faceforge.attributes import available_attributes

    return {"models": home.models(), "builtin": available_attributes()}


@router.post("", status_code=201, response_model=ModelInfo, response_model_exclude_unset=True)
async def upload_model(settings: SettingsDep, home: HomeDep, engine: EngineDep,
                       file: Annotated[UploadFile, File(description="a .ffm model file")],
                       name: Annotated[str, Form()], replace: Annotated[bool, Form()] = False) -> dict[str, Any]:
    """Add a model file made by ``faceforge train``; it is checked in full first (a bad file gets 422, nothing kept)."""
    from faceforge.gallery import check_name

    name = check_name(name, "model name")
    data = await read_limited(file, settings.max_request_bytes)
    if not data.startswith(b"PK\x03\x04"):
        raise RequestError(f"{client_name(file)}: not a faceforge model (.ffm files are zip archives).", 415)
    info = await run_in_threadpool(partial(home.add_model, name, data, "upload", replace=replace,
                                           filename=client_name(file)))
    engine.forget_model(name)
    return info


@router.get("/{name}", response_model=ModelInfo, response_model_exclude_unset=True)
def get_model(name: str, home: HomeDep) -> dict[str, Any]:
    """One model's task, classes, embedder, head and validation metrics."""
    for m in home.models():
        if m["name"] == name:
            return m
    raise RequestError(f"No model called {name!r}.", 404)


@router.get("/{name}/file", response_class=FileResponse, responses=_ZIP)
def download_model(name: str, home: HomeDep) -> Any:
    """The model file itself (to use with the Python API or the CLI)."""
    path = home.public_model_file(name)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return FileResponse(path, media_type="application/zip", filename=f"{safe}.ffm")


_BUNDLE: dict[int | str, dict[str, Any]] = {
    200: {"description": "the browser bundle (a zip: index.html, app.js, the ONNX graphs, model.json, onnxruntime-web)",
          "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
    404: {"model": Error, "description": "no such model"},
    422: {"model": Error, "description": "the model cannot be exported (its embedder or head)"},
    503: {"model": Error, "description": "onnxruntime-web is not set up on the server (run ./run once)"},
}


@router.get("/{name}/bundle", response_class=Response, responses=_BUNDLE)
async def download_bundle(name: str, home: HomeDep) -> Any:
    """The model for the browser: unzip, serve the folder (``python3 -m http.server``), open it; the page
    classifies the webcam with onnxruntime-web, nothing fetched from outside.

    A bundle is built once per model file (and faceforge / onnxruntime-web version) and kept in the
    service home's ``bundles/``; replacing the model builds a new one and drops the old.
    """
    from faceforge import __version__
    from faceforge._fs import sha256_file
    from faceforge.errors import ModelNotFoundError
    from faceforge.export.bundle import ORT_WEB_VERSION, build_bundle, ort_web_files

    path = await run_in_threadpool(home.public_model_file, name)
    try:
        ort_web_files()
    except ModelNotFoundError as e:
        raise RequestError(f"The server cannot build browser bundles yet: {e}", 503) from e
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)

    def cached() -> Any:
        folder = home.path / "bundles"
        folder.mkdir(exist_ok=True)
        out = folder / f"{safe}.{sha256_file(path)[:20]}-{__version__}-ort{ORT_WEB_VERSION}.zip"
        if not out.is_file():
            build_bundle(path, out)  # written atomically
            for old in folder.glob(f"{safe}.*.zip"):
                if old != out:
                    old.unlink(missing_ok=True)
        return out

    out = await run_in_threadpool(cached)
    return FileResponse(out, media_type="application/zip", filename=f"{safe}-web.zip")


@router.delete("/{name}", response_model=Deleted)
def delete_model(name: str, home: HomeDep, engine: EngineDep) -> dict[str, Any]:
    """Delete a model and its file."""
    home.delete_model(name)
    engine.forget_model(name)
    return {"deleted": name}
