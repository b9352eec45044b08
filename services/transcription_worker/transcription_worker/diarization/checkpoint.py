"""Read a legacy (pre-zip) torch checkpoint's float tensors into numpy, without torch.

resemblyzer's `pretrained.pt` was written by `torch.save` before the zip format (torch 1.6):
the layout `torch.serialization._legacy_load` reads. It is five pickles and then raw data:

1. a magic number, 2. the protocol version (1001), 3. system info (endianness, type sizes),
4. the object itself, where every storage is a persistent id
   `("storage", storage_type, key, location, numel, view_metadata)` and every tensor is
   `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)`,
5. the storage keys, in the order their data follows: for each, a little-endian int64
   element count and the elements themselves.

The unpickler below resolves only the globals such a checkpoint needs (the tensor rebuild
function, `OrderedDict`, float storage types) and refuses everything else, so reading it
cannot run code. Tensors come out as float32 numpy arrays. torch is the only library that
reads this format, and it is a gigabyte we do not install: hence this file.
"""

from __future__ import annotations

import collections
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
_DTYPES: dict[str, np.dtype[Any]] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
}


@dataclass(frozen=True)
class _StorageType:
    """Stands for `torch.FloatStorage` and the like: only its element type matters."""

    dtype: np.dtype[Any]


@dataclass
class _Storage:
    """A storage named in the pickle, filled once the raw data after the pickles is read."""

    dtype: np.dtype[Any]
    numel: int
    data: npt.NDArray[Any] | None = None


@dataclass(frozen=True)
class _LazyTensor:
    """A tensor whose storage is read later: `_rebuild_tensor_v2`'s arguments."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self) -> npt.NDArray[np.float32]:
        """The tensor's values, copied out of its storage."""
        if self.storage.data is None:
            raise ValueError("checkpoint: a tensor's storage was never read")
        itemsize = self.storage.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            self.storage.data[self.offset :],
            shape=self.size,
            strides=tuple(s * itemsize for s in self.stride),
            writeable=False,
        )
        return np.array(view, dtype=np.float32)


def _rebuild_tensor_v2(
    storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any
) -> _LazyTensor:
    return _LazyTensor(storage, offset, tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    """An unpickler that knows a float checkpoint's few globals and refuses the rest."""

    def __init__(self, file: IO[bytes], storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in _DTYPES:
            return _StorageType(_DTYPES[name])
        raise pickle.UnpicklingError(f"checkpoint: refusing to load {module}.{name}")

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] in ("storage", b"storage")):
            raise pickle.UnpicklingError(f"checkpoint: unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel, view = pid
        if not isinstance(storage_type, _StorageType) or view is not None:
            raise pickle.UnpicklingError("checkpoint: only whole float storages are supported")
        key = key.decode() if isinstance(key, bytes) else str(key)
        return self.storages.setdefault(key, _Storage(storage_type.dtype, int(numel)))


def _restricted_load(file: IO[bytes]) -> Any:
    """A plain-data pickle (numbers, strings, containers) and nothing else."""
    return _Unpickler(file, {}).load()


def load_legacy_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint's object with every tensor as a float32 array (`torch.load`, minus torch)."""
    storages: dict[str, _Storage] = {}
    with path.open("rb") as file:
        if _restricted_load(file) != MAGIC_NUMBER:
            raise ValueError(f"{path}: not a legacy torch checkpoint (zip checkpoints differ)")
        if _restricted_load(file) != PROTOCOL_VERSION:
            raise ValueError(f"{path}: unknown torch serialization protocol")
        info = _restricted_load(file)
        if not info.get("little_endian", False):
            raise ValueError(f"{path}: big-endian checkpoints are not supported")
        obj = _Unpickler(file, storages).load()
        for key in _restricted_load(file):
            storage = storages[str(key)]
            numel = int(np.frombuffer(file.read(8), "<i8")[0])
            if numel != storage.numel:
                raise ValueError(
                    f"{path}: storage {key} holds {numel} elements, not {storage.numel}"
                )
            raw = file.read(numel * storage.dtype.itemsize)
            if len(raw) != numel * storage.dtype.itemsize:
                raise ValueError(f"{path}: truncated checkpoint")
            storage.data = np.frombuffer(raw, storage.dtype)
    return _materialise(obj)  # type: ignore[no-any-return]


def _materialise(obj: Any) -> Any:
    """Replace the lazy tensors inside dicts, lists and tuples by arrays."""
    if isinstance(obj, _LazyTensor):
        return obj.array()
    if isinstance(obj, dict):
        return {key: _materialise(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_materialise(value) for value in obj)
    return obj
