"""Sinks: annotated images, JSON lines, crops."""

from faceforge.sinks.annotate import annotate
from faceforge.sinks.files import JsonlWriter, atomic_write, encode_image, guard, output_name, save_image

__all__ = ["JsonlWriter", "annotate", "atomic_write", "encode_image", "guard", "output_name", "save_image"]
