"""Read PyTorch ``torch.save`` files of tensors into numpy arrays, without PyTorch.

Both on-disk formats are understood:

* the legacy format (``_use_new_zipfile_serialization=False`` or torch < 1.6): five pickles in a
  row (magic number, protocol version, system info, the object, the list of storage keys),
  then every storage as an ``int64`` element count followed by its raw little-endian bytes;
* the zip format (torch >= 1.6): ``<name>/data.pkl`` plus one ``<name>/data/<key>`` entry per
  storage.

The unpickler is restricted: it only rebuilds tensors, parameters and plain containers
(``dict``, ``OrderedDict``, ``list``, ``tuple``, numbers, strings). Any other global in the file
is refused, so loading an untrusted file can never run code.

Example:
    >>> from faceforge.registry import weight_path
    >>> sd = load_state_dict(weight_path("mtcnn.pnet"))  # doctest: +SKIP
    >>> sd["conv1.weight"].shape  # doctest: +SKIP
    (10, 3, 3, 3)
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from faceforge.errors import ModelIntegrityError

__all__ = ["TorchFileError", "load", "load_state_dict"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

#: torch storage class name -> numpy dtype of its elements.
_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),  # widened to float32 after reading
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
    "UntypedStorage": np.dtype("u1"),
}

#: torch dtype name (``torch.float32`` pickles as ``torch float32``) -> numpy dtype.
_TORCH_DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype("<f4"), "float": np.dtype("<f4"), "float64": np.dtype("<f8"),
    "double": np.dtype("<f8"), "float16": np.dtype("<f2"), "half": np.dtype("<f2"),
    "bfloat16": np.dtype("<u2"), "int64": np.dtype("<i8"), "long": np.dtype("<i8"),
    "int32": np.dtype("<i4"), "int": np.dtype("<i4"), "int16": np.dtype("<i2"),
    "short": np.dtype("<i2"), "int8": np.dtype("i1"), "uint8": np.dtype("u1"), "bool": np.dtype("?"),
}


class TorchFileError(ModelIntegrityError):
    """A ``torch.save`` file is corrupt, truncated, or holds something other than tensors."""


@dataclass(frozen=True)
class _StorageType:
    name: str
    dtype: np.dtype
    bfloat16: bool = False


@dataclass(frozen=True)
class _TorchDtype:
    name: str


@dataclass
class _StorageRef:
    key: str
    stype: _StorageType
    numel: int
    view: tuple[str, int, int] | None = None  # (root key, element offset, element count)


@dataclass
class _TensorRef:
    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: Any, storage_offset: int, size: Any, stride: Any, *_: Any) -> _TensorRef:
    if not isinstance(storage, _StorageRef):
        raise TorchFileError(f"a tensor refers to a {type(storage).__name__}, expected a storage")
    return _TensorRef(storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    return data


def _ordered_dict(*args: Any, **kwargs: Any) -> collections.OrderedDict:
    return collections.OrderedDict(*args, **kwargs)


#: The only globals a tensor file may name: (module, name) -> callable or marker.
_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.nn.parameter", "Parameter"): _rebuild_parameter,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that knows torch storages and tensors and refuses every other global."""

    def __init__(self, f: BinaryIO, zip_format: bool) -> None:
        super().__init__(f, encoding="utf-8")
        self._zip = zip_format
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name], name == "BFloat16Storage")
        if module == "torch" and name in _TORCH_DTYPES:
            return _TorchDtype(name)
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise TorchFileError(
                f"refusing to load the global {module}.{name}: only tensors and plain containers "
                f"are allowed in a weight file"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise TorchFileError(f"unsupported persistent id {pid!r:.80}")
        if self._zip:
            if len(pid) < 5:
                raise TorchFileError(f"malformed storage id {pid!r:.80}")
            stype, key, numel, view = pid[1], str(pid[2]), int(pid[4]), None
        else:
            if len(pid) < 6:
                raise TorchFileError(f"malformed storage id {pid!r:.80}")
            stype, key, numel, view_meta = pid[1], str(pid[2]), int(pid[4]), pid[5]
            view = None
            if view_meta is not None:
                view_key, view_offset, view_size = view_meta
                view = (key, int(view_offset), int(view_size))
                key = str(view_key)
        if isinstance(stype, _TorchDtype):  # some writers store the dtype instead of the class
            stype = _StorageType(stype.name, _TORCH_DTYPES[stype.name], stype.name == "bfloat16")
        if not isinstance(stype, _StorageType):
            raise TorchFileError(f"unsupported storage type {stype!r:.80}")
        if view is None:
            ref = self.storages.setdefault(key, _StorageRef(key, stype, numel))
            return ref
        root_key, offset, size = view
        self.storages.setdefault(root_key, _StorageRef(root_key, stype, numel))
        return _StorageRef(key, stype, size, (root_key, offset, size))


def _materialise(obj: Any, data: dict[str, np.ndarray]) -> Any:
    """Replace every :class:`_TensorRef` inside ``obj`` by a numpy array."""
    if isinstance(obj, _TensorRef):
        st = obj.storage
        buf = data[st.view[0]] if st.view else data[st.key]
        base = st.view[1] if st.view else 0
        item = buf.itemsize
        n = int(np.prod(obj.size, dtype=np.int64)) if obj.size else 1
        if n == 0:
            arr = np.zeros(obj.size, buf.dtype)
        else:
            start = base + obj.offset
            last = start + sum((s - 1) * d for s, d in zip(obj.size, obj.stride))
            if start < 0 or last >= len(buf):
                raise TorchFileError("a tensor reaches past the end of its storage")
            arr = np.lib.stride_tricks.as_strided(
                buf[start:], shape=obj.size, strides=tuple(d * item for d in obj.stride), writeable=False
            ).copy()
        if st.stype.bfloat16:
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        return arr
    if isinstance(obj, collections.OrderedDict):
        out = collections.OrderedDict((k, _materialise(v, data)) for k, v in obj.items())
        meta = getattr(obj, "_metadata", None)
        if meta is not None:
            out._metadata = meta  # type: ignore[attr-defined]
        return out
    if isinstance(obj, dict):
        return {k: _materialise(v, data) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_materialise(v, data) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialise(v, data) for v in obj)
    if isinstance(obj, (_StorageRef, _StorageType, _TorchDtype)):
        raise TorchFileError("the file holds a bare storage or dtype; only tensors are supported")
    return obj


def _read_exact(f: BinaryIO, n: int) -> bytes:
    b = f.read(n)
    if len(b) != n:
        raise TorchFileError("the file is truncated")
    return b


def _load_legacy(f: BinaryIO) -> Any:
    def plain() -> Any:
        return _RestrictedUnpickler(f, zip_format=False).load()

    magic = plain()
    if magic != _LEGACY_MAGIC:
        raise TorchFileError("not a torch.save file (wrong magic number)")
    protocol = plain()
    if protocol != _LEGACY_PROTOCOL:
        raise TorchFileError(f"unsupported torch.save protocol version {protocol!r}")
    sys_info = plain()
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise TorchFileError("the file was written on a big-endian machine, which is not supported")
    unpickler = _RestrictedUnpickler(f, zip_format=False)
    obj = unpickler.load()
    keys = plain()
    if not isinstance(keys, list):
        raise TorchFileError("malformed storage key list")
    data: dict[str, np.ndarray] = {}
    for key in keys:
        key = str(key)
        ref = unpickler.storages.get(key)
        if ref is None:
            raise TorchFileError(f"storage {key!r} is listed but never used")
        (numel,) = struct.unpack("<q", _read_exact(f, 8))
        dtype = ref.stype.dtype
        if numel < 0 or numel > (1 << 40):
            raise TorchFileError(f"storage {key!r} has an impossible size {numel}")
        data[key] = np.frombuffer(_read_exact(f, numel * dtype.itemsize), dtype=dtype)
    missing = set(unpickler.storages) - set(data)
    if missing:
        raise TorchFileError(f"storages {sorted(missing)[:3]} are used but missing from the file")
    return _materialise(obj, data)


def _load_zip(zf: zipfile.ZipFile) -> Any:
    names = zf.namelist()
    pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
    if not pkl:
        raise TorchFileError("zip file without <name>/data.pkl: not a torch.save file")
    prefix = pkl[0][: -len("data.pkl")]
    if f"{prefix}byteorder" in names and zf.read(f"{prefix}byteorder").strip() != b"little":
        raise TorchFileError("the file was written big-endian, which is not supported")
    unpickler = _RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])), zip_format=True)
    obj = unpickler.load()
    data: dict[str, np.ndarray] = {}
    for key, ref in unpickler.storages.items():
        try:
            raw = zf.read(f"{prefix}data/{key}")
        except KeyError:
            raise TorchFileError(f"storage {key!r} is missing from the zip file") from None
        usable = len(raw) - len(raw) % ref.stype.dtype.itemsize
        data[key] = np.frombuffer(raw[:usable], dtype=ref.stype.dtype)
    return _materialise(obj, data)


def load(path: str | os.PathLike) -> Any:
    """Load a ``torch.save`` file whose content is tensors in plain containers.

    Args:
        path: the ``.pt`` / ``.pth`` file (legacy or zip format).

    Returns:
        The saved object with every tensor replaced by a numpy array (``bfloat16`` widened to
        ``float32``).

    Raises:
        TorchFileError: the file is not a torch file, is truncated, or names a global other than
            the tensor-rebuilding helpers (nothing outside that list is ever called).
    """
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                return _load_zip(zf)
        with open(path, "rb") as f:
            return _load_legacy(f)
    except TorchFileError as e:
        raise TorchFileError(f"{os.fspath(path)}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, struct.error, zipfile.BadZipFile) as e:
        raise TorchFileError(f"{os.fspath(path)}: not a readable torch.save file ({e})") from e


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load a saved state dict as ``{parameter name: numpy array}``.

    A checkpoint that wraps the state dict under ``"state_dict"`` or ``"model"`` is unwrapped,
    and a ``"module."`` prefix (from ``DataParallel``) is removed.

    Raises:
        TorchFileError: as :func:`load`, or the file holds no mapping of names to tensors.
    """
    obj = load(path)
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise TorchFileError(f"{os.fspath(path)}: expected a state dict, found {type(obj).__name__}")
    out = {str(k): v for k, v in obj.items() if isinstance(v, np.ndarray)}
    if not out:
        raise TorchFileError(f"{os.fspath(path)}: the file holds no tensors")
    if all(k.startswith("module.") for k in out):
        out = {k[len("module."):]: v for k, v in out.items()}
    return out
