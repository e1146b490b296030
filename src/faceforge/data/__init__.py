"""Datasets for training: folders / CSV in, data checks, the embedding cache, embed_dataset().

Example:
    >>> from faceforge.data import load_dataset, check_duplicates, embed_dataset  # doctest: +SKIP
    >>> ds = load_dataset("photos/")           # photos/<class>/*.jpg            # doctest: +SKIP
    >>> problems = check_duplicates(ds)                                          # doctest: +SKIP
    >>> emb = embed_dataset(ds)                # cached in ~/.cache/faceforge   # doctest: +SKIP
    >>> emb.X.shape                                                              # doctest: +SKIP
    (48, 128)
"""

from faceforge.data.cache import EmbeddingCache, Record
from faceforge.data.checks import check_duplicates, dhash
from faceforge.data.dataset import Dataset, Problem, Sample, load_dataset
from faceforge.data.embed import (
    AUGMENTATIONS,
    UPSCALE,
    EmbeddedDataset,
    augment_image,
    embed_dataset,
    embed_image,
    cache_key,
    face_config,
)
from faceforge.errors import DatasetError

__all__ = [
    "AUGMENTATIONS", "UPSCALE", "Dataset", "DatasetError", "EmbeddedDataset", "EmbeddingCache", "Problem",
    "Record", "Sample", "augment_image", "check_duplicates", "dhash", "embed_dataset", "embed_image",
    "cache_key", "face_config", "load_dataset",
]
