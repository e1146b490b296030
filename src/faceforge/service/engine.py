"""The service's models, loaded once and shared by all requests."""

from __future__ import annotations

import threading
from typing import Any, Sequence

from faceforge.errors import FaceforgeError
from faceforge.service.safety import RequestError
from faceforge.service.state import Home


class Engine:
    """Loaded models (built-in attributes, the service's model files, galleries) and the lock
    that keeps inference on them one request at a time.

    Detectors and interpreters are not all safe to share between threads, and one inference
    already uses the cores; requests queue on :attr:`lock` instead of thrashing.
    """

    def __init__(self, home: Home) -> None:
        self.home = home
        self.lock = threading.RLock()
        self._models: dict[str, tuple[str, Any]] = {}
        self._galleries: dict[str, Any] = {}
        self._analyzers: dict[tuple, Any] = {}
        self._detectors: dict[tuple[str, str], Any] = {}
        self._guard = threading.Lock()

    # -- pieces --------------------------------------------------------------------------------
    def detector(self, name: str, quality: str = "fast") -> Any:
        """The shared face finder (:class:`~faceforge.pipeline.FaceFinder`) for detector ``name`` at ``quality``."""
        from faceforge.detectors import available_detectors
        from faceforge.pipeline import FaceFinder

        allowed = {"photo", "live", *available_detectors()}
        if name not in allowed:
            raise RequestError(f"Unknown detector {name!r}; choose from: {', '.join(sorted(allowed))}.", 422)
        with self._guard:
            if (name, quality) not in self._detectors:
                self._detectors[name, quality] = FaceFinder(name, quality=quality)
            return self._detectors[name, quality]

    def model(self, name: str) -> Any:
        """A model file of the service by name (reloaded when it was replaced)."""
        from faceforge.train import load_classifier

        path = self.home.model_file(name)
        with self._guard:
            hit = self._models.get(name)
            if hit is None or hit[0] != path.name:
                try:
                    hit = (path.name, load_classifier(path))
                except FaceforgeError as e:
                    raise RequestError(f"Model {name!r} cannot be loaded: {e}. Delete it (DELETE "
                                       f"/api/models/{name}) and upload a working one.", 422) from e
                self._models[name] = hit
            return hit[1]

    def forget_model(self, name: str) -> None:
        with self._guard:
            self._models.pop(name, None)
            self._analyzers.clear()

    def gallery(self, name: str, create: bool = False) -> Any:
        from faceforge.gallery import Gallery, check_name, list_galleries

        name = check_name(name, "gallery name")
        with self._guard:
            g = self._galleries.get(name)
            if g is None:
                if not create and name not in list_galleries(self.home.galleries_path):
                    raise RequestError(f"No gallery called {name!r}; enrol someone to create it.", 404)
                g = self._galleries[name] = Gallery(self.home.galleries_path, name)
            return g

    def forget_gallery(self, name: str) -> None:
        with self._guard:
            self._galleries.pop(name, None)
            self._analyzers.clear()

    def face_models(self, attributes: Sequence[str], models: Sequence[str], gallery: str | None) -> dict[str, Any]:
        """``{name: model}`` for the built-in ``attributes``, the service's ``models`` and a gallery
        (reported as ``"identity"``)."""
        from faceforge.attributes import available_attributes, load_attribute

        out: dict[str, Any] = {}
        for a in attributes:
            if a not in available_attributes():
                raise RequestError(f"Unknown attribute {a!r}; choose from: {', '.join(available_attributes())}.", 422)
            out[a] = load_attribute(a)
        for m in models:
            if m in out:
                raise RequestError(f"Model {m!r} has the name of a built-in attribute; rename it.", 409)
            out[m] = self.model(m)
        if gallery:
            out["identity"] = self.gallery(gallery)
        return out

    def analyzer(self, attributes: Sequence[str], models: Sequence[str], gallery: str | None,
                 detector: str = "photo", top_k: int = 3, quality: str = "fast") -> Any:
        from faceforge.attributes import Analyzer

        key = (tuple(attributes), tuple(models), gallery or "", detector, int(top_k), quality)
        fm = self.face_models(attributes, models, gallery)  # validates and reloads replaced models
        with self._guard:
            an = self._analyzers.get(key)
            if an is None or any(an.sources.get(k) is not v for k, v in fm.items()):
                if not fm:
                    raise RequestError("Nothing to analyse: give attributes, models or a gallery.", 422)
                an = Analyzer(attributes=(), models=fm, detector=detector, top_k=top_k, quality=quality)
                self._analyzers[key] = an
            return an
