"""Response models of the API (what ``/docs`` shows for every route).

Shapes made by library code (a face, a prediction, a model's info, a gallery report) are *open*
models: the known fields are listed (all optional, so a route only sends what the library gave,
see ``response_model_exclude_unset``) and any other key passes through unchanged. In particular
a face carries one key per model that looked at it (``"gender"``, ``"age"``, your model's name,
``"identity"``), each a :class:`Prediction`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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


class Identified(BaseModel):
    gallery: str
    threshold: float | None = Field(None, description="the distance threshold in force")
    far: float | None = Field(None, description="its expected false-accept rate (null: not calibrated)")
    faces: list[Face]


class Verified(Open):
    """Is the main face of the image the person?"""

    person: str | None = None
    same: bool
    distance: float | None = None
    threshold: float | None = None
    face: Face | None = None
