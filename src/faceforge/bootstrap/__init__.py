"""Bootstrapping from few labels: pseudo-labelling with a teacher (autolabel) and grouping unlabelled
faces by person (cluster)."""

from faceforge.bootstrap.autolabel import AutolabelResult, autolabel
from faceforge.bootstrap.cluster import (
    THRESHOLD,
    Clustering,
    cluster_embeddings,
    cluster_faces,
    embed_faces_of,
    pairwise_f1,
    write_groups,
)

__all__ = ["AutolabelResult", "THRESHOLD", "autolabel", "Clustering", "cluster_embeddings", "cluster_faces", "embed_faces_of", "pairwise_f1",
           "write_groups"]
