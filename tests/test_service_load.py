"""A bounded load test on loopback: 8 concurrent clients against a real uvicorn server, zero
errors. (The full 8 x 500 run with its latency figures is ``benchmarks/bench_service.py``.)"""

from __future__ import annotations

import pytest

from conftest import jpeg

pytest.importorskip("uvicorn")

from faceforge.service import create_app  # noqa: E402
from faceforge.service.loadtest import BackgroundServer, run_load  # noqa: E402


def test_eight_clients_no_errors(tmp_path, astronaut):
    small = jpeg(astronaut[::2, ::2].copy())  # 256 x 256
    with BackgroundServer(create_app(home=tmp_path, run_jobs=False)) as url:
        res = run_load(url + "api/detect", files={"file": ("a.jpg", small, "image/jpeg")}, clients=8, requests=25,
                       max_seconds=120)
        health = run_load(url + "api/health", clients=8, requests=25, max_seconds=60)
    d = res.to_dict()
    print(d)
    assert res.requests == 200 and res.errors == 0, d
    assert health.requests == 200 and health.errors == 0, health.to_dict()
