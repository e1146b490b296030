"""Model registry: which pretrained weights exist, which package ships them, and how to load them."""

from faceforge.registry.registry import get_spec, list_models, register
from faceforge.registry.resolve import (
    atomic_write_bytes,
    cache_dir,
    derived_file,
    is_installed,
    require,
    sha256_file,
    weight_path,
)
from faceforge.registry.spec import ModelSpec

__all__ = [
    "ModelSpec", "atomic_write_bytes", "cache_dir", "derived_file", "get_spec", "is_installed",
    "list_models", "register", "require", "sha256_file", "weight_path",
]
