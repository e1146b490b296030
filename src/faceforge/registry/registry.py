"""The registry's tables: specs and aliases by name, with look-ups. The entries are in :mod:`.catalog`."""

from __future__ import annotations

import difflib
import fnmatch

from faceforge.errors import ModelNotFoundError
from faceforge.registry.catalog import ALIASES, SPECS
from faceforge.registry.spec import Alias, ModelSpec

_SPECS: dict[str, ModelSpec] = {}
_ALIASES: dict[str, Alias] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to the registry (a later spec with the same name replaces it).

    Raises:
        ModelNotFoundError: an alias already uses the name.
    """
    if spec.name in _ALIASES:
        raise ModelNotFoundError(f"Cannot register model {spec.name!r}: it is already an alias for "
                                 f"{', '.join(_ALIASES[spec.name].targets)}. Choose another name.")
    _SPECS[spec.name] = spec
    return spec


def register_alias(alias: Alias) -> Alias:
    """Add ``alias`` (a later alias with the same name replaces it).

    Raises:
        ModelNotFoundError: a model already has the name, or a target is not registered.
    """
    if alias.name in _SPECS:
        raise ModelNotFoundError(f"Cannot register alias {alias.name!r}: a model has that name. Choose another name.")
    missing = [t for t in alias.targets if t not in _SPECS and t not in _ALIASES]
    if missing or not alias.targets:
        raise ModelNotFoundError(f"Alias {alias.name!r} must point to registered models, but {missing or 'nothing'} "
                                 f"is not registered. Register the models first.")
    _ALIASES[alias.name] = alias
    return alias


def list_models(pattern: str = "*", task: str | None = None) -> list[ModelSpec]:
    """Return the registered specs whose name matches a glob ``pattern``, sorted by name."""
    return [
        s for n, s in sorted(_SPECS.items())
        if fnmatch.fnmatch(n, pattern) and (task is None or s.task == task)
    ]


def list_aliases(task: str | None = None) -> list[Alias]:
    """Return the registered aliases (of ``task``, if given), sorted by name."""
    return [a for n, a in sorted(_ALIASES.items()) if task is None or a.task == task]


def get_alias(name: str) -> Alias | None:
    """Return the alias called ``name``, or ``None`` when ``name`` is not an alias."""
    return _ALIASES.get(name)


def model_names(task: str) -> list[str]:
    """Names the factory of ``task`` accepts, sorted: models with a class, and their synonyms.

    Preference chains (``"photo"``, ``"live"``) are left out; see :func:`list_aliases`.
    """
    names = {s.name for s in _SPECS.values() if s.task == task and s.cls}
    names |= {a.name for a in _ALIASES.values() if a.task == task and not a.is_chain}
    return sorted(names)


def close_names(name: str, task: str | None = None, n: int = 3) -> list[str]:
    """Registered names (models and aliases, of ``task`` if given) that look like ``name``."""
    pool = [s.name for s in _SPECS.values() if task is None or s.task == task]
    pool += [a.name for a in _ALIASES.values() if task is None or a.task == task]
    return difflib.get_close_matches(name, pool, n=n)


def unknown_name(name: str, task: str | None = None) -> ModelNotFoundError:
    """The error for a name the registry does not know, suggesting the nearest names."""
    close = close_names(name, task)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    what = "model" if task is None else f"{task} model"
    return ModelNotFoundError(f"No {what} called {name!r} in the registry.{hint} "
                              f"Run `faceforge models` to list them all.")


def get_spec(name: str) -> ModelSpec:
    """Return the spec called ``name`` (a synonym such as ``"blazeface"`` gives its target's spec).

    Raises:
        ModelNotFoundError: unknown name (the message suggests the nearest names), or a
            preference chain such as ``"photo"``, which depends on what is installed (resolve it
            with :func:`faceforge.registry.resolve_name`).
    """
    spec = _SPECS.get(name)
    if spec is not None:
        return spec
    alias = _ALIASES.get(name)
    if alias is None:
        raise unknown_name(name)
    if alias.is_chain:
        raise ModelNotFoundError(
            f"{name!r} is not one model but the first installed of {', '.join(alias.targets)}. "
            f"Resolve it first with faceforge.registry.resolve_name({name!r})."
        )
    return get_spec(alias.targets[0])


for _spec in SPECS:
    register(_spec)
for _alias in ALIASES:
    register_alias(_alias)
