"""Background jobs: queue a training job or a video analysis, then poll ``GET /api/jobs/{id}``."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse

from faceforge.service.deps import ApiKey, EngineDep, HomeDep, RunnerDep, SettingsDep
from faceforge.service.inputs import check_photo_count, read_upload, split
from faceforge.service.safety import IMAGE_TYPES, VIDEO_TYPES, RequestError
from faceforge.service.schemas import Error, Job, Jobs, Quality
from faceforge.service.state import FINAL_STATES

router = APIRouter(prefix="/api", dependencies=[ApiKey])

HEADS = ("logreg", "svm", "knn", "mlp")
_NDJSON: dict[int | str, dict[str, Any]] = {
    200: {"description": "one JSON object per analysed frame: `{frame, time_s, faces}`",
          "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}}


@router.post("/training", tags=["training"], status_code=202, response_model=Job)
async def create_training(
        settings: SettingsDep, home: HomeDep, runner: RunnerDep,
        name: Annotated[str, Form(description="name of the model to create")],
        files: Annotated[list[UploadFile], File(description="photos, any number per class")],
        labels: Annotated[list[str], Form(description="one class label per photo, in the same order")],
        embedder: Annotated[str, Form(description="auto (default: the feature search chooses the embedder and "
                                                  "the head), or an embedder's name; a pair as a+b")] = "auto",
        head: Annotated[str, Form(description="empty (default): chosen with the embedder (by the search, else "
                                              "logreg); or logreg, svm, knn, mlp, auto")] = "",
        known: Annotated[str, Form(description="comma-separated known classes (me / not-me models)")] = "",
        negatives: Annotated[str, Form(description="comma-separated classes of other people's faces (me / not-me "
                                                   "models); default none: every class is ordinary")] = "",
        augment: Annotated[bool, Form()] = False, replace: Annotated[bool, Form()] = False,
        quality: Annotated[Quality, Form(description="fast, or accurate: faces found by the two-view detector "
                                                     "and embedded averaged with their mirror image (slower); "
                                                     "the model classifies the same way")] = "fast") -> dict[str, Any]:
    """Queue a training job on uploaded photos; poll ``GET /api/jobs/{id}``."""
    from faceforge.embedders import available_embedders
    from faceforge.embedders.base import embedder_class
    from faceforge.errors import ParameterError
    from faceforge.gallery import check_name
    from faceforge.service.jobs import write_training_inputs

    name = check_name(name, "model name")
    try:
        if embedder != "auto":
            embedder_class(embedder)  # a known embedder, or a pair "a+b" of known ones
    except ParameterError:
        raise RequestError(f"Unknown embedder {embedder!r}; choose auto or one of: "
                           f"{', '.join(available_embedders())} (a pair as a+b).", 422) from None
    if head and head not in HEADS + ("auto",):
        raise RequestError(f"Unknown head {head!r}; leave it empty (chosen) or choose from: "
                           f"{', '.join(HEADS + ('auto',))}.", 422)
    if len(files) != len(labels):
        raise RequestError(f"Got {len(files)} photos but {len(labels)} labels; send one label per photo.", 422)
    check_photo_count(len(files), settings)
    labels = [check_name(x, "class label") for x in labels]
    counts: dict[str, int] = {}
    for x in labels:
        counts[x] = counts.get(x, 0) + 1
    small = [f"{c} ({n})" for c, n in counts.items() if n < 2]
    if len(counts) < 2 or small:
        raise RequestError("Training needs at least 2 classes with at least 2 photos each"
                           + (f"; too few photos in: {', '.join(small)}" if small else
                              f"; got only {', '.join(counts) or 'none'}") + ". Add photos and try again.", 422)
    known_list = [check_name(x, "known class") for x in split(known)]
    if any(k not in counts for k in known_list):
        raise RequestError(f"Known classes {known_list} must be among the labels {sorted(counts)}.", 422)
    neg_list = [check_name(x, "negatives class") for x in split(negatives)]
    if any(k not in counts for k in neg_list) or len(neg_list) >= len(counts):
        raise RequestError(f"Negatives {neg_list} must be among the labels {sorted(counts)} and leave at least "
                           f"one class to recognise.", 422)
    if not replace and any(m["name"] == name for m in home.models()):
        raise RequestError(f"A model called {name!r} exists; choose another name or send replace=true.", 409)
    items = []
    for f, label in zip(files, labels):
        data, kind = await read_upload(f, settings.max_image_bytes, IMAGE_TYPES)
        items.append((label, data, kind))
    params = {"name": name, "embedder": embedder, "head": head or None, "known": known_list, "negatives": neg_list,
              "augment": augment, **({} if quality == "fast" else {"quality": quality}),
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


@router.post("/videos", tags=["faces"], status_code=202, response_model=Job)
async def analyze_video(settings: SettingsDep, home: HomeDep, engine: EngineDep, runner: RunnerDep,
                        file: Annotated[UploadFile, File(description="a video (MP4, AVI, MKV/WebM, MPEG)")],
                        attributes: Annotated[str, Form()] = "gender,age,emotion",
                        models: Annotated[str, Form()] = "", gallery: Annotated[str, Form()] = "",
                        every: Annotated[int, Form(ge=1, le=1000)] = 1) -> dict[str, Any]:
    """Queue the analysis of a video (tracked faces with steady labels); poll ``GET /api/jobs/{id}``."""
    attrs, mods = split(attributes), split(models)
    await run_in_threadpool(engine.face_models, attrs, mods, gallery or None)  # fail now, not in the job
    if not (attrs or mods or gallery):
        raise RequestError("Nothing to analyse: give attributes, models or a gallery.", 422)
    data, kind = await read_upload(file, settings.max_request_bytes, VIDEO_TYPES)
    params = {"attributes": attrs, "models": mods, "gallery": gallery or None, "every": every,
              "bytes": len(data), "type": kind}
    job_id, d = home.new_job("video", params)
    try:
        await run_in_threadpool((d / "video").write_bytes, data)
    except BaseException:
        home.discard_job_dir(job_id)
        raise
    home.queue_job(job_id, "video", params)
    runner.wake()
    return home.job(job_id)


@router.get("/jobs", tags=["jobs"], response_model=Jobs)
def list_jobs(home: HomeDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """The latest jobs, newest first."""
    return {"jobs": home.jobs(limit)}


@router.get("/jobs/{job_id}", tags=["jobs"], response_model=Job)
def get_job(job_id: str, home: HomeDep) -> dict[str, Any]:
    """A job's status (preparing, queued, running, done, failed, cancelled), progress and result."""
    return home.job(job_id)


@router.post("/jobs/{job_id}/cancel", tags=["jobs"], response_model=Job,
             responses={409: {"model": Error, "description": "the job has ended already"}})
def cancel_job(job_id: str, home: HomeDep, runner: RunnerDep) -> dict[str, Any]:
    """Cancel a queued or running job: a running one is killed with every process it started.
    The job ends ``cancelled`` and its inputs are deleted."""
    from faceforge.service.jobs import drop_inputs

    job = home.job(job_id)
    if job["status"] in FINAL_STATES:
        raise RequestError(f"Job {job_id} has ended already (status {job['status']}); nothing to cancel.", 409)
    if job["status"] == "preparing":
        raise RequestError(f"Job {job_id} is still receiving its inputs; cancel it once it is queued.", 409)
    if home.cancel_queued(job_id):
        drop_inputs(home.job_dir(job_id))
        return home.job(job_id)
    runner.cancel(job_id)  # it started meanwhile: kill its child
    end = time.monotonic() + 10.0
    while time.monotonic() < end:
        job = home.job(job_id)
        if job["status"] in FINAL_STATES:
            return job
        if not runner.is_active(job_id):
            break
        time.sleep(0.05)
    job = home.job(job_id)
    if job["status"] == "running" and not runner.is_active(job_id):  # left by a server that stopped
        drop_inputs(home.job_dir(job_id))
        home.update_job(job_id, status="cancelled", message="cancelled", error="cancelled by request")
        job = home.job(job_id)
    return job


@router.get("/jobs/{job_id}/frames", tags=["jobs"], response_class=PlainTextResponse, responses=_NDJSON)
def job_frames(job_id: str, home: HomeDep) -> Any:
    """A finished video job's faces per frame, as JSON lines."""
    job = home.job(job_id)
    path = home.job_dir(job_id) / "frames.jsonl"
    if job["kind"] != "video" or not path.exists():
        raise RequestError(f"Job {job_id} has no frames (kind {job['kind']}, status {job['status']}).", 404)
    return PlainTextResponse(path.read_text(), media_type="application/x-ndjson")
