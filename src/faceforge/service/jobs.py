"""Background jobs of the service: training a model from uploaded photos, analysing an uploaded video.

Jobs live in the service database with their inputs in ``jobs/<id>/``, so a job queued or
running when the server stops is run again (from its inputs) when it starts.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
import traceback
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from faceforge.errors import FaceforgeError
from faceforge.service.state import Home

log = logging.getLogger("faceforge.service")


class JobRunner:
    """One worker thread that runs queued jobs in order (a job uses both cores by itself)."""

    def __init__(self, home: Home, engine: Any) -> None:
        self.home = home
        self.engine = engine
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.handlers: dict[str, Callable[[str, dict[str, Any], Path], dict[str, Any]]] = {
            "train": self._train, "video": self._video}

    def start(self) -> None:
        n = self.home.requeue_interrupted()
        if n:
            log.info("requeued %d job(s) interrupted by the last shutdown", n)
        self._thread = threading.Thread(target=self._loop, name="faceforge-jobs", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            job = self.home.next_job()
            if job is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            self.run(job)

    def run(self, job: dict[str, Any]) -> None:
        jid = job["id"]
        try:
            d = self.home.job_dir(jid)
            result = self.handlers[job["kind"]](jid, job["params"], d)
            self.home.update_job(jid, status="done", progress=1.0, message="done", result=result)
            _drop_inputs(d)  # uploaded photos and videos are not kept once the job has used them
        except FaceforgeError as e:
            self.home.update_job(jid, status="failed", error=str(e), message="failed")
        except Exception as e:  # a bug: keep the server up, record it
            log.error("job %s failed: %s", jid, traceback.format_exc())
            self.home.update_job(jid, status="failed", error=f"internal error: {type(e).__name__}: {e}",
                                 message="failed")

    # -- training ------------------------------------------------------------------------------
    def _train(self, jid: str, params: dict[str, Any], d: Path) -> dict[str, Any]:
        """Train in a child process (``python -m faceforge.service.jobs DIR``): the models of this
        server (shared by request threads) are not touched, a crash cannot take the server down,
        no main-module guard is needed in scripts that embed the app, and progress comes back as
        JSON lines on the child's stdout."""
        import subprocess
        import sys

        self.home.update_job(jid, progress=0.02, message="reading photos")
        (d / "params.json").write_text(json.dumps(params))
        proc = subprocess.Popen([sys.executable, "-m", "faceforge.service.jobs", str(d)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        stdout, stderr = proc.stdout, proc.stderr
        if stdout is None or stderr is None:  # never: both are pipes (this narrows their type)
            raise FaceforgeError("training could not start: the child process has no output pipes")
        outcome: tuple[str, Any] | None = None
        for line in stdout:
            try:
                kind, payload = json.loads(line)
            except ValueError:
                continue
            if kind == "progress":
                self.home.update_job(jid, progress=payload[0], message=payload[1])
            else:
                outcome = (kind, payload)
        err_tail = stderr.read()[-2000:]
        proc.wait()
        if outcome is None:
            log.error("training job %s: child exited with %s: %s", jid, proc.returncode, err_tail)
            raise FaceforgeError(f"training stopped unexpectedly (exit code {proc.returncode})")
        kind, payload = outcome
        if kind == "error":
            raise FaceforgeError(payload)
        info = self.home.add_model(params["name"], (d / "model.ffm").read_bytes(), f"training job {jid}",
                                   replace=bool(params.get("replace", False)))
        return {**payload, "model": info}

    # -- video -----------------------------------------------------------------------------------
    def _video(self, jid: str, params: dict[str, Any], d: Path) -> dict[str, Any]:
        from faceforge.live import LiveAnalyzer
        from faceforge.sources.media import iter_video

        models = self.engine.face_models(params.get("attributes", []), params.get("models", []),
                                         params.get("gallery"))
        every = max(1, int(params.get("every", 1)))
        total = _frame_count(d / "video")
        tracks: dict[int, dict[str, Any]] = {}
        frames = 0
        buf = io.StringIO()
        with LiveAnalyzer(models, detector="photo", workers=0, reclassify_every=max(1, 15 // every)) as live:
            for fr in iter_video(str(d / "video"), every=every):
                with self.engine.lock:  # the detector and models are shared with request threads
                    faces = live.process(fr.image, frames)
                frames += 1
                rows = faces.to_dicts(1)
                for f in faces.rows():
                    if f.track_id is None:  # never: live faces are tracked (this narrows its type)
                        continue
                    t = tracks.setdefault(f.track_id, {"track": f.track_id, "first_frame": fr.index,
                                                       "labels": {}})
                    t["last_frame"] = fr.index
                    for name, p in f.predictions.items():
                        t["labels"].setdefault(name, Counter())[p.label] += 1
                buf.write(json.dumps({"frame": fr.index, "time_s": fr.timestamp, "faces": rows}) + "\n")
                if frames % 10 == 0:
                    self.home.update_job(jid, progress=min(0.99, frames * every / max(total, 1)),
                                         message=f"frame {fr.index}")
        from faceforge._fs import atomic_write

        atomic_write(d / "frames.jsonl", buf.getvalue().encode())
        summary = []
        for t in tracks.values():
            summary.append({**t, "labels": {n: c.most_common(1)[0][0] for n, c in t["labels"].items()}})
        return {"frames": frames, "every": every, "tracks": summary, "frames_url": f"/api/jobs/{jid}/frames"}


def _train_in_child(d: Path) -> tuple[str, Any]:
    """The body of a training job (in its own process): ``("done", result)`` or ``("error", message)``;
    progress is printed as ``["progress", [p, message]]`` lines."""
    from faceforge.train import train

    params = json.loads((d / "params.json").read_text())
    steps = {"dataset": (0.1, "embedding faces"), "embedded": (0.6, "fitting"), "validated": (0.9, "saving"),
             "saved": (0.95, "saved")}

    def on_event(name: str, payload: Any) -> None:
        if name == "searching":  # the feature search: most of the time on small sets
            done, total = int(payload["done"]), max(1, int(payload["total"]))
            print(json.dumps(["progress", [0.1 + 0.5 * done / total,
                                           f"trying features {done + 1} of {total}: {payload['embedder']}"]]),
                  flush=True)
        elif name in steps:
            print(json.dumps(["progress", steps[name]]), flush=True)

    try:
        res = train(d / "labels.csv", d / "model.ffm", embedder=params.get("embedder", "auto"),
                    head=params.get("head"), path_column="file", label_column="label", image_root=d / "photos",
                    val=None if params.get("val") is None else float(params["val"]), crops=params.get("crops", "auto"),
                    augment=bool(params.get("augment", False)), workers=1, progress=False, on_event=on_event,
                    learning_curve=False, known=params.get("known") or None,
                    negatives=params.get("negatives") or None, task="classification")
    except FaceforgeError as e:
        return "error", str(e)
    except Exception as e:  # a bug: report it, the server stays up
        return "error", f"internal error: {type(e).__name__}: {e}"
    report = res.report
    keep = ("headline", "accuracy", "balanced_accuracy", "log_loss", "per_class", "confusion_matrix", "validation",
            "unknown", "auto")
    return "done", json.loads(json.dumps({
        "report": {k: report[k] for k in keep if k in report},
        "problems": [_problem(p) for p in res.problems][:200],
        "timings": {k: v for k, v in res.timings.items() if isinstance(v, (int, float))}}, default=str))


def _drop_inputs(d: Path) -> None:
    import shutil

    shutil.rmtree(d / "photos", ignore_errors=True)
    for name in ("video", "model.ffm"):
        (d / name).unlink(missing_ok=True)


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


def write_training_inputs(d: Path, items: list[tuple[str, bytes, str]]) -> None:
    """``items`` = ``(label, data, ext)``: photos under generated names and ``labels.csv``."""
    from faceforge._fs import atomic_write

    photos = d / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["file", "label"])
    for i, (label, data, ext) in enumerate(items):
        name = f"{i:05d}.{ext}"
        (photos / name).write_bytes(data)
        w.writerow([name, label])
    atomic_write(d / "labels.csv", buf.getvalue().encode())


if __name__ == "__main__":  # the child process of a training job
    import sys

    print(json.dumps(_train_in_child(Path(sys.argv[1]))), flush=True)
