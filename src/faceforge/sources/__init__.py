"""Sources: images, folders, globs, archives, videos, webcams and streams into RGB frames.

:func:`open_source` is the one way in; batch commands and live read every input through it.
"""

from faceforge.sources.frame import Frame, Skipped
from faceforge.sources.image import (
           IMAGE_SUFFIXES,
           VIDEO_SUFFIXES,
           load_image,
           to_rgb_uint8,
)
from faceforge.sources.media import expand_paths, iter_frames
from faceforge.sources.source import (
           KINDS,
           CaptureSource,
           FileSource,
           Source,
           open_source,
)
from faceforge.sources.video import frame_count, iter_video
from faceforge.sources.walk import media_kind

__all__ = ["IMAGE_SUFFIXES", "KINDS", "VIDEO_SUFFIXES", "CaptureSource", "FileSource", "Frame", "Skipped",
           "Source", "expand_paths", "frame_count", "iter_frames", "iter_video", "load_image", "media_kind",
           "open_source", "to_rgb_uint8"]
