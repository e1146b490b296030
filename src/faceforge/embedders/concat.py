"""Concatenated embedders: ``"dlib-resnet+expression"`` is both embeddings of a face side by side.

The feature search (:mod:`faceforge.train.auto`) tries the concatenation of its two best
embedders and keeps it when it scores better than either alone; a model file then names the
concatenation as its embedder. Each part cuts its own chip (its own alignment) from the image,
so a concatenation embeds from the image and the faces, not from one chip
(:meth:`faceforge.pipeline.FacePipeline.embed_chips` does it).

Each part is L2-normalised first when that part's heads would normalise it
(:attr:`~faceforge.embedders.base.Embedder.normalize_for_heads`), so neither part dominates by
its scale; the concatenation itself is used as is.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from faceforge.errors import ParameterError

#: joins part names: ``"dlib-resnet+expression"``.
SEP = "+"


def split_name(name: Any) -> list[str] | None:
    """The parts of a concatenation's name, or ``None`` for a single embedder's name."""
    if not isinstance(name, str) or SEP not in name:
        return None
    return name.split(SEP)


def join_names(names: Sequence[str]) -> str:
    """The name of the concatenation of ``names`` (in that order)."""
    return SEP.join(names)


def combine(normalize: Sequence[bool], embeddings: Sequence[np.ndarray]) -> np.ndarray:
    """Join the parts' ``(n, d_i)`` embeddings side by side, L2-normalising those with ``normalize`` True.

    The one rule for training (:func:`faceforge.data.embed_dataset`) and prediction
    (:meth:`ConcatEmbedder.combine`).
    """
    out = []
    for norm, e in zip(normalize, embeddings):
        e = np.asarray(e, np.float32)
        if norm:
            e = e / np.linalg.norm(e, axis=1, keepdims=True).clip(1e-12)
        out.append(e)
    return np.hstack(out).astype(np.float32, copy=False)


class ConcatEmbedder:
    """Two or more embedders side by side (see the module docs).

    Args:
        parts: the embedders, in order (at least 2, all different, none a concatenation).

    Attributes:
        name: the parts' names joined by ``+``.
        dim: the sum of the parts' dimensions.
        parts: the embedders.
    """

    metric = "cosine"
    threshold: float | None = None  # no identity threshold: the parts' scales differ
    #: the parts are normalised one by one (see :meth:`combine`); the whole is used as is
    normalize_for_heads = False

    def __init__(self, parts: Sequence[Any]) -> None:
        names = [p.name for p in parts]
        if len(parts) < 2 or len(set(names)) != len(names):
            raise ParameterError(f"a concatenation needs at least 2 different embedders, got {names}")
        self.parts = list(parts)
        self.name = join_names(names)
        self.dim = int(sum(int(p.dim) for p in parts))
        self.version = join_names([str(getattr(p, "version", "1")) for p in parts])
        self.alignment: dict[str, Any] = {}  # each part has its own

    def combine(self, embeddings: Sequence[np.ndarray]) -> np.ndarray:
        """``(n, dim) float32``: the parts' ``(n, d_i)`` embeddings, each normalised as its heads would."""
        return combine([bool(getattr(p, "normalize_for_heads", True)) for p in self.parts], embeddings)

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """Refused: each part needs its own chip.

        Raises:
            ParameterError: always; use :meth:`faceforge.pipeline.FacePipeline.embed_chips`.
        """
        raise ParameterError(f"{self.name} is a concatenation: each part cuts its own chip, so embed faces with "
                             f"FacePipeline(embedder={self.name!r}).embed(image) or .embed_chips(image, faces).")

    __call__ = embed

    def __repr__(self) -> str:
        return f"ConcatEmbedder({self.name!r}, dim={self.dim})"
