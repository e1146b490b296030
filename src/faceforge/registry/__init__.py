"""Model registry: the one source of truth for every detector, embedder, head and attribute model.

Each :class:`ModelSpec` (in :mod:`faceforge.registry.catalog`) names the code that runs the
model, the package that ships its weights, their licence and checksum, and its input; the model
modules read their constants from it. :func:`create` builds a model by name, :func:`resolve_name`
follows aliases (``"blazeface"``, ``"photo"``, ``"live"``). Nothing is ever downloaded.
"""

from faceforge.registry.factory import class_map, create, model_class, resolve_name
from faceforge.registry.registry import (
    close_names,
    get_alias,
    get_spec,
    list_aliases,
    list_models,
    model_names,
    register,
    register_alias,
)
from faceforge.registry.resolve import (
    atomic_write_bytes,
    cache_dir,
    derived_file,
    is_installed,
    require,
    sha256_file,
    weight_path,
)
from faceforge.registry.spec import TASKS, Alias, ModelInput, ModelSpec

__all__ = [
    "TASKS", "Alias", "ModelInput", "ModelSpec", "atomic_write_bytes", "cache_dir", "class_map", "close_names",
    "create", "derived_file", "get_alias", "get_spec", "is_installed", "list_aliases", "list_models", "model_class",
    "model_names", "register", "register_alias", "require", "resolve_name", "sha256_file", "weight_path",
]
