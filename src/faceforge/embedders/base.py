"""The embedder interface and the name -> embedder factory."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from faceforge import registry
from faceforge.embedders.tta import check_tta, flip_average
from faceforge.errors import ImageError, ParameterError

#: name -> "module:Class": a live view of the registry's embedders (for code that reads the
#: table; :func:`get_embedder` builds them through :func:`faceforge.registry.create`).
EMBEDDERS = registry.class_map("embed")
DEFAULT_EMBEDDER = "dlib-resnet"


class Embedder:
    """Base class of every embedder: aligned face chips in, one feature vector per chip out.

    A subclass names its registry entry in its class statement (``class DlibResNetEmbedder(
    Embedder, spec="dlib-resnet")``); :attr:`name`, :attr:`dim`, :attr:`input_size`,
    :attr:`alignment`, :attr:`metric` and :attr:`threshold` are then read from the entry's
    ``input`` (``dim``, ``size``, ``alignment``, ``metric``, ``threshold``).

    Attributes:
        name: registry name (also the model-file embedder id).
        dim: length of each embedding.
        input_size: ``(width, height)`` of the chips :meth:`embed` expects.
        alignment: how to cut chips for this embedder: ``{"template": name, "size": px,
            "margin": k}`` understood by :func:`faceforge.align.align_faces`.
        metric: ``"euclidean"`` or ``"cosine"``: how embeddings compare.
        threshold: distance below which two faces are the same identity (identity embedders).
        version: version of the embedding computation (part of the cache key).
    """

    name = "embedder"
    dim = 0
    input_size: tuple[int, int] = (0, 0)
    alignment: dict[str, Any] = {}
    metric = "euclidean"
    threshold: float | None = None
    #: Bump when the same weights give different embeddings (layout, preprocessing), so cached
    #: embeddings of the old version are not reused.
    version = "1"
    #: Heads L2-normalise these embeddings before use (right for identity embeddings, whose
    #: direction matters; wrong for a concatenation of different outputs).
    normalize_for_heads = True

    def __init_subclass__(cls, spec: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if spec is None:
            return
        s = registry.get_spec(spec)
        inp = s.input
        cls.name = s.name
        cls.dim = int(inp["dim"])
        w, h = s.size or (0, 0)
        cls.input_size = (w, h)
        cls.alignment = {**inp.get("alignment", {}), "size": w}
        cls.metric = str(inp.get("metric", "euclidean"))
        cls.threshold = None if inp.get("threshold") is None else float(inp["threshold"])

    def embed(self, chips: np.ndarray, tta: str = "none") -> np.ndarray:
        """Embed aligned chips.

        Args:
            chips: ``(n, H, W, 3) uint8`` RGB chips of size :attr:`input_size`, or one
                ``(H, W, 3)`` chip.
            tta: test-time augmentation: ``"none"`` (default: one run per chip, the raw model
                output) or ``"flip"`` (each chip and its mirror image embedded, the two
                averaged; twice the model time; see :mod:`faceforge.embedders.tta`).

        Returns:
            ``(n, dim) float32`` embeddings (raw model output, or its flip average; see :attr:`metric`).

        Raises:
            ImageError: chips of another shape or dtype.
            ParameterError: an unknown ``tta``.
        """
        tta = check_tta(tta)
        chips = np.asarray(chips)
        if chips.ndim == 3:
            chips = chips[None]
        w, h = self.input_size
        if chips.ndim != 4 or chips.shape[1:] != (h, w, 3) or chips.dtype != np.uint8:
            raise ImageError(
                f"{self.name} expects chips of shape (n, {h}, {w}, 3) uint8 (cut them with "
                f"faceforge.align.align_faces), got shape {chips.shape} {chips.dtype}"
            )
        if len(chips) == 0:
            return np.zeros((0, self.dim), np.float32)
        if tta == "flip":
            return flip_average(self._embed, chips)
        return self._embed(chips)

    __call__ = embed

    def _embed(self, chips: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Distance between embeddings ``a (n,d)`` and ``b (n,d)`` (row-wise) in :attr:`metric`."""
        a = np.atleast_2d(np.asarray(a, np.float32))
        b = np.atleast_2d(np.asarray(b, np.float32))
        if self.metric == "cosine":
            an = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
            bn = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
            return 1.0 - np.sum(an * bn, axis=1)
        return np.linalg.norm(a - b, axis=1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"


def available_embedders() -> list[str]:
    """Names accepted by :func:`get_embedder`."""
    return registry.model_names("embed")


def _check_name(name: Any) -> str:
    from faceforge.embedders.concat import split_name

    parts = split_name(name)
    if parts is not None:  # "a+b": every part a known embedder, no repeats
        for p in parts:
            _check_name(p)
        if len(set(parts)) != len(parts):
            raise ParameterError(f"Embedder {name!r} repeats a part; concatenate different embedders.")
        return str(name)
    if not isinstance(name, str) or name not in available_embedders():
        close = registry.close_names(name, "embed", n=2) if isinstance(name, str) else []
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ParameterError(f"Unknown embedder {name!r}.{hint} Choose one of: {', '.join(available_embedders())}")
    return name


@functools.lru_cache(maxsize=8)
def _cached(name: str, items: tuple) -> Embedder:
    return _build(name, dict(items))


def _build(name: str, kwargs: dict[str, Any]) -> Any:
    from faceforge.embedders.concat import ConcatEmbedder, split_name

    parts = split_name(_check_name(name))
    if parts is not None:
        return ConcatEmbedder([get_embedder(p, **kwargs) for p in parts])
    return registry.create(name, "embed", **kwargs)


def get_embedder(name: str = DEFAULT_EMBEDDER, cached: bool = True, **kwargs: Any) -> Embedder:
    """Return an embedder by name (one instance per process and options when ``cached``).

    ``"a+b"`` gives a :class:`~faceforge.embedders.concat.ConcatEmbedder` of ``a`` and ``b``.

    Raises:
        ParameterError: unknown name.
        ModelNotFoundError: the package shipping the weights is missing.
    """
    if cached:
        return _cached(name, tuple(sorted(kwargs.items())))
    return _build(name, kwargs)


def embedder_class(name: str) -> type:
    """The class of embedder ``name`` (imports its module, loads no model).

    Raises:
        ParameterError: unknown name.
    """
    from faceforge.embedders.concat import ConcatEmbedder, split_name

    if split_name(_check_name(name)) is not None:
        return ConcatEmbedder
    return registry.model_class(name, "embed")


def embedder_version(name: str) -> str:
    """:attr:`Embedder.version` of embedder ``name`` (imports its module, loads no model); the
    parts' versions joined by ``+`` for a concatenation."""
    from faceforge.embedders.concat import join_names, split_name

    parts = split_name(_check_name(name))
    if parts is not None:
        return join_names([embedder_version(p) for p in parts])
    return str(getattr(embedder_class(name), "version", "1"))


def embedder_parts(name: str) -> list[str]:
    """The registry entries embedder ``name`` uses: itself, or a concatenation's parts.

    Raises:
        ParameterError: unknown name.
    """
    from faceforge.embedders.concat import split_name

    return split_name(_check_name(name)) or [registry.get_spec(name).name]


def embedder_weights(name: str) -> str:
    """SHA-256 of the weights of embedder ``name`` (the parts' joined by ``+`` for a concatenation)."""
    from faceforge.embedders.concat import join_names

    return join_names([registry.get_spec(p).sha256 or "" for p in embedder_parts(name)])


def identity_threshold(name: str) -> float | None:
    """The registry's same-person distance of an identity embedder; ``None`` for attribute
    embedders and concatenations (whose distances mix scales)."""
    from faceforge.embedders.concat import split_name

    if split_name(_check_name(name)) is not None:
        return None
    t = registry.get_spec(name).input.get("threshold")
    return None if t is None else float(t)
