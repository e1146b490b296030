"""Embedding stage: aligned chips in, one feature vector per face out."""

from faceforge.embedders.base import DEFAULT_EMBEDDER, Embedder, available_embedders, get_embedder

__all__ = ["DEFAULT_EMBEDDER", "Embedder", "available_embedders", "get_embedder"]
