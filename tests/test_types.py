import numpy as np
import pytest

from faceforge.types import Faces, iou_matrix, nms


def test_faces_columns_and_views():
    f = Faces(xyxy=[[0, 0, 10, 20], [5, 5, 25, 15]], score=[0.2, 0.9])
    assert f.xyxy.dtype == np.float32 and f.landmarks.shape == (2, 5, 2)
    assert not f.has_landmarks.any()
    assert f.width.tolist() == [10, 20] and f.height.tolist() == [20, 10]
    s = f.sorted("score")
    assert s.score.tolist() == pytest.approx([0.9, 0.2])
    assert len(f[1]) == 1 and f[1].xyxy[0, 0] == 5 and f[-1].xyxy[0, 0] == 5
    assert [len(x) for x in f] == [1, 1]
    g = f.with_data(embedding=np.ones((2, 3)))
    assert "embedding" in g.data and "embedding" not in f.data  # inputs are never mutated
    assert g[0].data["embedding"].shape == (1, 3)


def test_faces_validates_shapes():
    with pytest.raises(ValueError, match="score must have length 2"):
        Faces(xyxy=[[0, 0, 1, 1], [0, 0, 2, 2]], score=[1.0])
    with pytest.raises(ValueError, match="landmarks must have 1 rows"):
        Faces(xyxy=[[0, 0, 1, 1]], score=[1.0], landmarks=np.zeros((2, 5, 2)))


def test_to_dicts_json_ready():
    lm = np.arange(10, dtype=np.float32).reshape(1, 5, 2)
    d = Faces([[1, 2, 3, 4]], [0.5], lm).to_dicts()[0]
    assert d["box"] == [1, 2, 3, 4] and d["landmarks"]["nose"] == [4.0, 5.0]


def test_iou_and_nms():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    iou = iou_matrix(boxes, boxes)
    assert iou[0, 0] == pytest.approx(1.0) and iou[0, 2] == 0
    assert iou[0, 1] == pytest.approx(81 / 119, rel=1e-4)
    keep = nms(boxes, np.array([0.5, 0.9, 0.3]), 0.4)
    assert keep.tolist() == [1, 2]
