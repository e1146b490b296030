"""Build models from the registry: alias resolution, the lazy class import and construction."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from faceforge.errors import ModelNotFoundError
from faceforge.registry import registry as _reg
from faceforge.registry.spec import ModelSpec


def resolve_name(name: str, task: str | None = None, installed: Callable[[str], bool] | None = None) -> str:
    """The registry name of the model that ``name`` stands for.

    A model's own name comes back as it is; a synonym gives its target (``"blazeface"`` ->
    ``"blazeface.short"``); a preference chain gives its first installed member, or its last
    member when none is installed (``"photo"`` -> ``"yunet"``, or ``"mtcnn"`` without yuface).

    Args:
        name: a model or alias name.
        task: when given, the model must be of this task (``"detect"``, ``"embed"``, ...).
        installed: decides whether a chain member can be used (default :func:`is_installed`).

    Raises:
        ModelNotFoundError: unknown name (the message suggests the nearest names), or a model
            of another task.
    """
    from faceforge.registry.resolve import is_installed

    alias = _reg.get_alias(name)
    if alias is None:
        spec = _reg._SPECS.get(name)
        if spec is None:
            raise _reg.unknown_name(name, task)
        if task is not None and spec.task != task:
            raise ModelNotFoundError(f"{name!r} is a {spec.task} model, but a {task} model is needed. "
                                     f"Choose one of: {', '.join(_reg.model_names(task))}.")
        return name
    if task is not None and alias.task != task:
        raise ModelNotFoundError(f"{name!r} names {alias.task} models, but a {task} model is needed. "
                                 f"Choose one of: {', '.join(_reg.model_names(task))}.")
    usable = installed or is_installed
    for target in alias.targets[:-1]:
        if usable(target):
            return resolve_name(target, task, installed)
    return resolve_name(alias.targets[-1], task, installed)


def model_class(name: str, task: str | None = None) -> Any:
    """The class (or factory) that builds model ``name``; imports its module, loads no weights.

    Args:
        name: a model or alias name (aliases are resolved with :func:`resolve_name`).
        task: when given, the model must be of this task.

    Raises:
        ModelNotFoundError: unknown name, a model of another task, or a spec that only names
            weights used by another model (it has no class).
    """
    spec = _reg.get_spec(resolve_name(name, task))
    if not spec.cls:
        users = [s.name for s in _reg.list_models() if spec.name in s.parts]
        via = f" it is used by {', '.join(users)}" if users else ""
        buildable = ", ".join(_reg.model_names(spec.task)) or "the models it belongs to"
        raise ModelNotFoundError(f"Model {spec.name!r} names weights, not code that runs them;"
                                 f"{via or ' no model uses it'}. Build one of: {buildable}.")
    module, _, attr = spec.cls.partition(":")
    return getattr(importlib.import_module(module), attr)


def create(name: str, task: str | None = None, **options: Any) -> Any:
    """Build model ``name``: ``cls(**{**spec.options, **options})``.

    For specs with ``weights_arg`` (models loaded from a file) the verified path of the weight
    file is passed under that keyword.

    Args:
        name: a model or alias name (aliases are resolved with :func:`resolve_name`).
        task: when given, the model must be of this task.
        **options: constructor options; they override the spec's ``options``.

    Raises:
        ModelNotFoundError: unknown name, a model of another task, a spec without a class, or
            the package shipping the weights is missing.
        ModelIntegrityError: the weight file's checksum differs from the registry's.
    """
    spec = _reg.get_spec(resolve_name(name, task))
    factory = model_class(spec.name)
    kwargs = {**spec.options, **options}
    if spec.weights_arg and spec.weights_arg not in options:
        from faceforge.registry.resolve import weight_path

        kwargs[spec.weights_arg] = weight_path(spec)
    return factory(**kwargs)


class ClassMap(Mapping[str, str]):
    """Live, read-only view ``name -> "module:Class"`` of the models of one task (and synonyms).

    It follows later :func:`faceforge.registry.register` calls. Used for the backwards-compatible
    ``DETECTORS`` / ``EMBEDDERS`` tables.
    """

    def __init__(self, task: str) -> None:
        self.task = task

    def _spec(self, name: str) -> ModelSpec | None:
        if name not in _reg.model_names(self.task):
            return None
        return _reg.get_spec(name)

    def __getitem__(self, name: str) -> str:
        spec = self._spec(name) if isinstance(name, str) else None
        if spec is None:
            raise KeyError(name)
        return spec.cls

    def __iter__(self) -> Iterator[str]:
        return iter(_reg.model_names(self.task))

    def __len__(self) -> int:
        return len(_reg.model_names(self.task))

    def __repr__(self) -> str:
        return f"ClassMap({self.task!r}: {dict(self)!r})"


def class_map(task: str) -> ClassMap:
    """A live ``name -> "module:Class"`` view of the models of ``task`` (see :class:`ClassMap`)."""
    return ClassMap(task)
