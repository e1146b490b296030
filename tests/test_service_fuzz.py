"""Schema fuzzing: schemathesis generates requests from the OpenAPI spec, valid and invalid;
no answer may be a server error (5xx)."""

from __future__ import annotations

import socket

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

from faceforge.service import create_app  # noqa: E402
from faceforge.service import safety  # noqa: E402


def _offline_resolve(host, *args, **kwargs):
    """Resolve IP literals only: generated URLs must never reach a real DNS server or host."""
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except (OSError, TypeError) as e:
        raise socket.gaierror(f"fuzzing stays offline: {host!r} is not resolved") from e
    return socket.getaddrinfo(host, *args, **kwargs)


@pytest.fixture(scope="module", autouse=True)
def _offline():
    old = safety.resolve
    safety.resolve = _offline_resolve
    yield
    safety.resolve = old


def _schema():
    import tempfile

    app = create_app(home=tempfile.mkdtemp(prefix="faceforge-fuzz-"), run_jobs=False, max_request_mb=5)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = _schema()


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    from schemathesis.checks import not_a_server_error

    case.call_and_validate(checks=[not_a_server_error])


# -- stateful: sequences of calls on real resources -----------------------------------------------

def _seed(client, astronaut, video: bytes) -> None:
    """Real resources for the links schemathesis infers (list -> get / delete / cancel ...): a
    gallery with an enrolled person, a queued video job and a queued training job (each made
    again once an earlier scenario deleted or cancelled it)."""
    from conftest import jpeg

    if not client.get("/api/galleries").json()["galleries"]:
        r = client.post("/api/galleries/crew/people/eileen/photos",
                        files=[("files", ("a.jpg", jpeg(astronaut), "image/jpeg"))])
        assert r.status_code == 201, r.text
    if any(j["status"] == "queued" for j in client.get("/api/jobs").json()["jobs"]):
        return
    r = client.post("/api/videos", files={"file": ("clip.avi", video, "video/x-msvideo")},
                    data={"attributes": "gender"})
    assert r.status_code == 202, r.text
    photos = [("files", (f"{i}.jpg", jpeg(astronaut), "image/jpeg")) for i in range(4)]
    r = client.post("/api/training", files=photos, data={"name": "m", "labels": ["a", "a", "b", "b"]})
    assert r.status_code == 202, r.text


def test_stateful_sequences_give_no_server_errors(tmp_path, astronaut):
    """Schemathesis' state machine over the links it infers from the schema (lists of jobs,
    models and galleries to their item operations: get, cancel, frames, people, identify,
    delete), starting from real resources; no answer may be a 5xx. About 30 s."""
    from fastapi.testclient import TestClient
    from hypothesis import settings as hsettings
    from schemathesis.checks import not_a_server_error

    from conftest import write_panning_video

    video = write_panning_video(tmp_path / "clip.avi", astronaut, frames=4, step=4).read_bytes()
    app = create_app(home=tmp_path / "home", run_jobs=False, max_request_mb=5)
    client = TestClient(app)
    _seed(client, astronaut, video)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    seen: list[str] = []

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            _seed(client, astronaut, video)

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            seen.append(f"{case.method} {case.path}")
            case.validate_response(response, checks=[not_a_server_error])

    Workflow.run(settings=hsettings(max_examples=40, stateful_step_count=8, deadline=None, derandomize=True,
                                    suppress_health_check=list(HealthCheck)))
    assert any("{job_id}" in s for s in seen) and any("{gallery}" in s for s in seen), sorted(set(seen))
