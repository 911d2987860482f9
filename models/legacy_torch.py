"""Read a PyTorch legacy (pre-1.6, non-zip) checkpoint into numpy arrays, without torch.

The pretrained EfficientNet-Lite0 weights ship in this format. A restricted unpickler
admits only the handful of globals a state dict needs, so a checkpoint cannot run code.
"""

from __future__ import annotations

import pickle
import struct
from collections import OrderedDict
from typing import Any, BinaryIO

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, dtype: type):
        self.dtype = np.dtype(dtype)


class _LazyTensor:
    """A tensor whose storage bytes follow the pickle in the file."""

    def __init__(self, storage_key: str, offset: int, size: tuple, stride: tuple):
        self.storage_key, self.offset, self.size, self.stride = storage_key, offset, size, stride

    def materialize(self, storages: dict[str, np.ndarray]) -> np.ndarray:
        flat = storages[self.storage_key]
        if not self.size:
            return flat[self.offset].copy()
        strides = tuple(s * flat.itemsize for s in self.stride)
        view = np.lib.stride_tricks.as_strided(flat[self.offset :], shape=self.size, strides=strides)
        return np.ascontiguousarray(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *_ignored):
    return _LazyTensor(storage, storage_offset, tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    def __init__(self, f: BinaryIO, storage_types: dict[str, _StorageType]):
        super().__init__(f)
        self._storage_types = storage_types

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) in {("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")}:
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a checkpoint")

    def persistent_load(self, pid: Any) -> str:
        kind, storage_type, key, _location, _numel = pid[:5]
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        self._storage_types[key] = storage_type
        return key


def load_state_dict(path: str) -> OrderedDict[str, np.ndarray]:
    """Name -> numpy array for every tensor in a legacy PyTorch checkpoint."""
    storage_types: dict[str, _StorageType] = {}
    with open(path, "rb") as f:
        restricted = lambda: _Unpickler(f, storage_types).load()  # noqa: E731
        if restricted() != _LEGACY_MAGIC:
            raise ValueError(f"{path} is not a legacy (pre-1.6) PyTorch checkpoint")
        restricted()  # protocol version
        restricted()  # sys info
        state = restricted()
        storage_keys = restricted()
        storages = {}
        for key in storage_keys:
            (numel,) = struct.unpack("<q", f.read(8))
            dtype = storage_types[key].dtype
            storages[key] = np.frombuffer(f.read(numel * dtype.itemsize), dtype=dtype)
    return OrderedDict((name, t.materialize(storages)) for name, t in state.items())
