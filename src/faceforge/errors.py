"""Typed errors. Every message says what was expected, what arrived, and the fix."""

from __future__ import annotations


class FaceforgeError(Exception):
    """Base class of every error faceforge raises on purpose."""


class ModelNotFoundError(FaceforgeError):
    """A model name is unknown, or the package that ships its weights is missing."""


class ModelIntegrityError(FaceforgeError):
    """A weight file exists but its checksum differs from the registry's."""


class ImageError(FaceforgeError):
    """An image could not be read or is unusable (corrupt, empty, too large, unsupported)."""


class SourceError(FaceforgeError):
    """A path, folder, video or stream could not be opened or holds nothing usable."""


class ParameterError(FaceforgeError, ValueError):
    """A parameter is outside its allowed set or range."""


class NotFittedError(FaceforgeError):
    """A head was used before it was trained."""


class BundleError(FaceforgeError):
    """A model file is unreadable, from a newer format, or needs a missing embedder."""


class DatasetError(FaceforgeError):
    """A dataset (folder or CSV) is missing, empty, or unusable for training as it stands."""


class OutputError(FaceforgeError):
    """An output path is, holds or lies inside an input, or is the wrong kind of path (a file for a folder)."""


class ScheduleError(ParameterError):
    """A schedule is invalid: its cron, time zone or steps, or a step's path outside the allowed collect roots."""


class VersionError(FaceforgeError):
    """A model version that does not exist or is damaged, or a rollback with no earlier promoted version."""


class BusyError(FaceforgeError):
    """Another process holds a lock that this operation needs (e.g. a retrain of the same model is running)."""
