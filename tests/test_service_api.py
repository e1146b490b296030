"""The service's structure, seen from a client: the OpenAPI document (a response schema for every
operation, the API key as a security scheme), settings from the environment, dependency
overrides, the error families, and the service store's schema version."""

from __future__ import annotations

import sqlite3

import pytest
from conftest import jpeg

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from faceforge.service import create_app


@pytest.fixture()
def client(tmp_path):
    with TestClient(create_app(home=tmp_path, run_jobs=False)) as c:
        yield c


def test_every_operation_documents_a_success_schema(client):
    spec = client.get("/openapi.json").json()
    missing = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            ok = [r for s, r in op["responses"].items() if s.startswith("2")
                  and any("schema" in c for c in r.get("content", {}).values())]
            if not ok:
                missing.append(f"{method.upper()} {path}")
    assert not missing, missing
    assert len(spec["paths"]) >= 17
    faces = spec["paths"]["/api/detect"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert faces["$ref"].endswith("/Detected")
    assert "box" in spec["components"]["schemas"]["Face"]["properties"]
    assert spec["paths"]["/api/jobs/{job_id}"]["get"]["responses"]["404"]["content"]["application/json"]["schema"][
        "$ref"].endswith("/Error")


def test_api_key_is_a_declared_security_scheme(client):
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert {"type": "apiKey", "in": "header", "name": "X-API-Key"}.items() <= schemes["APIKey"].items()
    assert schemes["Bearer"]["scheme"] == "bearer"
    assert spec["paths"]["/api/models"]["get"]["security"] == [{"APIKey": []}, {"Bearer": []}]
    assert "security" not in spec["paths"]["/api/health"]["get"]


def test_faces_keep_every_key_the_library_gives(client, astronaut):
    (face,) = client.post("/api/detect", files={"file": ("a.jpg", jpeg(astronaut), "image/jpeg")}).json()["faces"]
    assert set(face) == {"box", "score", "landmarks"}  # no null fields added for keys the library did not send
    (face,) = client.post("/api/analyze", files={"file": ("a.jpg", jpeg(astronaut), "image/jpeg")},
                          data={"attributes": "gender,age"}).json()["faces"]
    assert {"box", "detection_score", "whole_image", "gender", "age"} <= set(face) and "score" not in face
    assert face["gender"]["label"] == "female" and isinstance(face["age"]["value"], float)


def test_settings_come_from_the_environment(tmp_path, monkeypatch):
    from faceforge.errors import ParameterError
    from faceforge.service.settings import Settings

    monkeypatch.setenv("FACEFORGE_HOME", str(tmp_path / "env-home"))
    monkeypatch.setenv("FACEFORGE_API_KEY", "from-env")
    monkeypatch.setenv("FACEFORGE_MAX_PHOTOS", "7")
    s = Settings()
    assert (s.home, s.api_key, s.max_photos) == (tmp_path / "env-home", "from-env", 7)
    app = create_app(run_jobs=False, api_key="given")  # arguments win over the environment
    assert app.state.settings.api_key == "given" and app.state.home.path == (tmp_path / "env-home").resolve()
    assert create_app(s, max_photos=3).state.settings.max_photos == 3
    with pytest.raises(ParameterError, match="extra"):
        create_app(home=tmp_path, extra={})
    with pytest.raises(ParameterError, match="max_image_mb"):
        create_app(home=tmp_path, max_image_mb=-1)


def test_settings_dependency_can_be_overridden(tmp_path):
    from faceforge.service.deps import get_settings
    from faceforge.service.settings import Settings

    app = create_app(home=tmp_path, run_jobs=False)
    app.dependency_overrides[get_settings] = lambda: Settings(home=tmp_path, max_photos=1, run_jobs=False)
    with TestClient(app) as c:
        files = [("files", (f"{i}.jpg", b"\xff\xd8\xff", "image/jpeg")) for i in range(2)]
        r = c.post("/api/galleries/g/people/p/photos", files=files)
        assert r.status_code == 413 and "limit of 1" in r.json()["detail"]


def test_error_families(tmp_path):
    from faceforge.errors import BundleError, DatasetError, ImageError, ModelNotFoundError, ParameterError, SourceError
    from faceforge.gallery import GalleryError
    from faceforge.service.safety import RequestError

    app = create_app(home=tmp_path, run_jobs=False)
    cases = [(RequestError("teapot", 418), 418), (GalleryError("no gallery"), 404),
             (ModelNotFoundError("no model"), 404), (ImageError("bad image"), 422),
             (ParameterError("bad parameter"), 422), (SourceError("bad source"), 400),
             (BundleError("bad bundle"), 400), (DatasetError("bad dataset"), 400)]
    for i, (err, _) in enumerate(cases):
        def boom(e=err):
            raise e
        app.add_api_route(f"/boom/{i}", boom)
    with TestClient(app) as c:
        for i, (err, status) in enumerate(cases):
            r = c.get(f"/boom/{i}")
            assert (r.status_code, r.json()) == (status, {"detail": str(err)}), type(err)


def test_service_store_from_before_versioning_opens(tmp_path, astronaut):
    """A home made by an older faceforge (tables, user_version 0) opens and keeps its rows."""
    old = sqlite3.connect(tmp_path / "service.db")
    old.executescript("""
        CREATE TABLE models (name TEXT PRIMARY KEY, file TEXT NOT NULL, source TEXT NOT NULL,
            info TEXT NOT NULL, created REAL NOT NULL);
        CREATE TABLE jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL,
            params TEXT NOT NULL, progress REAL NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '',
            result TEXT, error TEXT, created REAL NOT NULL, updated REAL NOT NULL);
        INSERT INTO jobs (id, kind, status, params, created, updated)
            VALUES ('0123456789abcdef0123456789abcdef', 'video', 'failed', '{}', 1, 2);
    """)
    old.close()
    (tmp_path / "jobs" / "0123456789abcdef0123456789abcdef").mkdir(parents=True)
    with TestClient(create_app(home=tmp_path, run_jobs=False)) as c:
        assert c.get("/api/jobs/0123456789abcdef0123456789abcdef").json()["status"] == "failed"
    db = sqlite3.connect(tmp_path / "service.db")
    from faceforge.service.state import MIGRATIONS

    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    from faceforge._sqlite import SchemaVersionError

    with pytest.raises(SchemaVersionError, match="service store"):
        create_app(home=tmp_path, run_jobs=False)
