"""The model registry: specs, checksums, aliases, and the factories built on it."""

import hashlib

import pytest

from faceforge import registry
from faceforge.errors import ModelIntegrityError, ModelNotFoundError
from faceforge.registry import (
    TASKS,
    Alias,
    ModelSpec,
    create,
    derived_file,
    get_spec,
    is_installed,
    list_models,
    model_class,
    model_names,
    resolve_name,
    weight_path,
)
from faceforge.registry.registry import _SPECS


def test_every_spec_is_complete_and_its_file_matches_its_checksum():
    specs = list_models()
    names = {s.name for s in specs}
    assert {"blazeface.short", "blazeface.full", "yunet", "haar", "dlib-resnet", "effnet-lite0"} <= names
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
    bad = ModelSpec("test.badsum", good.task, good.package, good.module, good.file, "0" * 64, good.license,
                    good.install)
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


# -- the registry as the one source of truth -------------------------------------------------------


def test_every_model_names_code_that_imports():
    parts = {p for s in list_models() for p in s.parts}
    for s in list_models():
        assert all(p in _SPECS for p in s.parts), s.name
        if s.task in TASKS and s.name not in parts:
            assert s.cls, f"{s.name}: a {s.task} model needs a class"
        if s.cls:
            assert callable(model_class(s.name)), s.name
    assert {"logreg", "svm", "knn", "mlp", "ridge"} <= set(model_names("head"))
    assert set(model_names("attribute")) == {"gender", "age", "emotion"}


def test_builtin_model_files_are_registered_with_their_checksums():
    from pathlib import Path

    import faceforge.attributes

    folder = Path(faceforge.attributes.__file__).parent
    for name, file in [("gender", "models/gender.ffm"), ("age", "models/age.ffm"),
                       ("faceforge-emotion", "models/emotion.onnx")]:
        spec = get_spec(name)
        assert (spec.module, spec.file, spec.package) == ("faceforge.attributes", file, "faceforge")
        assert weight_path(spec) == folder / file  # verifies the SHA-256
        assert registry.sha256_file(folder / file) == hashlib.sha256((folder / file).read_bytes()).hexdigest()
    assert "research" in get_spec("gender").license and "UTKFace" in get_spec("age").license


def test_aliases_resolve():
    assert get_spec("blazeface") is get_spec("blazeface.short")
    assert resolve_name("blazeface") == "blazeface.short"
    assert resolve_name("photo") == "yunet" and resolve_name("live") == "blazeface.full"
    assert resolve_name("photo", installed=lambda n: n not in ("yunet", "mtcnn")) == "blazeface.full"
    assert resolve_name("photo", installed=lambda n: False) == "haar"  # nothing installed: the last
    assert resolve_name("haar") == "haar"
    for a in registry.list_aliases():
        assert all(t in _SPECS for t in a.targets) and a.task == "detect"
    with pytest.raises(ModelNotFoundError, match="first installed of yunet, mtcnn"):
        get_spec("photo")
    # the mtcnn detector is its three nets: installed when all are, and it has no file of its own
    assert get_spec("mtcnn").parts == ("mtcnn.pnet", "mtcnn.rnet", "mtcnn.onet")
    assert is_installed("mtcnn") == all(is_installed(p) for p in get_spec("mtcnn").parts)
    if is_installed("mtcnn"):
        with pytest.raises(ModelNotFoundError, match="made of mtcnn.pnet"):
            weight_path("mtcnn")


def test_unknown_and_wrong_task_names_say_what_to_use():
    from faceforge.detectors import get_detector
    from faceforge.embedders import get_embedder
    from faceforge.errors import ParameterError

    with pytest.raises(ModelNotFoundError, match="Did you mean 'yunet'"):
        create("yunett")
    with pytest.raises(ModelNotFoundError, match="No embed model called 'yunett'"):
        create("yunett", "embed")
    with pytest.raises(ModelNotFoundError, match="is a detect model, but a embed model is needed"):
        create("yunet", "embed")
    with pytest.raises(ModelNotFoundError, match="used by mtcnn"):
        model_class("mtcnn.onet")
    with pytest.raises(ParameterError, match="Did you mean 'blazeface"):
        get_detector("blazefac")
    with pytest.raises(ParameterError, match="Did you mean 'dlib-resnet'"):
        get_embedder("dlib-resnt")
    with pytest.raises(ModelNotFoundError, match="already an alias"):
        registry.register(ModelSpec("photo", "detect", "faceforge", None, "", "", "MIT", "pip install faceforge"))
    with pytest.raises(ModelNotFoundError, match="must point to registered models"):
        registry.register_alias(Alias("test.nowhere", ("no-such-model",), "detect"))


def test_detectors_built_through_the_registry_report_its_spec():
    from skimage import data

    from faceforge.detectors import available_detectors, get_detector

    img = data.astronaut()
    for name in available_detectors():
        spec = get_spec(name)
        if not is_installed(spec):
            continue
        det = get_detector(name)
        assert det.name == spec.name, name
        if spec.size and not spec.input.get("any_size"):
            assert det.input_size == spec.size[0], name
        assert len(det(img)) == 1, name
    assert get_detector("blazeface").name == "blazeface.short"
    assert get_detector("haar").scale_factor == get_spec("haar").options["scale_factor"]
    assert get_detector("haar", scale_factor=1.1, cached=False).scale_factor == 1.1  # the caller's option wins


def test_embedders_built_through_the_registry_report_its_spec():
    from skimage import data

    from faceforge.align import align_faces
    from faceforge.detectors import get_detector
    from faceforge.embedders import available_embedders, get_embedder

    img = data.astronaut()
    faces = get_detector("photo")(img)
    assert set(available_embedders()) == set(model_names("embed")) == {"dlib-resnet", "effnet-lite0", "agegender",
                                                                        "gendernet", "expression"}
    for name in available_embedders():
        spec = get_spec(name)
        if not is_installed(spec):
            continue
        emb = get_embedder(name)
        assert (emb.name, emb.dim, emb.input_size) == (name, spec.input["dim"], spec.size), name
        assert emb.metric == spec.input.get("metric", "euclidean") and emb.threshold == spec.input.get("threshold")
        assert emb.alignment["size"] == spec.size[0]
        if name in ("dlib-resnet", "effnet-lite0") or is_installed("dlib.shape5"):
            chips = align_faces(img, faces, **emb.alignment)
            assert emb(chips).shape == (1, spec.input["dim"]), name


def test_heads_and_attributes_come_from_the_registry():
    from faceforge.attributes.emotion import BACKENDS, CLASSES, EmotionModel

    for kind in model_names("head"):
        head = create(kind)
        assert type(head).__name__ == get_spec(kind).cls.split(":")[1]
    assert get_spec("ridge").input["predicts"] == "regression"
    emo = create("emotion")
    assert isinstance(emo, EmotionModel) and emo.classes == CLASSES == get_spec("faceforge-emotion").input["classes"]
    assert BACKENDS == tuple(get_spec("emotion").input["networks"])
    from skimage import data

    from faceforge.detectors import get_detector

    img = data.astronaut()
    crops = emo.crops(img, get_detector("photo")(img))
    assert crops.shape == (1, *get_spec(emo.spec.name).size[::-1]) and -1 <= crops.min() < crops.max() <= 1
    if is_installed("gender"):
        gender = create("gender")  # loaded from its verified file
        assert list(gender.classes) == get_spec("gender").input["classes"]


def test_class_maps_follow_the_registry(monkeypatch):
    from faceforge.detectors.base import DETECTORS
    from faceforge.embedders.base import EMBEDDERS

    assert dict(EMBEDDERS) == {n: get_spec(n).cls for n in model_names("embed")}
    assert DETECTORS["blazeface"] == get_spec("blazeface.short").cls and "mtcnn.onet" not in DETECTORS
    assert "photo" not in DETECTORS
    spec = ModelSpec("test.haar2", "detect", "opencv-python-headless", "cv2", get_spec("haar").file,
                     get_spec("haar").sha256, "BSD-3-Clause", "pip install opencv-python-headless",
                     cls="faceforge.detectors.haar:HaarDetector", options={"min_neighbors": 3})
    monkeypatch.setitem(_SPECS, spec.name, spec)
    assert "test.haar2" in DETECTORS
    det = create("test.haar2", "detect")
    assert det.min_neighbors == 3


def test_heads_come_from_the_registry():
    from faceforge.heads.base import HEADS, REGRESSORS, head_class
    from faceforge.registry import get_spec, model_class, model_names

    assert set(model_names("head")) == set(HEADS + REGRESSORS)
    for kind in HEADS + REGRESSORS:
        assert head_class(kind) is model_class(kind, "head")
        assert get_spec(kind).input["predicts"] == ("regression" if kind in REGRESSORS else "classification")
