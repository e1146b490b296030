"""Bootstrapping from few labels: grouping unlabelled faces by person (more to come: autolabel, distil)."""

from faceforge.bootstrap.cluster import (
    THRESHOLD,
    Clustering,
    cluster_embeddings,
    cluster_faces,
    embed_faces_of,
    pairwise_f1,
    write_groups,
)

__all__ = ["THRESHOLD", "Clustering", "cluster_embeddings", "cluster_faces", "embed_faces_of", "pairwise_f1",
           "write_groups"]
