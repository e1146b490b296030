"""Bootstrapping from few labels: pseudo-labelling with a teacher (autolabel), a student trained on
the pseudo-labels (distil), and grouping unlabelled faces by person (cluster)."""

from faceforge.bootstrap.autolabel import AutolabelResult, autolabel
from faceforge.bootstrap.distil import DistilResult, distil
from faceforge.bootstrap.cluster import (
    THRESHOLD,
    Clustering,
    cluster_embeddings,
    cluster_faces,
    embed_faces_of,
    pairwise_f1,
    write_groups,
)

__all__ = ["AutolabelResult", "DistilResult", "THRESHOLD", "autolabel", "distil", "Clustering", "cluster_embeddings",
           "cluster_faces", "embed_faces_of", "pairwise_f1", "write_groups"]
