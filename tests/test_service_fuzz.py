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
