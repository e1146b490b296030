"""Alignment stage: landmarks -> canonical chips, or enlarged margin crops."""

from faceforge.align.core import (
    TEMPLATES,
    Template,
    align_faces,
    face_transforms,
    fit_template,
    get_template,
    transform_points,
    umeyama,
    warp_chips,
)

__all__ = ["TEMPLATES", "Template", "align_faces", "face_transforms", "fit_template", "get_template",
           "transform_points", "umeyama", "warp_chips"]
