"""A schedule's run, in the child process of a service job (job kind ``"pipeline"``).

:func:`pipeline_job` runs the steps of a schedule (see :mod:`faceforge.service.schedules`) in
order: ``ingest`` (:func:`faceforge.collect.ingest`), ``retrain``
(:func:`faceforge.collect.retrain`) and ``train`` (:func:`faceforge.train.train`). Before each
step its paths are resolved again and checked against the server's ``collect_roots`` (passed in
the job's params), so a folder swapped for a symbolic link since the schedule was stored is
refused. The run stops at the first step that fails; the job then fails with a message naming
the step, its error and what the steps before it did.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faceforge.errors import FaceforgeError

#: Keys of a training report kept in a step's report (the rest stays in the model's report file).
TRAIN_KEEP = ("headline", "accuracy", "balanced_accuracy", "log_loss", "validation", "unknown")


def pipeline_job(d: Path, params: dict[str, Any], home: str) -> tuple[str, Any]:
    """Run a schedule's steps in order.

    Args:
        d: the job's folder (its ``job.json`` says where batch work runs).
        params: ``{"schedule", "schedule_name", "trigger", "steps", "collect_roots"}``.
        home: the service's home folder.

    Returns:
        ``("done", {"schedule", "trigger", "steps": [{"step", "status", "report", "seconds"}, ...]})``,
        or ``("error", message)`` at the first step that fails.
    """
    from faceforge.service import job_child
    from faceforge.service.schedules import step_arguments

    steps = params.get("steps") or []
    roots = [Path(r) for r in params.get("collect_roots") or []]
    if not steps or not roots:
        return "error", "This pipeline has no steps or no collect_roots to check their paths against."
    try:  # this module's job_child is not the process's __main__: give it the engine of job.json
        job_child.ENGINE.update(json.loads((d / "job.json").read_text()).get("engine") or {})
    except (OSError, ValueError):
        pass
    engine, workers = job_child.batch_engine()
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
