"""The spine of faceforge: one face finder, the face pipeline (find -> align -> embed), face models
run on the faces found, and verification."""

from faceforge.pipeline.core import FacePipeline, ImageLike, detect, embed, run_models
from faceforge.pipeline.finder import CROPS, UPSCALE, FaceFinder, check_crops, rescale_faces
from faceforge.pipeline.verify import Verification, verify

__all__ = ["CROPS", "UPSCALE", "FaceFinder", "FacePipeline", "ImageLike", "Verification", "check_crops", "detect",
           "embed", "rescale_faces", "run_models", "verify"]
