"""A bounded load test of a running faceforge service, and a server in a background thread.

Only ever points at the address it is given; the tests and ``benchmarks/bench_service.py`` use
loopback. Each client sends its requests one after another; the run stops after
``clients x requests`` calls or ``max_seconds``, whichever comes first.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class LoadResult:
    clients: int
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float] = field(repr=False, default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    first_errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        return {"clients": self.clients, "requests": self.requests, "errors": self.errors,
                "seconds": round(self.seconds, 2), "requests_per_s": round(self.requests / max(self.seconds, 1e-9), 1),
                "p50_ms": round(float(np.percentile(lat, 50)), 1), "p90_ms": round(float(np.percentile(lat, 90)), 1),
                "p99_ms": round(float(np.percentile(lat, 99)), 1), "max_ms": round(float(lat.max()), 1),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())}, "first_errors": self.first_errors}


def run_load(url: str, *, files: dict[str, Any] | None = None, data: dict[str, Any] | None = None,
             clients: int = 8, requests: int = 500, max_seconds: float = 600.0, timeout: float = 60.0,
             headers: dict[str, str] | None = None, expect: int = 200) -> LoadResult:
    """``clients`` threads each POST (GET without ``files``/``data``) ``requests`` times to ``url``.

    A response with another status than ``expect``, or a transport error, counts as an error.
    """
    import httpx

    lock = threading.Lock()
    res = LoadResult(clients, 0, 0, 0.0)
    deadline = time.perf_counter() + max_seconds

    def client() -> None:
        with httpx.Client(timeout=timeout, headers=headers, trust_env=False) as c:
            for _ in range(requests):
                if time.perf_counter() > deadline:
                    return
                t0 = time.perf_counter()
                status, err = 0, ""
                try:
                    r = c.post(url, files=files, data=data) if (files or data) else c.get(url)
                    status = r.status_code
                    if status != expect:
                        err = f"HTTP {status}: {r.text[:200]}"
                except httpx.HTTPError as e:
                    err = f"{type(e).__name__}: {e}"
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    res.requests += 1
                    res.latencies_ms.append(ms)
                    res.statuses[status] = res.statuses.get(status, 0) + 1
                    if err:
                        res.errors += 1
                        if len(res.first_errors) < 5:
                            res.first_errors.append(err)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, name=f"load-{i}") for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    res.seconds = time.perf_counter() - t0
    return res


class BackgroundServer:
    """Serve an ASGI app with uvicorn on ``127.0.0.1`` (a free port) in a thread.

    Example:
        >>> with BackgroundServer(create_app(home="h")) as url:   # doctest: +SKIP
        ...     httpx.get(url + "api/health")
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        import socket

        import uvicorn

        if port == 0:
            with socket.socket() as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
        self.url = f"http://{host}:{port}/"
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="faceforge-server", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        end = time.time() + 30
        while not self.server.started:
            if time.time() > end or not self.thread.is_alive():
                raise RuntimeError(f"the server at {self.url} did not start")
            time.sleep(0.05)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
