"""Sources: images, folders, videos, webcams and streams into RGB frames."""

from faceforge.sources.image import IMAGE_SUFFIXES, VIDEO_SUFFIXES, load_image, to_rgb_uint8
from faceforge.sources.media import Frame, expand_paths, iter_frames, iter_video, media_kind

__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "Frame", "expand_paths", "iter_frames", "iter_video",
           "load_image", "media_kind", "to_rgb_uint8"]
