"""What a gallery answers: an enrolment's report, a person, a verification."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from faceforge.types import Faces


@dataclass
class EnrolReport:
    """What :meth:`Gallery.enrol` did with each photo."""

    person: str
    added: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (photo, message)
    several_faces: list[str] = field(default_factory=list)  # photos with more than one face (largest used)
    faces: int = 0  # faces stored for the person after enrolment

    def to_dict(self) -> dict[str, Any]:
        return {"person": self.person, "added": self.added, "duplicates": self.duplicates,
                "problems": [{"photo": p, "message": m} for p, m in self.problems],
                "several_faces": self.several_faces, "faces": self.faces}


@dataclass
class Person:
    name: str
    faces: int
    created: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "faces": self.faces, "created": self.created}


@dataclass
class GalleryVerification:
    """Is the main face of an image the enrolled ``person``?"""

    person: str
    same: bool
    distance: float
    threshold: float
    face: Faces
    far: float | None = None  # false-accept rate expected at ``threshold`` (None: not calibrated)

    def to_dict(self, ndigits: int = 4) -> dict[str, Any]:
        return {"person": self.person, "same": self.same, "distance": round(self.distance, ndigits),
                "threshold": self.threshold, "far": self.far, "face": self.face.to_dicts()[0]}
