"""The child process of a service job: ``python -m faceforge.service.job_child DIR``.

Every job (training, video analysis) runs in a process of its own, started by
:class:`faceforge.service.jobs.JobRunner`: the models of the server (shared by request threads)
are not touched, a crash cannot take the server down, and a job can be killed (timeout,
cancel) with everything it started. ``DIR/job.json`` says what to run::

    {"entry": "module:function", "params": {...}, "home": "/path/to/home"}

``function(d, params, home)`` returns ``("done", result)`` or ``("error", message)``; it may
print progress lines ``["progress", [fraction, message]]`` on stdout (:func:`progress`). The
outcome is printed as the last JSON line. Anything else the job writes to stderr goes to
``DIR/stderr.log`` (the runner opens it), never to a pipe that could fill up.

The child is the leader of its own process group; it kills that group (its worker processes
too) when its parent goes away (stdin reaches its end), so a killed server leaves no job behind.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from faceforge.errors import FaceforgeError


def progress(fraction: float, message: str) -> None:
    """Report progress to the runner (a JSON line on stdout)."""
    print(json.dumps(["progress", [float(fraction), str(message)]]), flush=True)


#: where this job's batch work runs (``job.json``'s ``engine``: the service's ``engine`` and ``ray_address``)
ENGINE: dict[str, Any] = {"name": "local", "address": None}


def batch_engine() -> tuple[Any, int | None]:
    """``(engine, workers)`` for the runner: Ray when the service says so, else this process
    (a job leaves the other core to the server's requests)."""
    if ENGINE.get("name") == "ray":
        from faceforge.runner import get_engine

        return get_engine("ray", address=ENGINE.get("address")), None
    return "local", 1


def train_job(d: Path, params: dict[str, Any], home: str) -> tuple[str, Any]:
    """A training job: ``d/labels.csv`` and ``d/photos/`` -> ``d/model.ffm`` and its report."""
    from faceforge.train import train

    steps = {"dataset": (0.1, "embedding faces"), "embedded": (0.6, "fitting"), "validated": (0.9, "saving"),
             "saved": (0.95, "saved")}

    def on_event(name: str, payload: Any) -> None:
        if name == "searching":  # the feature search: most of the time on small sets
            done, total = int(payload["done"]), max(1, int(payload["total"]))
            progress(0.1 + 0.5 * done / total, f"trying features {done + 1} of {total}: {payload['embedder']}")
        elif name in steps:
            progress(*steps[name])

    engine, workers = batch_engine()
    try:
        res = train(d / "labels.csv", d / "model.ffm", embedder=params.get("embedder", "auto"),
                    head=params.get("head"), path_column="file", label_column="label", image_root=d / "photos",
                    val=None if params.get("val") is None else float(params["val"]), crops=params.get("crops", "auto"),
                    augment=bool(params.get("augment", False)), workers=workers, engine=engine, progress=False,
                    on_event=on_event, learning_curve=False, known=params.get("known") or None,
                    negatives=params.get("negatives") or None, task="classification",
                    quality=params.get("quality", "fast"))
    except FaceforgeError as e:
        return "error", str(e)
    report = res.report
    keep = ("headline", "accuracy", "balanced_accuracy", "log_loss", "per_class", "confusion_matrix", "validation",
            "unknown", "auto")
    return "done", json.loads(json.dumps({
        "report": {k: report[k] for k in keep if k in report},
        "problems": [_problem(p) for p in res.problems][:200],
        "timings": {k: v for k, v in res.timings.items() if isinstance(v, (int, float))},
        "engine": getattr(engine, "name", str(engine))}, default=str))


def video_job(d: Path, params: dict[str, Any], home: str) -> tuple[str, Any]:
    """A video analysis: ``d/video`` -> ``d/frames.jsonl`` (faces per frame) and the tracks' labels."""
    from faceforge._fs import atomic_write
    from faceforge.live import LiveAnalyzer
    from faceforge.live.pipeline import face_records
    from faceforge.service.engine import Engine
    from faceforge.service.state import Home
    from faceforge.sources.media import iter_video

    try:
        models = Engine(Home(home)).face_models(params.get("attributes", []), params.get("models", []),
                                                params.get("gallery"))
        every = max(1, int(params.get("every", 1)))
        total = _frame_count(d / "video")
        tracks: dict[int, dict[str, Any]] = {}
        frames = 0
        lines = []
        with LiveAnalyzer(models, detector="photo", workers=0, reclassify_every=max(1, 15 // every)) as live:
            for fr in iter_video(str(d / "video"), every=every):
                faces = live.process(fr.image, frames)
                frames += 1
                for f in faces.rows():
                    if f.track_id is None:  # never: live faces are tracked (this narrows its type)
                        continue
                    t = tracks.setdefault(f.track_id, {"track": f.track_id, "first_frame": fr.index, "labels": {}})
                    t["last_frame"] = fr.index
                    for name, p in f.predictions.items():
                        t["labels"].setdefault(name, Counter())[p.label] += 1
                lines.append(json.dumps({"frame": fr.index, "time_s": fr.timestamp, "faces": face_records(faces, 1)}))
                if frames % 10 == 0:
                    progress(min(0.99, frames * every / max(total, 1)), f"frame {fr.index}")
    except FaceforgeError as e:
        return "error", str(e)
    atomic_write(d / "frames.jsonl", "".join(x + "\n" for x in lines).encode())
    summary = [{**t, "labels": {n: c.most_common(1)[0][0] for n, c in t["labels"].items()}} for t in tracks.values()]
    return "done", {"frames": frames, "every": every, "tracks": summary, "frames_url": f"/api/jobs/{d.name}/frames"}


def _frame_count(path: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        cap.release()


def _problem(p: Any) -> dict[str, Any]:
    d = getattr(p, "__dict__", None)
    if d:
        return {k: (str(v) if not isinstance(v, (int, float, str, type(None))) else v) for k, v in d.items()}
    return {"message": str(p)}


def _die_with_parent() -> None:
    """Kill this process group once stdin (a pipe from the runner) ends: the server is gone."""
    def watch() -> None:
        try:
            while sys.stdin.buffer.read(1 << 16):
                pass
        except (OSError, ValueError):
            pass
        if hasattr(os, "killpg") and os.getpgrp() == os.getpid():
            os.killpg(os.getpgrp(), signal.SIGKILL)
        os._exit(3)

    threading.Thread(target=watch, name="faceforge-job-parent", daemon=True).start()


def run(d: Path) -> tuple[str, Any]:
    """Run the job described by ``d/job.json``: its outcome."""
    spec = json.loads((d / "job.json").read_text())
    # the module the entries see (this file also runs as __main__, a module of its own)
    importlib.import_module("faceforge.service.job_child").ENGINE.update(spec.get("engine") or {})
    module, _, name = str(spec["entry"]).partition(":")
    fn = getattr(importlib.import_module(module), name)
    try:
        kind, payload = fn(d, spec.get("params") or {}, spec.get("home") or "")
    except FaceforgeError as e:
        return "error", str(e)
    except Exception as e:  # a bug: the traceback goes to stderr.log, the job's error names it
        import traceback

        traceback.print_exc()
        return "error", f"internal error: {type(e).__name__}: {e}"
    return str(kind), payload


if __name__ == "__main__":
    _die_with_parent()
    print(json.dumps(run(Path(sys.argv[1]))), flush=True)
