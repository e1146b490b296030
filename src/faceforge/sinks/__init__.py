"""Sinks: annotated images, JSON lines, crops, video files, windows and MJPEG streams."""

from faceforge._fs import check_output
from faceforge.sinks.annotate import annotate
from faceforge.sinks.files import (
           JsonlWriter,
           atomic_write,
           encode_image,
           guard,
           output_name,
           output_stem,
           save_image,
)
from faceforge.sinks.mjpeg import MjpegServer
from faceforge.sinks.video import VideoSink, WindowSink, has_gui

__all__ = ["JsonlWriter", "MjpegServer", "VideoSink", "WindowSink", "annotate", "atomic_write", "check_output",
           "encode_image", "guard", "has_gui", "output_name", "output_stem", "save_image"]
