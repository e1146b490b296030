"""A schedule's run, in the child process of a service job (job kind ``"pipeline"``).

:func:`pipeline_job` runs the steps of a schedule (see :mod:`faceforge.service.schedules`) in
order: ``ingest`` (:func:`faceforge.collect.ingest`), ``retrain``
(:func:`faceforge.collect.retrain`) and ``train`` (:func:`faceforge.train.train`). Before each
step its paths are resolved again and checked against the server's ``collect_roots`` (passed in
the job's params), so a folder swapped for a symbolic link since the schedule was stored is
refused. The run stops at the first step that fails; the job then fails with a message naming
the step, its error and what the steps before it did.

The steps' arguments and the path rule live here too (:func:`step_arguments`,
:func:`check_steps`): the server checks a schedule with them when it is stored, the child again
before each step.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from faceforge.errors import FaceforgeError, ParameterError, ScheduleError

#: Each step's required arguments, its own optional ones (train options come on top for
#: ``retrain`` and ``train``) and the arguments that are paths (a list: each item; ``gallery``:
#: ``[file, name]``, its first item).
STEPS: dict[str, dict[str, tuple[str, ...]]] = {
    "ingest": {"required": ("inboxes", "into"), "optional": ("model", "gallery", "min_confidence", "near_duplicate"),
               "paths": ("inboxes", "into", "model", "gallery")},
    "retrain": {"required": ("dataset", "model"), "optional": ("promote", "margin", "metric"),
                "paths": ("dataset", "model", "image_root")},
    "train": {"required": ("data", "output"), "optional": (), "paths": ("data", "output", "image_root")},
}
#: Options of faceforge.train.train a ``train`` / ``retrain`` step may set.
TRAIN_OPTIONS = ("embedder", "head", "val", "folds", "repeats", "seed", "augment", "crops", "detector", "target_far",
                 "task", "known", "negatives", "learning_curve", "head_params", "label_column", "path_column",
                 "image_root", "quality")
#: Keys of a training report kept in a step's report (the rest stays in the model's report file).
TRAIN_KEEP = ("headline", "accuracy", "balanced_accuracy", "log_loss", "validation", "unknown")


def resolve_in_roots(value: Any, roots: Sequence[Path], where: str) -> Path:
    """``value`` resolved (a relative path inside ``roots[0]``), if it lies inside one of ``roots``.

    Raises:
        ScheduleError: not a path, unresolvable, or outside every root (the message names the
            path and the ``collect_roots`` setting).
    """
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ScheduleError(f"{where}: expected a path, got {value!r}.")
    try:
        p = Path(value).expanduser()
        resolved = (p if p.is_absolute() else Path(roots[0]) / p).resolve()
    except (OSError, ValueError, RuntimeError) as e:
        raise ScheduleError(f"{where}: the path {str(value)!r} cannot be resolved ({e}); give a plain path "
                            f"inside the server's collect_roots setting (FACEFORGE_COLLECT_ROOTS).") from None
    for root in roots:
        if resolved == root or resolved.is_relative_to(root):
            return resolved
    shown = "" if str(resolved) == str(value) else f" (it resolves to {resolved})"
    raise ScheduleError(f"{where}: the path {str(value)!r}{shown} lies outside the folders schedules may use "
                        f"({', '.join(map(str, roots))}); move it inside one of them, or add its folder to the "
                        f"server's collect_roots setting (FACEFORGE_COLLECT_ROOTS).")


def step_arguments(step: Any, roots: Sequence[Path], index: int = 0) -> dict[str, Any]:
    """A step's keyword arguments with every path resolved inside ``roots`` (``None`` values dropped).

    Args:
        step: ``{"step": name, ...arguments}``.
        roots: the allowed folders, resolved.
        index: the step's position (for messages).

    Raises:
        ScheduleError: an unknown step, a missing or unknown argument, or a path outside ``roots``.
    """
    if not isinstance(step, dict) or step.get("step") not in STEPS:
        got = step.get("step") if isinstance(step, dict) else step
        raise ScheduleError(f"Step {index + 1}: unknown step {got!r}; a step is an object whose \"step\" is one "
                            f"of: {', '.join(STEPS)}.")
    name = step["step"]
    spec = STEPS[name]
    where = f"Step {index + 1} ({name})"
    args = {k: v for k, v in step.items() if k != "step" and v is not None}
    missing = [k for k in spec["required"] if k not in args]
    if missing:
        raise ScheduleError(f"{where}: missing {', '.join(missing)}; a {name} step needs "
                            f"{', '.join(spec['required'])}.")
    allowed = set(spec["required"] + spec["optional"]) | (set(TRAIN_OPTIONS) if name != "ingest" else set())
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise ScheduleError(f"{where}: unknown argument(s) {', '.join(unknown)}; "
                            f"allowed: {', '.join(sorted(allowed))}.")
    for key in spec["paths"]:
        if key not in args:
            continue
        value = args[key]
        if key == "inboxes":
            items = value if isinstance(value, (list, tuple)) and value else [None]
            args[key] = [str(resolve_in_roots(v, roots, f"{where} inboxes[{i}]")) for i, v in enumerate(items)]
        elif key == "gallery":
            if not (isinstance(value, (list, tuple)) and len(value) == 2 and isinstance(value[1], str)):
                raise ScheduleError(f"{where}: gallery must be [gallery file, gallery name], got {value!r}.")
            args[key] = (str(resolve_in_roots(value[0], roots, f"{where} gallery")), value[1])
        else:
            args[key] = str(resolve_in_roots(value, roots, f"{where} {key}"))
    return args


def check_steps(steps: Any, roots: Sequence[Path]) -> list[dict[str, Any]]:
    """``steps`` if every one is valid (arguments, train options, paths), else :class:`ScheduleError`."""
    from faceforge.train.config import TrainConfig

    if not isinstance(steps, list) or not steps:
        raise ScheduleError(f"steps must be a non-empty list of steps ({', '.join(STEPS)}), got {steps!r}.")
    for i, step in enumerate(steps):
        args = step_arguments(step, roots, i)
        if step["step"] == "ingest":
            continue
        options = {k: v for k, v in args.items() if k in TRAIN_OPTIONS and k != "image_root"}
        try:
            TrainConfig.from_kwargs(None, **options)
            if options.get("embedder") not in (None, "auto"):
                from faceforge.embedders.base import embedder_class

                embedder_class(options["embedder"])
        except ParameterError as e:
            raise ScheduleError(f"Step {i + 1} ({step['step']}): {e}") from None
    return [dict(s) for s in steps]


def pipeline_job(d: Path, params: dict[str, Any], home: str) -> tuple[str, Any]:
    """Run a schedule's steps in order.

    Args:
        d: the job's folder (its ``job.json`` says where batch work runs).
        params: ``{"schedule", "schedule_name", "trigger", "steps", "collect_roots"}`` (roots inside
            the home relative to it).
        home: the service's home folder.

    Returns:
        ``("done", {"schedule", "trigger", "steps": [{"step", "status", "report", "seconds"}, ...]})``,
        or ``("error", message)`` at the first step that fails.
    """
    from faceforge.service import job_child

    steps = params.get("steps") or []
    roots = [(Path(home) / r).resolve() for r in params.get("collect_roots") or []]  # relative: inside the home
    if not steps or not roots:
        return "error", "This pipeline has no steps or no collect_roots to check their paths against."
    engine, workers = job_child.batch_engine()  # job_child.run set it from job.json
    done: list[dict[str, Any]] = []
    n = len(steps)
    for i, step in enumerate(steps):
        name = step.get("step") if isinstance(step, dict) else None
        where = f"step {i + 1} of {n} ({name})"
        job_child.progress(i / n, f"{where}: starting")
        t0 = time.perf_counter()
        try:
            args = step_arguments(step, roots, i)
            report = RUNNERS[str(name)](args, engine, workers, _events(i, n, str(name)))
        except FaceforgeError as e:
            return "error", f"{where} failed: {e}{_before(done)}"
        except Exception as e:  # a bug: the traceback goes to stderr.log
            traceback.print_exc()
            return "error", f"{where} failed: internal error: {type(e).__name__}: {e}{_before(done)}"
        done.append({"step": name, "status": "done", "report": _jsonable(report),
                     "seconds": round(time.perf_counter() - t0, 3)})
    job_child.progress(1.0, f"{n} step(s) done")
    return "done", {"schedule": params.get("schedule"), "trigger": params.get("trigger"), "steps": done}


def _events(i: int, n: int, name: str) -> Callable[[str, Any], None]:
    """An ``on_event`` for step ``i`` of ``n``: each event moves the job's progress within the step."""
    from faceforge.service.job_child import progress

    def on_event(event: str, payload: Any) -> None:
        frac = 0.5
        if isinstance(payload, dict) and isinstance(payload.get("done"), (int, float)) and payload.get("total"):
            frac = min(1.0, float(payload["done"]) / max(1.0, float(payload["total"])))
        progress((i + 0.05 + 0.9 * frac) / n, f"step {i + 1} of {n} ({name}): {event}")

    return on_event


def _train(args: dict[str, Any], engine: Any, workers: int | None, on_event: Callable[[str, Any], None]) -> dict:
    from faceforge.train import train

    options = {k: v for k, v in args.items() if k not in ("data", "output")}
    options.setdefault("learning_curve", False)
    res = train(args["data"], args["output"], engine=engine, workers=workers, progress=False, on_event=on_event,
                **options)
    report = res.report
    return {"model": str(res.model_path), **{k: report[k] for k in TRAIN_KEEP if k in report},
            "classes": len(report.get("per_class") or {}) or None, "problems": len(res.problems),
            "timings": {k: v for k, v in res.timings.items() if isinstance(v, (int, float))}}


def _collect(name: str) -> Callable[..., Any]:
    """``faceforge.collect.<name>``, or a :class:`FaceforgeError` saying this installation lacks it."""
    try:
        import faceforge.collect as collect

        return getattr(collect, name)
    except (ImportError, AttributeError) as e:
        raise FaceforgeError(f"this server's faceforge has no faceforge.collect.{name} ({e}); install a faceforge "
                             f"with continuous collection, or remove the {name} step.") from e


def _ingest(args: dict[str, Any], engine: Any, workers: int | None, on_event: Callable[[str, Any], None]) -> dict:
    ingest = _collect("ingest")

    args = dict(args)
    if "gallery" in args:
        args["gallery"] = tuple(args["gallery"])
    report = ingest(args.pop("inboxes"), args.pop("into"), engine=engine, workers=workers, progress=False,
                    on_event=on_event, **args)
    return report.to_dict()


def _retrain(args: dict[str, Any], engine: Any, workers: int | None, on_event: Callable[[str, Any], None]) -> dict:
    retrain = _collect("retrain")
    args = dict(args)
    result = retrain(args.pop("dataset"), args.pop("model"), engine=engine, workers=workers, progress=False,
                     on_event=on_event, **args)
    return result.to_dict()


#: step name -> ``function(arguments, engine, workers, on_event) -> report``.
RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {"train": _train, "ingest": _ingest, "retrain": _retrain}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _summary(step: dict[str, Any]) -> str:
    """One line about a step that ran (for the message of a later step's failure)."""
    report = step.get("report") or {}
    for key in ("decision", "reason"):
        if isinstance(report.get(key), str):
            return f"{step['step']}: {report[key]}"
    counts = [f"{v} {k.replace('_', ' ')}" for k, v in report.items() if isinstance(v, int) and not isinstance(v, bool)]
    if isinstance(report.get("balanced_accuracy"), (int, float)):
        counts.insert(0, f"balanced accuracy {report['balanced_accuracy']:.3f}")
    return f"{step['step']}: " + (", ".join(counts[:6]) or "done")


def _before(done: list[dict[str, Any]]) -> str:
    return f" (the steps before it ran: {'; '.join(_summary(s) for s in done)})" if done else ""
