"""Checks a classifier's model file once, at load, so that a bad one never reaches inference.

:func:`check_classifier` checks what :func:`faceforge.heads.load_bundle` read: the manifest's
schema (required keys and their types), the embedder (a registered one, whose dimension the head
must take), every array's name, dtype and shape against the manifest and that dimension, finite
values, and finally runs the head (and the unknown-face check) once on a few embeddings.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from faceforge.errors import BundleError, FaceforgeError

TASKS = ("classification", "regression")

#: Shape of each array a head may hold, in symbols: ``d`` the embedding width, ``m`` the classes
#: present in training, ``n`` gallery rows, ``h`` hidden units, ``o`` network outputs; ints are fixed.
HEAD_SHAPES: dict[str, tuple[str | int, ...]] = {
    "present": ("m",), "mean": ("d",), "scale": ("d",), "W": ("d", "m"), "b": ("m",), "temperature": (1,),
    "gallery": ("n", "d"), "gallery_y": ("n",), "class_weight": ("m",), "n_neighbors": (1,),
    "W1": ("d", "h"), "b1": ("h",), "W2": ("h", "o"), "b2": ("o",), "coef": ("d",), "intercept": (1,),
}
#: Arrays holding indices or counts (integers); every other array holds floats.
INTEGER_ARRAYS = {"present", "gallery_y", "n_neighbors"}
OPENSET_SHAPES: dict[str, tuple[str | int, ...]] = {"gallery": ("g", "d"), "gallery_y": ("g",)}

_FIX = "Fix: pass a model file written by `faceforge train`, or retrain it."


def _bad(name: str, what: str) -> BundleError:
    return BundleError(f"{name}: {what}. {_FIX}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(c, str) for c in v)


def _kind(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def check_classifier(manifest: dict[str, Any], arrays: dict[str, np.ndarray], name: str) -> None:
    """Check a classifier's manifest and arrays (see the module docs); return quietly when usable.

    Args:
        manifest: the model file's ``manifest.json``.
        arrays: its arrays (``head.*``, ``openset.*``).
        name: what to call the file in messages (its path, or a client's file name).

    Raises:
        BundleError: what is wrong, naming the file, the key or the array.
    """
    dim = _check_manifest(manifest, name)
    head = manifest["head"]
    task = manifest["task"]
    n_classes = len(manifest.get("classes") or [])
    head_arrays = {k[5:]: v for k, v in arrays.items() if k.startswith("head.")}
    os_arrays = {k[8:]: v for k, v in arrays.items() if k.startswith("openset.")}
    stray = sorted(k for k in arrays if not k.startswith(("head.", "openset.")))
    if os_arrays and not manifest.get("openset"):
        stray += sorted(f"openset.{k}" for k in os_arrays)
    if stray:
        raise _bad(name, f"holds arrays {stray[:5]} that this model's manifest has no use for")
    sizes = _check_arrays(head_arrays, HEAD_SHAPES, {"d": dim}, "head.", name)
    _check_values(head_arrays, sizes, task, n_classes, name)
    if manifest.get("openset"):
        os_sizes = _check_arrays(os_arrays, OPENSET_SHAPES, {"d": dim}, "openset.", name)
        for key in OPENSET_SHAPES:
            if key not in os_arrays:
                raise _bad(name, f"the unknown-face check lacks array openset.{key}")
        if os_sizes.get("g", 0) < 1:
            raise _bad(name, "the unknown-face check has no reference embeddings (openset.gallery is empty)")
        if (os_arrays["gallery_y"] < 0).any():
            raise _bad(name, "openset.gallery_y holds negative class indices")
    _probe(head, head_arrays, manifest.get("openset"), os_arrays, task, dim, n_classes, name)


def _check_manifest(m: dict[str, Any], name: str) -> int:
    """Check the manifest's keys and types; return the embedder's dimension."""
    from faceforge.registry import get_spec

    emb = m.get("embedder")
    if emb is None:
        raise BundleError(f"{name}: manifest.json names no embedder, so this is not a face classifier (or a damaged "
                          f"one). {_FIX}")
    if not isinstance(emb, str) or not emb.strip() or len(emb) > 200:
        raise _bad(name, f"manifest.json: 'embedder' must be the name of an embedder (a short string), "
                         f"but it is {_kind(emb)} {str(emb)[:40]!r}")
    parts = emb.split("+")  # a concatenation "a+b" (faceforge.embedders.concat) takes the sum of the parts' dims
    if len(set(parts)) != len(parts):
        raise _bad(name, f"manifest.json: 'embedder' {emb!r} repeats a part")
    dim = 0
    for part in parts:
        try:
            spec = get_spec(part)
        except FaceforgeError as e:
            raise BundleError(f"{name}: the model needs embedder {part!r}, which this faceforge does not know "
                              f"({e}). Fix: upgrade faceforge.") from e
        got_dim = spec.input.get("dim")
        if spec.task != "embed" or not isinstance(got_dim, int):
            raise _bad(name, f"manifest.json: 'embedder' is {emb!r}; {part!r} is a {spec.task} model, not an "
                             f"embedder")
        dim += int(got_dim)
    task = m.get("task")
    if task not in TASKS:
        raise _bad(name, f"manifest.json: 'task' must be one of {list(TASKS)}, but it is {_kind(task)} "
                         f"{str(task)[:40]!r}")
    classes = m.get("classes", [])
    if not _is_str_list(classes):
        raise _bad(name, f"manifest.json: 'classes' must be a list of class names (strings), but it is "
                         f"{_kind(classes)}")
    if task == "classification" and (len(classes) < 2 or len(set(classes)) != len(classes)):
        raise _bad(name, f"manifest.json: a classifier needs at least 2 different class names, but 'classes' "
                         f"holds {classes[:5]}")
    for key, types in (("detector", (str,)), ("crops", (str, bool)), ("alignment", (str, dict)),
                       ("embedder_sha256", (str,)), ("embedder_version", (str, int)), ("upscale", (int, float)),
                       ("kind", (str,)), ("data", (dict,)), ("metrics", (dict,)), ("openset", (dict,))):
        v = m.get(key)
        if v is not None and (not isinstance(v, types) or (isinstance(v, bool) and bool not in types)):
            raise _bad(name, f"manifest.json: {key!r} must be {' or '.join(t.__name__ for t in types)}, "
                             f"but it is {_kind(v)}")
    from faceforge._quality import QUALITIES

    quality = m.get("quality", "fast")
    if quality not in QUALITIES:
        raise _bad(name, f"manifest.json: 'quality' must be one of {list(QUALITIES)}, but it is {_kind(quality)} "
                         f"{str(quality)[:40]!r}")
    if m.get("embedding_dim") is not None and m["embedding_dim"] != dim:
        raise _bad(name, f"manifest.json: 'embedding_dim' is {m['embedding_dim']!r}, but embedder {emb!r} gives "
                         f"{dim}-D embeddings")
    _check_head_params(m.get("head"), task, classes, emb, dim, name)
    if m.get("openset"):
        _check_openset_params(m["openset"], len(classes), dim, name)
    return dim


def _check_head_params(head: Any, task: str, classes: list[str], emb: str, dim: int, name: str) -> None:
    if not isinstance(head, dict):
        raise _bad(name, f"manifest.json: 'head' must be an object describing the head, but it is {_kind(head)}")
    for key, ok, what in (("kind", lambda v: isinstance(v, str) and v, "a head name"),
                          ("params", lambda v: isinstance(v, dict), "an object"),
                          ("n_features", _is_int, "an integer"),
                          ("classes", _is_str_list, "a list of class names")):
        if not ok(head.get(key)):
            raise _bad(name, f"manifest.json: head.{key} must be {what}, but it is {_kind(head.get(key))}")
    if head.get("task", task) != task:
        raise _bad(name, f"manifest.json: the head is a {head.get('task')!r} head, but the model's task is {task!r}")
    if head["n_features"] != dim:
        raise _bad(name, f"manifest.json: the head takes {head['n_features']}-D embeddings, but embedder {emb!r} "
                         f"gives {dim}-D ones")
    if task == "classification" and head["classes"] != classes:
        raise _bad(name, "manifest.json: the head's classes differ from the model's 'classes'")
    if not isinstance(head.get("fit_info", {}), dict):
        raise _bad(name, "manifest.json: head.fit_info must be an object")


def _check_openset_params(p: dict[str, Any], n_classes: int, dim: int, name: str) -> None:
    for key in ("score", "metric"):
        if not isinstance(p.get(key), str):
            raise _bad(name, f"manifest.json: openset.{key} must be a string, but it is {_kind(p.get(key))}")
    for key in ("threshold", "far", "frr", "target_far"):
        v = p.get(key)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise _bad(name, f"manifest.json: openset.{key} must be a finite number, but it is {_kind(v)}")
    known = p.get("classes")
    if not isinstance(known, list) or not all(_is_int(c) and 0 <= c < n_classes for c in known) or not known:
        raise _bad(name, f"manifest.json: openset.classes must list indices of the model's {n_classes} classes")
    if p.get("n_features") != dim:
        raise _bad(name, f"manifest.json: the unknown-face check takes {p.get('n_features')!r}-D embeddings, but "
                         f"the embedder gives {dim}-D ones")


def _check_arrays(arrays: dict[str, np.ndarray], shapes: dict[str, tuple[str | int, ...]], sizes: dict[str, int],
                  prefix: str, name: str) -> dict[str, int]:
    """Check names, dtypes, shapes (binding the symbols in ``sizes``) and finiteness; return the sizes."""
    sizes = dict(sizes)
    for key, arr in sorted(arrays.items()):
        full = prefix + key
        want = shapes.get(key)
        if want is None:
            raise _bad(name, f"holds array {full!r}, which no faceforge head uses")
        integer = key in INTEGER_ARRAYS
        if arr.dtype.kind not in ("iu" if integer else "f"):
            raise _bad(name, f"array {full!r} has dtype {arr.dtype}, but must hold "
                             f"{'integers' if integer else 'floating-point numbers'}")
        if arr.ndim != len(want):
            raise _bad(name, f"array {full!r} has shape {arr.shape}, but must have {len(want)} dimension(s) "
                             f"{_shape_text(want)}")
        for axis, (got, sym) in enumerate(zip(arr.shape, want)):
            expect = sym if isinstance(sym, int) else sizes.setdefault(sym, int(got))
            if got != expect:
                raise _bad(name, f"array {full!r} has shape {arr.shape}, but its axis {axis} must be {expect} "
                                 f"({_shape_text(want)}, with {_bound(sizes)})")
        if not integer and not np.isfinite(arr).all():
            raise _bad(name, f"array {full!r} holds NaN or infinite values (broken weights)")
    return sizes


def _shape_text(want: tuple[str | int, ...]) -> str:
    return "(" + ", ".join(map(str, want)) + ")"


def _bound(sizes: dict[str, int]) -> str:
    return ", ".join(f"{k} = {v}" for k, v in sizes.items())


def _check_values(arrays: dict[str, np.ndarray], sizes: dict[str, int], task: str, n_classes: int,
                  name: str) -> None:
    if task == "classification":
        present = arrays.get("present")
        if present is not None and (len(np.unique(present)) != len(present) or len(present) < 2
                                    or present.min() < 0 or present.max() >= n_classes):
            raise _bad(name, f"array 'head.present' must list at least 2 different indices of the "
                             f"{n_classes} classes, but holds {present[:5].tolist()}")
    if "scale" in arrays and not (arrays["scale"] > 0).all():
        raise _bad(name, "array 'head.scale' must be positive (it divides the embeddings)")
    if "gallery_y" in arrays and len(arrays["gallery_y"]) and (
            arrays["gallery_y"].min() < 0 or arrays["gallery_y"].max() >= sizes.get("m", 0)):
        raise _bad(name, "array 'head.gallery_y' holds class indices outside the classes trained on")
    if "n_neighbors" in arrays and not 1 <= int(arrays["n_neighbors"][0]) <= max(sizes.get("n", 1), 1):
        raise _bad(name, "array 'head.n_neighbors' must be between 1 and the number of gallery rows")
    if "gallery" in arrays and sizes.get("n", 0) < 1:
        raise _bad(name, "array 'head.gallery' is empty")


def _probe(head_params: dict[str, Any], head_arrays: dict[str, np.ndarray], os_params: dict[str, Any] | None,
           os_arrays: dict[str, np.ndarray], task: str, dim: int, n_classes: int, name: str) -> None:
    """Rebuild the head (and the unknown-face check) and run it once on a few embeddings."""
    from faceforge.heads.base import head_from_arrays
    from faceforge.heads.openset import OpenSet

    probe = np.random.default_rng(0).standard_normal((4, dim))
    try:
        head = head_from_arrays(head_params, head_arrays)
        if head.task != task:
            raise _bad(name, f"the head {head.kind!r} is a {head.task} head, but the model's task is {task!r}")
        with np.errstate(all="ignore"):
            out = head.predict_proba(probe) if task == "classification" else head.predict(probe)
        want = (4, n_classes) if task == "classification" else (4,)
        if out.shape != want or not np.isfinite(out).all():
            raise _bad(name, f"the head gives {'non-finite values' if out.shape == want else f'shape {out.shape}'} "
                             f"on {dim}-D embeddings, not {want} finite values; its arrays are broken")
        if os_params:
            osr = OpenSet.from_arrays(os_params, os_arrays)
            with np.errstate(all="ignore"):
                score = osr.score(probe)
            if score.shape != (4,) or not np.isfinite(score).all():
                raise _bad(name, "the unknown-face check gives non-finite scores; its arrays are broken")
    except BundleError as e:
        if str(e).startswith(f"{name}:"):
            raise
        raise BundleError(f"{name}: {e}") from e
    except (FaceforgeError, ValueError, IndexError, TypeError, KeyError, ZeroDivisionError, OverflowError) as e:
        raise _bad(name, f"the head cannot run on {dim}-D embeddings: its arrays do not fit together "
                         f"({type(e).__name__}: {e})") from e
