"""faceforge: a few photos per class in, a fast face classifier out."""

__version__ = "0.1.0"
