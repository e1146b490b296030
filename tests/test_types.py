import numpy as np
import pytest

from faceforge.types import UNKNOWN, Faces, Prediction, embedding_key, iou_matrix, main_face_order


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


def test_iou():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    iou = iou_matrix(boxes, boxes)
    assert iou[0, 0] == pytest.approx(1.0) and iou[0, 2] == 0
    assert iou[0, 1] == pytest.approx(81 / 119, rel=1e-4)
    assert iou_matrix(boxes[:0], boxes).shape == (0, 3)


def test_record_columns_travel_with_rows():
    f = Faces([[0, 0, 10, 10], [40, 40, 60, 60]], [0.5, 0.9], image_size=(100, 100))
    g = (f.with_embeddings("dlib-resnet", np.arange(6, dtype=np.float32).reshape(2, 3))
          .with_predictions("people", [Prediction("amy", 0.8), Prediction(UNKNOWN, 0.3)])
          .replace(track_id=[7, 9]).with_meta(source="x.jpg"))
    assert not f.embeddings and not f.predictions  # inputs are never mutated
    one = g[1]
    assert one.embedding.tolist() == [[3, 4, 5]] and one.track_id.tolist() == [9]
    assert one.predictions["people"][0].label == UNKNOWN and one.meta == {"source": "x.jpg"}
    sub = g[np.array([False, True])]
    assert sub.predictions["people"][0].label == UNKNOWN
    d = g.to_dicts(embeddings=True)
    assert d[0]["track"] == 7 and d[0]["people"]["label"] == "amy" and d[0]["embedding"] == [0, 1, 2]
    assert "detection_score" in d[0] and d[0]["whole_image"] is False
    flat = g.to_dicts(flatten="people")[1]
    assert flat["label"] == UNKNOWN and flat["score"] == 0.3 and "people" not in flat
    rows = list(g.rows())
    assert rows[0]["people"].label == "amy" and rows[1].box == [40, 40, 60, 60] and rows[0].label_text() == "#7 amy"
    with pytest.raises(ValueError, match="predictions"):
        f.with_predictions("m", [Prediction("a", 1.0)])
    with pytest.raises(ValueError, match="embeddings"):
        f.with_embeddings("e", np.zeros((3, 2)))


def test_prediction_json_has_no_nan():
    d = Prediction("a", float("nan"), [("a", float("inf"))], distance=0.25, threshold=0.6).to_dict()
    assert d["score"] is None and d["top_k"][0]["score"] is None and d["distance"] == 0.25


def test_main_face_prefers_the_centred_subject():
    # a centred face beats a somewhat larger one at the edge, but not a much larger one
    centred, edge = [400, 300, 500, 420], [0, 250, 130, 400]
    f = Faces([edge, centred], [0.9, 0.9], image_size=(900, 700))
    assert main_face_order(f).tolist() == [1, 0]
    big = Faces([[300, 250, 340, 300], [560, 200, 860, 560]], [0.9, 0.9], image_size=(900, 700))
    assert main_face_order(big).tolist() == [1, 0]
    assert main_face_order(Faces([[0, 0, 5, 5], [0, 0, 9, 9]], [1, 1])).tolist() == [1, 0]  # no size: largest


def test_embedding_key_is_canonical():
    assert embedding_key("dlib-resnet") == embedding_key("dlib-resnet", None) == embedding_key("dlib-resnet", {})
    assert embedding_key("dlib-resnet", "dlib150") == embedding_key("dlib-resnet", {"template": "dlib150"})
    assert embedding_key("dlib-resnet", "dlib150") != embedding_key("dlib-resnet")
