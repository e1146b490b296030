"""examples/onnx_classify.py, the standalone runner: run as a script without faceforge, it labels real
photos as `faceforge classify` does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import variants
from faceforge.export import export_model
from faceforge.train import load_classifier, train

RUNNER = Path(__file__).resolve().parents[1] / "examples" / "onnx_classify.py"
# faceforge is installed in this environment: make any import of it fail inside the script
NO_FACEFORGE = ("import runpy, sys; sys.modules['faceforge'] = None; sys.argv = sys.argv[1:]; "
                "runpy.run_path(sys.argv[0], run_name='__main__')")


@pytest.fixture(scope="module")
def people(astronaut, grace):
    from skimage import data

    return {"astronaut": astronaut, "grace": grace, "camera": np.repeat(data.camera()[:, :, None], 3, axis=2)}


@pytest.fixture(scope="module")
def photos(people, tmp_path_factory):
    """The original photos (JPEG files) and a model trained on 4 variants of each."""
    root = tmp_path_factory.mktemp("runner")
    files = {}
    for name, img in people.items():
        (root / "train" / name).mkdir(parents=True)
        for i, v in enumerate(variants(img, 4)):
            Image.fromarray(v).save(root / "train" / name / f"{i}.jpg", quality=92)
        files[name] = root / f"{name}.jpg"
        Image.fromarray(np.ascontiguousarray(img)).save(files[name], quality=95)
    return root, files


def _model(photos, embedder):
    root, _ = photos
    path = root / f"{embedder}.ffm"
    if not path.exists():
        train(root / "train", path, embedder=embedder, val=0.0, learning_curve=False, workers=1, progress=False)
    return path


def run_script(*args: str) -> list[list[str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FACEFORGE_CACHE")}
    r = subprocess.run([sys.executable, "-c", NO_FACEFORGE, str(RUNNER), *map(str, args)], env=env,
                       capture_output=True, text=True, timeout=120, cwd=RUNNER.parent)
    assert r.returncode == 0, r.stderr
    return [line.split() for line in r.stdout.splitlines()]


def _landmarks_json(clf, photo: Path, out: Path) -> Path:
    """The faces faceforge's own detector finds, written as the runner's --landmarks JSON."""
    faces = clf.pipeline.detect(photo)
    out.write_text(json.dumps([{"box": b.tolist(), "landmarks": lm.tolist()}
                               for b, lm in zip(faces.xyxy, faces.landmarks)]))
    return out


def test_the_runner_imports_no_faceforge():
    src = RUNNER.read_text()
    assert "faceforge" not in "".join(line for line in src.splitlines() if "import" in line)
    assert len([ln for ln in src.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]) <= 60


@pytest.mark.parametrize("embedder", ["dlib-resnet", "expression"])
def test_runner_with_landmarks_labels_as_faceforge_classify(photos, tmp_path, embedder):
    _, files = photos
    model = _model(photos, embedder)
    clf = load_classifier(model)
    export_model(model, tmp_path / "exp")
    for name, photo in files.items():
        want = [p.label for p in clf.classify(photo).predictions[clf.name]]
        lines = run_script(tmp_path / "exp", photo, "--landmarks", _landmarks_json(clf, photo, tmp_path / "f.json"))
        assert [ln[4] for ln in lines] == want and want[0] == name
        score = float(lines[0][5])
        assert score == pytest.approx(clf.classify(photo).predictions[clf.name][0].score, abs=2e-3)


def test_runner_haar_fallback_crops_by_the_sidecar_margin(photos, tmp_path):
    _, files = photos
    model = _model(photos, "dlib-resnet")
    clf = load_classifier(model)
    export_model(model, tmp_path / "exp")
    for name in ("astronaut", "grace"):
        lines = run_script(tmp_path / "exp", files[name])
        assert lines, "OpenCV's Haar cascade found no face"
        want = clf.classify(files[name]).predictions[clf.name][0].label
        assert lines[0][4] == want == name


def test_runner_with_the_exported_detector(photos, tmp_path):
    pytest.importorskip("faceforge.export.detector")
    _, files = photos
    model = _model(photos, "dlib-resnet")
    clf = load_classifier(model)
    res = export_model(model, tmp_path / "exp", with_detector=True)
    assert (res.folder / "detector.onnx").is_file()
    for name in ("astronaut", "grace"):
        lines = run_script(tmp_path / "exp", files[name])
        assert lines, "the exported detector found no face"
        assert lines[0][4] == clf.classify(files[name]).predictions[clf.name][0].label == name
