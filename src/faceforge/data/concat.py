"""Embedding a dataset with a concatenation of embedders (``"a+b"``): each part embedded and cached
alone (so the feature search's embeddings are reused), then the rows joined side by side."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from faceforge.data.cache import EmbeddingCache
from faceforge.errors import DatasetError


def embed_concat(dataset: Any, embedder: str, *, cache: EmbeddingCache | str | os.PathLike | None = None,
                 **options: Any) -> Any:
    """:func:`~faceforge.data.embed_dataset` for ``embedder="a+b"``.

    The parts find the same faces (one detector, one crop rule), so their rows match; rows are
    joined by (photo, augmented copy, order) and a row only some part kept is dropped.

    Args:
        dataset: from :func:`~faceforge.data.load_dataset`.
        embedder: ``"a+b"``.
        cache: as for :func:`~faceforge.data.embed_dataset`.
        **options: the other options of :func:`~faceforge.data.embed_dataset`.

    Returns:
        :class:`~faceforge.data.embed.EmbeddedDataset` named ``embedder``, ``X`` the parts'
        embeddings joined by :func:`faceforge.embedders.concat.combine`.

    Raises:
        ParameterError: an unknown part.
        DatasetError: no row kept by every part.
    """
    from faceforge.data.embed import embed_dataset
    from faceforge.embedders.base import embedder_class, embedder_version, embedder_weights
    from faceforge.embedders.concat import combine, split_name

    parts = split_name(embedder) or [embedder]
    for p in parts:
        embedder_class(p)  # an unknown part is refused before any image is read
    db = cache if isinstance(cache, EmbeddingCache) else EmbeddingCache(cache)
    try:
        eds = [embed_dataset(dataset, embedder=p, cache=db, **options) for p in parts]
    finally:
        if db is not cache:
            db.close()
    keyed = [_keys(e) for e in eds]
    common = set(keyed[0]).intersection(*map(set, keyed[1:]))
    order = [k for k in keyed[0] if k in common]
    if not order:
        raise DatasetError(f"{getattr(dataset, 'root', 'the data')}: the parts of {embedder} kept no face in "
                           f"common; train with one embedder.")
    pos = [{k: i for i, k in enumerate(ks)} for ks in keyed]
    idx = [np.array([p[k] for k in order], np.int64) for p in pos]
    first = eds[0]
    X = combine([bool(getattr(embedder_class(p), "normalize_for_heads", True)) for p in parts],
                [e.X[i] for e, i in zip(eds, idx)])
    problems = list(first.problems)
    for e in eds[1:]:
        problems += [p for p in e.problems if p not in problems]
    config = {**first.config, "embedder": embedder, "embedder_version": embedder_version(embedder),
              "weights": embedder_weights(embedder)}
    return dataclasses.replace(
        first, X=X, y=first.y[idx[0]], paths=[first.paths[i] for i in idx[0]], augmented=first.augmented[idx[0]],
        embedder=embedder, problems=problems, seconds=sum(e.seconds for e in eds),
        cache_hits=sum(e.cache_hits for e in eds), cache_misses=sum(e.cache_misses for e in eds), config=config)


def _keys(ed: Any) -> list[tuple[str, bool, int]]:
    """(photo, augmented, k-th such row) of every row: a photo's augmented copies in their order."""
    seen: dict[tuple[str, bool], int] = {}
    out = []
    for path, aug in zip(ed.paths, np.asarray(ed.augmented, bool).tolist()):
        k = (str(path), bool(aug))
        seen[k] = seen.get(k, 0) + 1
        out.append((k[0], k[1], seen[k]))
    return out
