"""Faces in one image: detect, analyse (built-in attributes, your models, a gallery), classify."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form
from fastapi.concurrency import run_in_threadpool

from faceforge.service.deps import ApiKey, EngineDep, SettingsDep
from faceforge.service.inputs import FileField, TopK, UrlField, image_input, in_original, infer, split
from faceforge.service.schemas import Analysed, Classified, Detected, Quality

router = APIRouter(prefix="/api", tags=["faces"], dependencies=[ApiKey])

AttributesField = Annotated[str, Form(description="comma-separated: gender, age, emotion")]


@router.post("/detect", response_model=Detected, response_model_exclude_unset=True)
async def detect(settings: SettingsDep, engine: EngineDep, file: FileField = None, url: UrlField = None,
                 detector: Annotated[str, Form()] = "photo",
                 quality: Annotated[Quality, Form(description="fast, or accurate (the photo and the photo "
                                                              "enlarged 1.5x, fused: more small faces, about 4x "
                                                              "the time)")] = "fast") -> dict[str, Any]:
    """Every face with its box, 5 landmarks and score."""
    img, _, size = await image_input(file, url, settings)
    det = engine.detector(detector, quality)
    faces = in_original(await run_in_threadpool(infer, engine, det, img), img, size)
    return {"width": size[0], "height": size[1], "detector": det.name, "faces": faces.to_dicts()}


@router.post("/analyze", response_model=Analysed, response_model_exclude_unset=True)
async def analyze(settings: SettingsDep, engine: EngineDep, file: FileField = None, url: UrlField = None,
                  attributes: AttributesField = "gender,age,emotion",
                  models: Annotated[str, Form(description="comma-separated model names")] = "",
                  gallery: Annotated[str, Form(description="a gallery to identify people in")] = "",
                  top_k: TopK = 3,
                  quality: Annotated[Quality, Form(description="fast, or accurate (test-time augmentation: "
                                                               "slower, more accurate; a gallery identifies "
                                                               "with its own preset)")] = "fast") -> dict[str, Any]:
    """Every face with built-in attributes, your models' labels and (with a gallery) who it is."""
    img, _, size = await image_input(file, url, settings)
    an = await run_in_threadpool(engine.analyzer, split(attributes), split(models), gallery or None, "photo", top_k,
                                 quality)
    res = in_original(await run_in_threadpool(infer, engine, an.analyze, img), img, size)
    return {"width": size[0], "height": size[1], "faces": res.to_dicts()}


@router.post("/classify", response_model=Classified, response_model_exclude_unset=True)
async def classify(settings: SettingsDep, engine: EngineDep,
                   model: Annotated[str, Form(description="a model name (GET /api/models)")],
                   file: FileField = None, url: UrlField = None, top_k: TopK = 3) -> dict[str, Any]:
    """Every face with the model's top-k labels and scores (or ``unknown``)."""
    img, _, size = await image_input(file, url, settings)
    clf = await run_in_threadpool(engine.model, model)
    res = in_original(await run_in_threadpool(infer, engine, clf.classify, img, top_k), img, size)
    faces = res.to_dicts(flatten=clf.name)
    return {"model": model, "width": size[0], "height": size[1], "faces": faces}
