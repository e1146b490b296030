"""Galleries of enrolled people: list, enrol photos, identify, verify, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool

from faceforge.errors import ImageError
from faceforge.service.deps import ApiKey, EngineDep, HomeDep, SettingsDep
from faceforge.service.inputs import (
    FileField,
    TopK,
    UrlField,
    check_photo_count,
    client_name,
    image_input,
    in_original,
    infer,
    read_upload,
)
from faceforge.service.safety import IMAGE_TYPES, RequestError
from faceforge.service.schemas import (
    Deleted,
    DeletedPerson,
    Enrolled,
    Galleries,
    Identified,
    People,
    Quality,
    Verified,
)

router = APIRouter(prefix="/api/galleries", tags=["galleries"], dependencies=[ApiKey])
Threshold = Annotated[float | None, Form(ge=0, description="distance at or below which a face is the person "
                                                           "(wins over target_far)")]
TargetFar = Annotated[float | None, Form(gt=0, lt=1, description="false-accept rate wanted (default 0.01): the "
                                                                 "threshold is calibrated for it")]
QualityField = Annotated[Quality | None, Form(description="fast or accurate (each face and its mirror image "
                                                          "embedded and averaged, ~2x the embedding time). A "
                                                          "gallery keeps the preset it was created with: on "
                                                          "enrol it creates the gallery with it; elsewhere it "
                                                          "must be the gallery's (default: the gallery's)")]


def _quality(g: Any) -> dict[str, str]:
    """``{"quality": "accurate"}`` for an accurate gallery; nothing for a fast one (answers as of old)."""
    return {} if g.quality == "fast" else {"quality": g.quality}


@router.get("", response_model=Galleries, response_model_exclude_unset=True)
def galleries(home: HomeDep, engine: EngineDep) -> dict[str, Any]:
    """Every gallery, how many people it holds and (when not fast) its quality preset."""
    from faceforge.gallery import list_galleries

    return {"galleries": [{"name": g, "people": len((gal := engine.gallery(g)).people()), **_quality(gal)}
                          for g in list_galleries(home.galleries_path)]}


@router.delete("/{gallery}", response_model=Deleted)
def delete_gallery(gallery: str, engine: EngineDep) -> dict[str, Any]:
    """Delete a gallery with everyone in it."""
    engine.gallery(gallery).drop()
    engine.forget_gallery(gallery)
    return {"deleted": gallery}


@router.get("/{gallery}/people", response_model=People, response_model_exclude_unset=True)
def people(gallery: str, engine: EngineDep) -> dict[str, Any]:
    """The people of a gallery with their number of stored faces."""
    return {"gallery": gallery, "people": [p.to_dict() for p in engine.gallery(gallery).people()]}


@router.post("/{gallery}/people/{person}/photos", status_code=201, response_model=Enrolled,
             response_model_exclude_unset=True)
async def enrol(gallery: str, person: str, settings: SettingsDep, engine: EngineDep, home: HomeDep,
                files: Annotated[list[UploadFile], File(description="photos of the person")],
                quality: QualityField = None) -> dict[str, Any]:
    """Enrol photos of a person (creating the gallery, at ``quality``, and the person if needed)."""
    from faceforge.gallery import Gallery, check_name, list_galleries
    from faceforge.sources import load_image

    person = check_name(person, "person name")
    check_photo_count(len(files), settings)
    if quality is not None and check_name(gallery, "gallery name") not in list_galleries(home.galleries_path):
        Gallery(home.galleries_path, gallery, quality=quality)  # created with its preset; the engine opens it
    g = engine.gallery(gallery, create=True)
    g.check_quality(quality)
    datas, names = [], []
    for f in files:
        data, _ = await read_upload(f, settings.max_image_bytes, IMAGE_TYPES)
        datas.append(data)
        names.append(client_name(f))

    def run() -> Any:
        imgs, ok_names, bad = [], [], []
        for data, nm in zip(datas, names):
            try:
                imgs.append(load_image(data, settings.max_pixels, max_decode_pixels=settings.max_decode_pixels))
                ok_names.append(nm)
            except ImageError as e:
                bad.append((nm, str(e)))
        rep = infer(engine, g.enrol, person, imgs, names=ok_names) if imgs else None
        if rep is None:
            raise RequestError(f"No readable photo for {person!r}: " + "; ".join(f"{n}: {m}" for n, m in bad), 422)
        rep.problems.extend(bad)
        return rep

    return {**(await run_in_threadpool(run)).to_dict(), **_quality(g)}


@router.delete("/{gallery}/people/{person}", response_model=DeletedPerson)
def delete_person(gallery: str, person: str, engine: EngineDep) -> dict[str, Any]:
    """Delete a person and every stored face of theirs."""
    n = engine.gallery(gallery).remove(person)
    return {"deleted": person, "faces": n}


@router.post("/{gallery}/identify", response_model=Identified, response_model_exclude_unset=True)
async def identify(gallery: str, settings: SettingsDep, engine: EngineDep, file: FileField = None,
                   url: UrlField = None, top_k: TopK = 3, threshold: Threshold = None,
                   target_far: TargetFar = None, quality: QualityField = None) -> dict[str, Any]:
    """Every face of the image with the nearest enrolled person, or ``unknown``; the threshold in
    force and its expected false-accept rate (``far``) come with the answer and each face."""
    g = engine.gallery(gallery)
    g.check_quality(quality)
    thr, far = g.decision(threshold, target_far)
    img, _, size = await image_input(file, url, settings)
    res = in_original(await run_in_threadpool(infer, engine, g.identify, img, top_k, threshold=threshold,
                                              target_far=target_far), img, size)
    return {"gallery": gallery, "threshold": thr, "far": far, **_quality(g), "faces": res.to_dicts(flatten=g.name)}


@router.post("/{gallery}/verify", response_model=Verified, response_model_exclude_unset=True)
async def verify(gallery: str, settings: SettingsDep, engine: EngineDep, person: Annotated[str, Form()],
                 file: FileField = None, url: UrlField = None, threshold: Threshold = None,
                 target_far: TargetFar = None, quality: QualityField = None) -> dict[str, Any]:
    """Is the main face of the image this person? With the threshold in force and its expected
    false-accept rate (``far``)."""
    g = engine.gallery(gallery)
    g.check_quality(quality)
    g.decision(threshold, target_far)  # a target_far outside the calibrated range fails before the upload is read
    img, _, _size = await image_input(file, url, settings)
    res = await run_in_threadpool(infer, engine, g.verify, img, person, threshold=threshold, target_far=target_far)
    return {**res.to_dict(), **_quality(g)}
