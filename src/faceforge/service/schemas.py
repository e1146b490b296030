"""Response models of the API (what ``/docs`` shows for every route).

Shapes made by library code (a face, a prediction, a model's info, a gallery report) are *open*
models: the known fields are listed (all optional, so a route only sends what the library gave,
see ``response_model_exclude_unset``) and any other key passes through unchanged. In particular
a face carries one key per model that looked at it (``"gender"``, ``"age"``, your model's name,
``"identity"``), each a :class:`Prediction`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


#: the quality presets (``faceforge._quality.QUALITIES``): "accurate" trades time for accuracy
Quality = Literal["fast", "accurate"]


class Open(BaseModel):
    """A model whose unknown keys pass through unchanged."""

    model_config = ConfigDict(extra="allow")


class Error(BaseModel):
    """Every refused request: what was wrong and what to do."""

    detail: str = Field(description="what was expected, what arrived, and the fix")


class Prediction(Open):
    """What one model said about one face."""

    label: str | None = Field(None, description="the class, or `unknown`; for regression, the value as text")
    score: float | None = Field(None, description="probability of `label` (or the predicted value)")
    top_k: list[dict[str, Any]] | None = Field(None, description="`[{label, score}, ...]`, best first")
    known_score: float | None = Field(None, description="open-set similarity to the nearest known class")
    value: float | None = Field(None, description="the predicted number (regression)")


class Face(Open):
    """One face: where it is and, depending on the route, what models said about it.

    Keys other than the ones listed are model names (``gender``, ``age``, ``emotion``, your
    models, ``identity``) with a :class:`Prediction` each.
    """

    box: list[float] | None = Field(None, description="`[x1, y1, x2, y2]` in image pixels")
    score: float | None = Field(None, description="detection score (classify: the label's probability)")
    detection_score: float | None = None
    landmarks: dict[str, list[float]] | None = Field(None, description="five landmarks: name -> `[x, y]`")
    whole_image: bool | None = Field(None, description="no face was found and the whole image was taken as one")
    track: int | None = Field(None, description="track id (live and video)")
    visible: bool | None = Field(None, description="seen in this frame (false: the track is coasting)")
    label: str | None = Field(None, description="classify / identify: the class or person, or `unknown`")
    distance: float | None = Field(None, description="identify: distance to the nearest enrolled face")
    threshold: float | None = None
    top_k: list[dict[str, Any]] | None = None
    known_score: float | None = None
    value: float | None = None


class Health(BaseModel):
    status: str = Field(description="`ok`")
    version: str
    auth: bool = Field(description="whether API requests need a key")


class Detected(BaseModel):
    width: int
    height: int
    detector: str
    faces: list[Face]


class Analysed(BaseModel):
    width: int
    height: int
    faces: list[Face]


class Classified(BaseModel):
    model: str
    width: int
    height: int
    faces: list[Face]


class ModelInfo(Open):
    """A model file of the service."""

    name: str
    source: str | None = Field(None, description="`upload` or the training job that made it")
    task: str | None = None
    classes: list[str] | None = None
    embedder: str | None = None
    head: str | None = None
    metrics: dict[str, float] | None = None
    size: int | None = Field(None, description="bytes")
    created: float | None = Field(None, description="Unix time")


class Models(BaseModel):
    models: list[ModelInfo]
    builtin: list[str] = Field(description="built-in attributes (`gender`, `age`, `emotion`)")


class Deleted(BaseModel):
    deleted: str


class DeletedPerson(BaseModel):
    deleted: str
    faces: int = Field(description="stored faces removed")


class Job(Open):
    """A background job (training, video analysis) and, once done, its result."""

    id: str
    kind: str = Field(description="`train` or `video`")
    status: str = Field(description="`preparing`, `queued`, `running`, then `done`, `failed` or `cancelled`")
    params: dict[str, Any]
    progress: float = Field(description="0 to 1")
    message: str
    result: dict[str, Any] | None
    error: str | None
    created: float
    updated: float


class Jobs(BaseModel):
    jobs: list[Job]


class GalleryInfo(BaseModel):
    name: str
    people: int
    quality: Quality | None = Field(None, description="the preset the gallery's faces were enrolled with "
                                                      "(absent: fast)")


class Galleries(BaseModel):
    galleries: list[GalleryInfo]


class Person(Open):
    name: str
    faces: int | None = None
    created: float | None = None


class People(BaseModel):
    gallery: str
    people: list[Person]


class Problem(Open):
    photo: str | None = None
    message: str | None = None


class Enrolled(Open):
    """What enrolment did with each photo."""

    person: str
    added: list[str] | None = None
    duplicates: list[str] | None = None
    problems: list[Problem] | None = None
    several_faces: list[str] | None = Field(None, description="photos with more than one face (one was used)")
    faces: int | None = Field(None, description="faces stored for the person now")
    quality: Quality | None = Field(None, description="the gallery's preset, when not fast (its faces are "
                                                      "embedded with it)")


class Identified(BaseModel):
    gallery: str
    threshold: float | None = Field(None, description="the distance threshold in force")
    far: float | None = Field(None, description="its expected false-accept rate (null: not calibrated)")
    quality: Quality | None = Field(None, description="the preset the faces were embedded with (the "
                                                      "gallery's), when not fast")
    faces: list[Face]


class Verified(Open):
    """Is the main face of the image the person?"""

    person: str | None = None
    same: bool
    distance: float | None = None
    threshold: float | None = None
    quality: Quality | None = Field(None, description="the preset the face was embedded with (the "
                                                      "gallery's), when not fast")
    face: Face | None = None


# -- schedules (faceforge.service.schedules) ---------------------------------------------------------
_PATH = Field(min_length=1, max_length=4096, description="a folder or file on the server, inside one of the "
                                                           "server's collect_roots (a relative path is taken "
                                                           "inside the first of them)")


class TrainOptions(BaseModel):
    """Options of :func:`faceforge.train.train` a step may set (the others keep their defaults)."""

    model_config = ConfigDict(extra="forbid")

    embedder: str | None = Field(None, max_length=200, description="`auto`, an embedder's name, or a pair `a+b`")
    head: str | None = Field(None, max_length=20, description="`logreg`, `svm`, `knn`, `mlp`, `ridge` or `auto`")
    val: float | None = Field(None, ge=0, lt=0.9, description="held-out fraction (none: chosen)")
    folds: int | None = Field(None, ge=0, le=50)
    repeats: int | None = Field(None, ge=1, le=100)
    seed: int | None = Field(None, ge=0, le=2**31)
    augment: bool | None = None
    crops: str | None = Field(None, description="`auto`, `always` or `never`")
    detector: str | None = Field(None, max_length=64)
    target_far: float | None = Field(None, gt=0, lt=0.5)
    task: str | None = Field(None, description="`auto`, `classification` or `regression`")
    known: list[str] | None = Field(None, max_length=1000)
    negatives: list[str] | None = Field(None, max_length=1000)
    learning_curve: bool | None = None
    quality: Quality | None = Field(None, description="`fast` or `accurate` (flip-averaged embeddings)")
    head_params: dict[str, Any] | None = None
    label_column: str | None = Field(None, max_length=200)
    path_column: str | None = Field(None, max_length=200)
    image_root: str | None = Field(None, min_length=1, max_length=4096, description="CSV data: the photos' folder")


class IngestStep(BaseModel):
    """``faceforge.collect.ingest(inboxes, into, ...)``: file the new photos of the inboxes into the dataset."""

    model_config = ConfigDict(extra="forbid")

    step: Literal["ingest"]
    inboxes: list[Annotated[str, _PATH]] = Field(min_length=1, max_length=100)
    into: Annotated[str, _PATH]
    model: Annotated[str, _PATH] | None = Field(None, description="label an unlabelled inbox with this model")
    gallery: tuple[Annotated[str, _PATH], str] | None = Field(None, description="`[gallery file, gallery name]`")
    min_confidence: float | None = Field(None, ge=0, le=1)
    near_duplicate: float | None = Field(None, ge=0, le=4)


class RetrainStep(TrainOptions):
    """``faceforge.collect.retrain(dataset, model, ...)``: a new version, promoted by the rule."""

    step: Literal["retrain"]
    dataset: Annotated[str, _PATH]
    model: Annotated[str, _PATH]
    promote: str | None = Field(None, max_length=40, description="the promotion rule (default `if_better`)")
    margin: float | None = Field(None, ge=-1, le=1)
    metric: str | None = Field(None, max_length=40)


class TrainStep(TrainOptions):
    """``faceforge.train.train(data, output, ...)``: a model from a folder of class folders (or a CSV)."""

    step: Literal["train"]
    data: Annotated[str, _PATH]
    output: Annotated[str, _PATH]


Step = Annotated[IngestStep | RetrainStep | TrainStep, Field(discriminator="step")]


class ScheduleIn(BaseModel):
    """A schedule to create, or to replace (``PUT``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    cron: str = Field(min_length=1, max_length=200, description="5-field crontab: minute hour day month weekday "
                                                                 "(`0 2 * * *`: every day at 02:00; weekday 0 or 7 "
                                                                 "is Sunday)")
    timezone: str | None = Field(None, max_length=64, description="IANA name (default: the server's)")
    steps: list[Step] = Field(min_length=1, max_length=20, description="run in order; the run stops at the first "
                                                                      "step that fails")
    enabled: bool = True
    catch_up: bool = Field(True, description="run once at start when a firing was missed while the server was down")


class SchedulePatch(BaseModel):
    """The fields of a schedule to change (``PATCH``); the others stay."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=64)
    cron: str | None = Field(None, min_length=1, max_length=200)
    timezone: str | None = Field(None, max_length=64)
    steps: list[Step] | None = Field(None, min_length=1, max_length=20)
    enabled: bool | None = None
    catch_up: bool | None = None


class Schedule(BaseModel):
    """A stored schedule, with its next firing and its latest run."""

    id: str
    name: str
    cron: str
    timezone: str
    steps: list[dict[str, Any]]
    enabled: bool
    catch_up: bool
    created: float = Field(description="Unix time")
    updated: float
    last_run: float | None = Field(description="when its latest run was queued (Unix time)")
    next_run: float | None = Field(description="its next firing (null: disabled)")
    last_job: str | None = Field(description="the job of its latest run (`GET /api/jobs/{id}`)")
    last_status: str | None = Field(description="that job's status (null: never run)")


class Schedules(BaseModel):
    schedules: list[Schedule]


class ScheduleEvent(BaseModel):
    """A firing: `run` (a job was queued; the message says by what) or `skipped` (a run was still going)."""

    at: float
    event: str
    job: str | None
    message: str


class ScheduleRuns(BaseModel):
    schedule: str
    runs: list[Job] = Field(description="its pipeline jobs, newest first; a done job's `result.steps` holds each "
                                        "step's report")
    events: list[ScheduleEvent] = Field(description="its latest firings, newest first")
