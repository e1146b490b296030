"""Where live frames go; moved to :mod:`faceforge.sinks` (this module re-exports them)."""

from faceforge.sinks.mjpeg import MjpegServer
from faceforge.sinks.video import VideoSink, WindowSink, has_gui

__all__ = ["MjpegServer", "VideoSink", "WindowSink", "has_gui"]
