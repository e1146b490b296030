"""The HTTP API and web page: a thin layer over faceforge's Python API.

Create the app with :func:`create_app` (tests, other ASGI servers) or run it with
``faceforge serve``. Interactive API docs are at ``/docs``; the web page is at ``/``.
"""


import asyncio
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from faceforge.errors import FaceforgeError, ImageError, ModelNotFoundError, ParameterError
from faceforge.service.safety import (IMAGE_TYPES, VIDEO_TYPES, RequestError, check_type, fetch_url,
                                      limit_error, sniff)
from faceforge.service.state import Home

log = logging.getLogger("faceforge.service")
WEB = Path(__file__).resolve().parent / "web"


@dataclass
class Settings:
    """Limits and switches of one service.

    Attributes:
        home: data directory (models, galleries, jobs).
        api_key: required on every ``/api`` request (header ``X-API-Key``, ``Authorization: Bearer``
            or ``?key=``) when set. ``faceforge serve`` refuses a non-loopback address without one.
        max_image_mb: largest image upload or fetched image.
        max_request_mb: largest request body (a video, or a training request with many photos).
        max_pixels: largest image in pixels (decompression bombs are refused before decoding).
        max_photos: most photos in one training or enrolment request.
        allow_private_urls: let image URLs point at private / loopback addresses (off: SSRF).
        url_timeout_s: timeout for fetching an image URL.
        run_jobs: run background jobs in this process (tests may turn it off).
    """

    home: Path
    api_key: str | None = None
    max_image_mb: float = 20.0
    max_request_mb: float = 256.0
    max_pixels: int = 40_000_000
    max_photos: int = 2000
    allow_private_urls: bool = False
    url_timeout_s: float = 10.0
    run_jobs: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def max_image_bytes(self) -> int:
        return int(self.max_image_mb * 1e6)

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_mb * 1e6)


class _LimitBody:
    """ASGI middleware: a request body over ``limit`` bytes is cut off with 413, counted as it
    arrives (a missing or lying Content-Length does not help)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        try:
            declared = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            declared = 0
        if declared > self.limit:
            return await _plain(send, 413, f"Request body of {declared} bytes is over the "
                                           f"{self.limit / 1e6:.0f} MB limit.")
        seen, over = 0, False

        async def limited() -> dict:
            nonlocal seen, over
            if over:
                return {"type": "http.request", "body": b"", "more_body": False}
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:  # end the body here; the answer becomes 413 below
                    over = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return msg

        replaced = False

        async def guarded_send(msg: dict) -> None:
            nonlocal replaced
            if over:
                if not replaced:
                    replaced = True
                    await _plain(send, 413, f"Request body over the {self.limit / 1e6:.0f} MB limit; "
                                            f"send less (the server's --max-request-mb sets it).")
                return
            await send(msg)

        await self.app(scope, limited, guarded_send)


async def _plain(send: Any, status: int, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app(settings: Settings | None = None, **kwargs: Any) -> Any:
    """The FastAPI application. ``kwargs`` are :class:`Settings` fields (``home=`` at least)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, File, Form, Query, Request, UploadFile, WebSocket, WebSocketDisconnect
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
    from fastapi.staticfiles import StaticFiles

    import faceforge
    from faceforge.gallery import GalleryError, check_name, list_galleries
    from faceforge.service.engine import Engine
    from faceforge.service.jobs import JobRunner, write_training_inputs

    if settings is None:
        settings = Settings(**kwargs)
    home = Home(settings.home)
    engine = Engine(home)
    runner = JobRunner(home, engine)

    @asynccontextmanager
    async def lifespan(app: Any):
        if settings.run_jobs:
            runner.start()
        yield
        runner.stop()

    app = FastAPI(title="faceforge", version=faceforge.__version__, lifespan=lifespan,
                  description="Detect, analyse, classify and identify faces; train models; manage galleries. "
                              "Send images as multipart uploads (`file`) or as an `url` to fetch.")
    app.state.settings, app.state.home, app.state.engine, app.state.runner = settings, home, engine, runner

    # -- errors ----------------------------------------------------------------------------------
    def _err(status: int, message: str) -> JSONResponse:
        return JSONResponse({"detail": message}, status_code=status)

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, e: RequestError) -> JSONResponse:
        return _err(e.status, str(e))

    @app.exception_handler(FaceforgeError)
    async def _ff_error(request: Request, e: FaceforgeError) -> JSONResponse:
        if isinstance(e, GalleryError):
            return _err(404, str(e))
        if isinstance(e, ModelNotFoundError):
            return _err(404, str(e))
        if isinstance(e, (ImageError, ParameterError)):
            return _err(422, str(e))
        return _err(400, str(e))

    # -- auth ------------------------------------------------------------------------------------
    def _key_ok(headers: Any, query: Any) -> bool:
        if not settings.api_key:
            return True
        given = headers.get("x-api-key") or ""
        auth = headers.get("authorization") or ""
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        given = given or query.get("key") or ""
        return secrets.compare_digest(given.encode(), settings.api_key.encode())

    @app.middleware("http")
    async def _auth(request: Request, call_next: Any) -> Any:
        path = request.url.path
        if path.startswith("/api/") and path != "/api/health" and not _key_ok(request.headers, request.query_params):
            return _err(401, "This server needs an API key: send it as the X-API-Key header "
                             "(or Authorization: Bearer KEY).")
        return await call_next(request)

    # -- inputs ----------------------------------------------------------------------------------
    async def _read_limited(f: UploadFile, limit: int) -> bytes:
        """An upload's bytes, read in chunks; over ``limit`` -> 413 naming the file."""
        buf = bytearray()
        while chunk := await f.read(1 << 20):
            buf += chunk
            if len(buf) > limit:
                raise limit_error(_client_name(f), limit)
        return bytes(buf)

    async def _read_upload(f: UploadFile, limit: int, allowed: tuple[str, ...]) -> tuple[bytes, str]:
        data = await _read_limited(f, limit)
        return data, check_type(data, allowed, _client_name(f))

    async def _image_input(file: UploadFile | None, url: str | None) -> tuple[Any, str]:
        """The request's image as an RGB array, and how to call it in messages."""
        from faceforge.sources import load_image

        if (file is None) == (not url):
            raise RequestError("Send exactly one image: a multipart file field 'file', or an 'url' to fetch.", 422)
        if file is not None:
            data, _ = await _read_upload(file, settings.max_image_bytes, IMAGE_TYPES)
            name = _client_name(file)
        else:
            got = await run_in_threadpool(fetch_url, url, max_bytes=settings.max_image_bytes,
                                          allow_private=settings.allow_private_urls, timeout=settings.url_timeout_s)
            data, name = got.data, f"URL {url!r}"
            check_type(data, IMAGE_TYPES, name)
        try:
            img = await run_in_threadpool(load_image, data, settings.max_pixels)
        except ImageError as e:
            raise RequestError(f"{name}: {e}", 422) from e
        return img, name

    def _split(s: str | None) -> list[str]:
        return [x.strip() for x in (s or "").split(",") if x.strip()]

    def _infer(fn: Any, *a: Any, **kw: Any) -> Any:
        with engine.lock:
            return fn(*a, **kw)

    FileField = Annotated[UploadFile | None, File(description="the image (JPEG, PNG, GIF, BMP, WebP, TIFF, PNM)")]
    UrlField = Annotated[str | None, Form(description="or an http(s) URL of the image to fetch")]
    TopK = Annotated[int, Form(ge=1, le=20)]

    # -- basics ----------------------------------------------------------------------------------
    @app.get("/api/health", tags=["service"])
    def health() -> dict[str, Any]:
        """Liveness and versions (no API key needed)."""
        return {"status": "ok", "version": faceforge.__version__, "auth": bool(settings.api_key)}

    @app.post("/api/detect", tags=["faces"])
    async def detect(file: FileField = None, url: UrlField = None,
                     detector: Annotated[str, Form()] = "photo") -> dict[str, Any]:
        """Every face with its box, 5 landmarks and score."""
        img, _ = await _image_input(file, url)
        det = engine.detector(detector)
        faces = await run_in_threadpool(_infer, det, img)
        return {"width": img.shape[1], "height": img.shape[0], "detector": det.name, "faces": faces.to_dicts()}

    @app.post("/api/analyze", tags=["faces"])
    async def analyze(file: FileField = None, url: UrlField = None,
                      attributes: Annotated[str, Form(description="comma-separated: gender, age, emotion")] = "gender,age,emotion",
                      models: Annotated[str, Form(description="comma-separated model names")] = "",
                      gallery: Annotated[str, Form(description="a gallery to identify people in")] = "",
                      top_k: TopK = 3) -> dict[str, Any]:
        """Every face with built-in attributes, your models' labels and (with a gallery) who it is."""
        img, _ = await _image_input(file, url)
        an = await run_in_threadpool(engine.analyzer, _split(attributes), _split(models), gallery or None, "photo", top_k)
        res = await run_in_threadpool(_infer, an.analyze, img)
        return {"width": img.shape[1], "height": img.shape[0], "faces": res.to_dicts()}

    @app.post("/api/classify", tags=["faces"])
    async def classify(model: Annotated[str, Form(description="a model name (GET /api/models)")],
                       file: FileField = None, url: UrlField = None, top_k: TopK = 3) -> dict[str, Any]:
        """Every face with the model's top-k labels and scores (or ``unknown``)."""
        img, _ = await _image_input(file, url)
        clf = await run_in_threadpool(engine.model, model)
        res = await run_in_threadpool(_infer, clf.classify, img, top_k)
        faces = res.to_dicts(flatten=clf.name)
        return {"model": model, "width": img.shape[1], "height": img.shape[0], "faces": faces}

    # -- models ----------------------------------------------------------------------------------
    @app.get("/api/models", tags=["models"])
    def list_models() -> dict[str, Any]:
        """Your models and the built-in attributes."""
        from faceforge.attributes import available_attributes

        return {"models": home.models(), "builtin": available_attributes()}

    @app.post("/api/models", tags=["models"], status_code=201)
    async def upload_model(file: Annotated[UploadFile, File(description="a .ffm model file")],
                           name: Annotated[str, Form()], replace: Annotated[bool, Form()] = False) -> dict[str, Any]:
        """Add a model file made by ``faceforge train``."""
        name = check_name(name, "model name")
        data = await _read_model(file)
        info = await run_in_threadpool(home.add_model, name, data, "upload", replace=replace)
        engine.forget_model(name)
        return info

    async def _read_model(f: UploadFile) -> bytes:
        data = await _read_limited(f, settings.max_request_bytes)
        if not data.startswith(b"PK\x03\x04"):
            raise RequestError(f"{_client_name(f)}: not a faceforge model (.ffm files are zip archives).", 415)
        return data

    @app.get("/api/models/{name}", tags=["models"])
    def get_model(name: str) -> dict[str, Any]:
        for m in home.models():
            if m["name"] == name:
                return m
        raise RequestError(f"No model called {name!r}.", 404)

    @app.get("/api/models/{name}/file", tags=["models"], response_class=FileResponse)
    def download_model(name: str) -> Any:
        """The model file itself (to use with the Python API or the CLI)."""
        path = home.model_file(name)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return FileResponse(path, media_type="application/zip", filename=f"{safe}.ffm")

    @app.delete("/api/models/{name}", tags=["models"])
    def delete_model(name: str) -> dict[str, Any]:
        home.delete_model(name)
        engine.forget_model(name)
        return {"deleted": name}

    # -- training --------------------------------------------------------------------------------
    @app.post("/api/training", tags=["training"], status_code=202)
    async def create_training(
            name: Annotated[str, Form(description="name of the model to create")],
            files: Annotated[list[UploadFile], File(description="photos, any number per class")],
            labels: Annotated[list[str], Form(description="one class label per photo, in the same order")],
            embedder: Annotated[str, Form()] = "dlib-resnet", head: Annotated[str, Form()] = "logreg",
            known: Annotated[str, Form(description="comma-separated known classes (me / not-me models)")] = "",
            augment: Annotated[bool, Form()] = False, replace: Annotated[bool, Form()] = False) -> dict[str, Any]:
        """Queue a training job on uploaded photos; poll ``GET /api/jobs/{id}``."""
        from faceforge.embedders import available_embedders

        name = check_name(name, "model name")
        if embedder not in available_embedders():
            raise RequestError(f"Unknown embedder {embedder!r}; choose from: {', '.join(available_embedders())}.", 422)
        if head not in ("logreg", "svm", "knn", "mlp"):
            raise RequestError(f"Unknown head {head!r}; choose from: logreg, svm, knn, mlp.", 422)
        if len(files) != len(labels):
            raise RequestError(f"Got {len(files)} photos but {len(labels)} labels; send one label per photo.", 422)
        if len(files) > settings.max_photos:
            raise RequestError(f"{len(files)} photos is over the limit of {settings.max_photos} per request.", 413)
        labels = [check_name(x, "class label") for x in labels]
        counts: dict[str, int] = {}
        for x in labels:
            counts[x] = counts.get(x, 0) + 1
        small = [f"{c} ({n})" for c, n in counts.items() if n < 2]
        if len(counts) < 2 or small:
            raise RequestError("Training needs at least 2 classes with at least 2 photos each"
                               + (f"; too few photos in: {', '.join(small)}" if small else
                                  f"; got only {', '.join(counts) or 'none'}") + ". Add photos and try again.", 422)
        known_list = [check_name(x, "known class") for x in _split(known)]
        if any(k not in counts for k in known_list):
            raise RequestError(f"Known classes {known_list} must be among the labels {sorted(counts)}.", 422)
        if not replace and any(m["name"] == name for m in home.models()):
            raise RequestError(f"A model called {name!r} exists; choose another name or send replace=true.", 409)
        items = []
        for f, label in zip(files, labels):
            data, kind = await _read_upload(f, settings.max_image_bytes, IMAGE_TYPES)
            items.append((label, data, kind))
        params = {"name": name, "embedder": embedder, "head": head, "known": known_list, "augment": augment,
                  "replace": replace, "photos": len(items), "classes": counts}
        job_id, d = home.new_job("train", params)
        try:
            await run_in_threadpool(write_training_inputs, d, items)
        except BaseException:
            home.discard_job_dir(job_id)
            raise
        home.queue_job(job_id, "train", params)
        runner.wake()
        return home.job(job_id)

    # -- videos ----------------------------------------------------------------------------------
    @app.post("/api/videos", tags=["faces"], status_code=202)
    async def analyze_video(file: Annotated[UploadFile, File(description="a video (MP4, AVI, MKV/WebM, MPEG)")],
                            attributes: Annotated[str, Form()] = "gender,age,emotion",
                            models: Annotated[str, Form()] = "", gallery: Annotated[str, Form()] = "",
                            every: Annotated[int, Form(ge=1, le=1000)] = 1) -> dict[str, Any]:
        """Queue the analysis of a video (tracked faces with steady labels); poll ``GET /api/jobs/{id}``."""
        attrs, mods = _split(attributes), _split(models)
        await run_in_threadpool(engine.face_models, attrs, mods, gallery or None)  # fail now, not in the job
        if not (attrs or mods or gallery):
            raise RequestError("Nothing to analyse: give attributes, models or a gallery.", 422)
        data, kind = await _read_upload(file, settings.max_request_bytes, VIDEO_TYPES)
        params = {"attributes": attrs, "models": mods, "gallery": gallery or None, "every": every,
                  "bytes": len(data), "type": kind}
        job_id, d = home.new_job("video", params)
        (d / "video").write_bytes(data)
        home.queue_job(job_id, "video", params)
        runner.wake()
        return home.job(job_id)

    # -- jobs ------------------------------------------------------------------------------------
    @app.get("/api/jobs", tags=["jobs"])
    def list_jobs(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        return {"jobs": home.jobs(limit)}

    @app.get("/api/jobs/{job_id}", tags=["jobs"])
    def get_job(job_id: str) -> dict[str, Any]:
        """A job's status (queued, running, done, failed), progress and result."""
        return home.job(job_id)

    @app.get("/api/jobs/{job_id}/frames", tags=["jobs"], response_class=PlainTextResponse)
    def job_frames(job_id: str) -> Any:
        """A finished video job's faces per frame, as JSON lines."""
        job = home.job(job_id)
        path = home.job_dir(job_id) / "frames.jsonl"
        if job["kind"] != "video" or not path.exists():
            raise RequestError(f"Job {job_id} has no frames (kind {job['kind']}, status {job['status']}).", 404)
        return PlainTextResponse(path.read_text(), media_type="application/x-ndjson")

    # -- galleries -------------------------------------------------------------------------------
    @app.get("/api/galleries", tags=["galleries"])
    def galleries() -> dict[str, Any]:
        out = []
        for g in list_galleries(home.galleries_path):
            out.append({"name": g, "people": len(engine.gallery(g).people())})
        return {"galleries": out}

    @app.delete("/api/galleries/{gallery}", tags=["galleries"])
    def delete_gallery(gallery: str) -> dict[str, Any]:
        engine.gallery(gallery).drop()
        engine.forget_gallery(gallery)
        return {"deleted": gallery}

    @app.get("/api/galleries/{gallery}/people", tags=["galleries"])
    def people(gallery: str) -> dict[str, Any]:
        return {"gallery": gallery, "people": [p.to_dict() for p in engine.gallery(gallery).people()]}

    @app.post("/api/galleries/{gallery}/people/{person}/photos", tags=["galleries"], status_code=201)
    async def enrol(gallery: str, person: str,
                    files: Annotated[list[UploadFile], File(description="photos of the person")]) -> dict[str, Any]:
        """Enrol photos of a person (creating the gallery and the person if needed)."""
        person = check_name(person, "person name")
        if len(files) > settings.max_photos:
            raise RequestError(f"{len(files)} photos is over the limit of {settings.max_photos} per request.", 413)
        g = engine.gallery(gallery, create=True)
        datas, names = [], []
        for f in files:
            data, _ = await _read_upload(f, settings.max_image_bytes, IMAGE_TYPES)
            datas.append(data)
            names.append(_client_name(f))
        from faceforge.sources import load_image

        def run() -> Any:
            imgs, ok_names, bad = [], [], []
            for data, nm in zip(datas, names):
                try:
                    imgs.append(load_image(data, settings.max_pixels))
                    ok_names.append(nm)
                except ImageError as e:
                    bad.append((nm, str(e)))
            rep = _infer(g.enrol, person, imgs, names=ok_names) if imgs else None
            if rep is None:
                raise RequestError(f"No readable photo for {person!r}: " + "; ".join(f"{n}: {m}" for n, m in bad), 422)
            rep.problems.extend(bad)
            return rep

        return (await run_in_threadpool(run)).to_dict()

    @app.delete("/api/galleries/{gallery}/people/{person}", tags=["galleries"])
    def delete_person(gallery: str, person: str) -> dict[str, Any]:
        """Delete a person and every stored face of theirs."""
        n = engine.gallery(gallery).remove(person)
        return {"deleted": person, "faces": n}

    @app.post("/api/galleries/{gallery}/identify", tags=["galleries"])
    async def identify(gallery: str, file: FileField = None, url: UrlField = None, top_k: TopK = 3) -> dict[str, Any]:
        """Every face of the image with the nearest enrolled person, or ``unknown``."""
        g = engine.gallery(gallery)
        img, _ = await _image_input(file, url)
        res = await run_in_threadpool(_infer, g.identify, img, top_k)
        return {"gallery": gallery, "faces": res.to_dicts(flatten=g.name)}

    @app.post("/api/galleries/{gallery}/verify", tags=["galleries"])
    async def verify(gallery: str, person: Annotated[str, Form()], file: FileField = None,
                     url: UrlField = None) -> dict[str, Any]:
        """Is the main face of the image this person?"""
        g = engine.gallery(gallery)
        img, _ = await _image_input(file, url)
        return (await run_in_threadpool(_infer, g.verify, img, person)).to_dict()

    # -- live over a WebSocket -------------------------------------------------------------------
    @app.websocket("/api/live")
    async def live(ws: WebSocket, models: str = "", attributes: str = "", gallery: str = "", key: str = "") -> None:
        """Send JPEG/PNG frames as binary messages; each gets a JSON reply with the tracked faces
        and their steady labels. Send the next frame after the reply (no queue builds up)."""
        from faceforge.live import LiveAnalyzer
        from faceforge.sources import load_image

        await ws.accept()  # then close with a reason the browser can see (a refused handshake is only "1006")
        if not _key_ok(ws.headers, ws.query_params):
            await ws.send_json({"error": "This server needs an API key: add ?key=KEY to the WebSocket URL."})
            await ws.close(code=4401, reason="API key required")
            return
        try:
            fm = await run_in_threadpool(engine.face_models, _split(attributes), _split(models), gallery or None)
            if not fm:
                raise RequestError("Nothing to show: give models, attributes or a gallery.", 422)
        except (RequestError, FaceforgeError) as e:
            await ws.send_json({"error": str(e)})
            await ws.close(code=4422)
            return
        la = LiveAnalyzer(fm, detector="live", workers=0)
        frame = 0
        try:
            while True:
                data = await ws.receive_bytes()
                t0 = time.perf_counter()
                if len(data) > settings.max_image_bytes or sniff(data) not in IMAGE_TYPES:
                    await ws.send_json({"error": "frames must be JPEG/PNG images under the size limit"})
                    continue
                try:
                    img = await run_in_threadpool(load_image, data, settings.max_pixels)
                except ImageError as e:
                    await ws.send_json({"error": str(e)})
                    continue
                faces = await run_in_threadpool(_infer, la.process, img, frame)
                await ws.send_json({"frame": frame, "width": img.shape[1], "height": img.shape[0],
                                    "ms": round((time.perf_counter() - t0) * 1000, 1),
                                    "faces": faces.to_dicts(1)})
                frame += 1
        except WebSocketDisconnect:
            pass
        finally:
            la.close()

    # -- the web page ----------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return FileResponse(WEB / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=WEB), name="static")

    app.add_middleware(_LimitBody, limit=settings.max_request_bytes)
    return app


def _client_name(f: Any) -> str:
    """A client's file name for messages and reports only (never a path): printable, at most 100 characters."""
    return "".join(c for c in (getattr(f, "filename", None) or "upload") if c.isprintable())[:100] or "upload"
