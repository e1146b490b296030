import hashlib

import pytest

from faceforge.errors import ModelIntegrityError, ModelNotFoundError
from faceforge.registry import ModelSpec, derived_file, get_spec, is_installed, list_models, weight_path
from faceforge.registry.registry import _SPECS


def test_every_spec_is_complete_and_its_file_matches_its_checksum():
    specs = list_models()
    assert {"blazeface.short", "blazeface.full", "yunet", "haar", "dlib-resnet", "effnet-lite0"} <= {s.name for s in specs}
    for s in specs:
        assert s.task and s.package and s.license and s.install.startswith("pip install")
        if is_installed(s) and s.file:
            p = weight_path(s)  # verifies SHA-256
            assert hashlib.sha256(p.read_bytes()).hexdigest() == s.sha256


def test_unknown_name_suggests_the_nearest():
    with pytest.raises(ModelNotFoundError, match="Did you mean 'dlib-resnet'"):
        get_spec("dlib-resnt")


def test_missing_package_names_the_install_command():
    spec = ModelSpec("test.missing", "detect", "not-a-real-package", "not_a_real_module_xyz", "w.bin",
                     "", "MIT", "pip install not-a-real-package==1.0")
    assert not is_installed(spec)
    with pytest.raises(ModelNotFoundError, match="pip install not-a-real-package==1.0"):
        weight_path(spec)


def test_checksum_mismatch_is_refused():
    good = get_spec("haar")
    bad = ModelSpec("test.badsum", good.task, good.package, good.module, good.file, "0" * 64, good.license, good.install)
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        weight_path(bad)


def test_derived_file_is_built_once_and_keyed_by_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEFORGE_CACHE", str(tmp_path))
    calls = []

    def build(src):
        calls.append(src)
        return b"derived:" + src.read_bytes()[:10]

    a = derived_file("haar", ".bin", build, version="t1")
    b = derived_file("haar", ".bin", build, version="t1")
    assert a == b and len(calls) == 1 and a.read_bytes().startswith(b"derived:")
    assert get_spec("haar").sha256[:16] in a.name
    c = derived_file("haar", ".bin", build, version="t2")  # a new converter version rebuilds
    assert c != a and len(calls) == 2
    assert not list(tmp_path.glob(".*.tmp"))  # atomic: no temp files left behind


def test_models_cli_lists_install_state():
    from typer.testing import CliRunner

    from faceforge.cli.main import app

    r = CliRunner().invoke(app, ["models", "--json"])
    assert r.exit_code == 0, r.output
    import json

    rows = json.loads(r.output)
    assert {row["name"] for row in rows} == set(_SPECS)
    assert all(isinstance(row["installed"], bool) for row in rows)
