"""PyTorch's ``.pth`` state dicts, read without PyTorch and without running code from the file.

``torch.save`` writes one of two layouts, and this module reads both:

* the zip archive (torch 1.6 and later): ``<root>/data.pkl`` is a pickle whose tensors refer, by
  persistent id ``('storage', torch.FloatStorage, key, location, numel)``, to raw little-endian storages
  in ``<root>/data/<key>``;
* the legacy stream (before 1.6; the published ``fast_neural_style`` models): four pickles in a row (a
  magic number, a protocol version, system information, the object) and a pickled list of storage keys,
  followed by each storage as an 8-byte element count and its bytes.

The object pickle rebuilds each tensor with ``torch._utils._rebuild_tensor_v2`` (``_rebuild_tensor`` in
the oldest files) from a storage, an offset, a size and strides.  :class:`TorchUnpickler` admits those two
names, the storage types as markers of a dtype, and ``collections.OrderedDict``; each tensor becomes a NumPy
array, and any other global is refused before it is imported (:class:`~multistyle.safe_pickle.UnsafePickle`).
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from typing import IO, Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from .errors import WeightsError, first_line
from .safe_pickle import UnsafePickle

#: torch's storage types, by the name pickles give them, and the NumPy dtype of their bytes.
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
_MAGIC = 0x1950A86A20F9469CFC6C  # the legacy stream's first pickle


class _StorageType:
    """A storage type named by the pickle (``torch.FloatStorage``): only its dtype is kept."""

    def __init__(self, dtype: Any) -> None:
        self.dtype = np.dtype(dtype)


class _Storage:
    """One storage: its dtype, its element count, and its bytes once they are read."""

    def __init__(self, dtype: np.dtype, numel: int) -> None:
        self.dtype, self.numel = dtype, numel
        self.data: Optional[np.ndarray] = None


class _Tensor:
    """A tensor waiting for its storage's bytes (the legacy stream has them after the object)."""

    def __init__(self, storage: _Storage, offset: int, size: Tuple[int, ...], stride: Tuple[int, ...]) -> None:
        self.storage, self.offset, self.size, self.stride = storage, int(offset), tuple(size), tuple(stride)

    def array(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise WeightsError("a tensor's storage is missing from the file")
        if not self.size:
            return np.array(data[self.offset])
        itemsize = data.dtype.itemsize
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if min(self.size) > 0 and (last >= data.size or min(self.stride) < 0):
            raise WeightsError("a tensor reaches beyond its storage")
        view = np.lib.stride_tricks.as_strided(data[self.offset:], self.size,
                                               tuple(s * itemsize for s in self.stride), writeable=False)
        return np.array(view)


def _rebuild_tensor(storage: _Storage, offset: int, size: Tuple[int, ...], stride: Tuple[int, ...],
                    *unused: Any) -> _Tensor:
    return _Tensor(storage, offset, size, stride)


class TorchUnpickler(pickle.Unpickler):
    """Builds plain containers and tensors (as :class:`_Tensor`); storages come from ``load_storage``."""

    def __init__(self, handle: IO[bytes], load_storage: Callable[[Tuple[Any, ...]], _Storage]) -> None:
        super().__init__(handle, encoding="latin1")
        self._load_storage = load_storage

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(STORAGE_DTYPES[name])
        if (module, name) == ("collections", "OrderedDict"):
            return super().find_class(module, name)
        raise UnsafePickle(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise UnsafePickle(f"persistent id {str(pid)[:40]!r}")
        return self._load_storage(pid)


def load_torch_state_dict(path: str, what: str = "PyTorch state dict") -> Dict[str, np.ndarray]:
    """The tensors of a ``.pth`` state dict (either layout), as NumPy arrays keyed by name.

    A checkpoint that nests the state dict under ``state_dict`` is unwrapped; values that are not tensors
    are dropped.  Raises :class:`WeightsError` (one line) for anything unreadable, and
    :class:`UnsafePickle` for a pickle that names more than a state dict needs.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
            handle.seek(0)
            state = _read_zip(handle) if head.startswith(b"PK") else _read_legacy(handle)
    except UnsafePickle as exc:
        raise UnsafePickle(f"{path}: refused to load: the file asks to run {exc}, which a {what} never contains "
                           f"(it may be malicious); use a trusted file") from None
    except WeightsError as exc:
        raise WeightsError(f"{path}: not a readable {what} ({exc})") from None
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except Exception as exc:  # truncated, not a pickle, not a zip: UnpicklingError, EOFError, BadZipFile, ...
        raise WeightsError(f"{path}: not a readable {what} ({type(exc).__name__}: {first_line(exc)})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a {what}, found a {type(state).__name__}")
    try:
        return {str(key): value.array() for key, value in state.items() if isinstance(value, _Tensor)}
    except WeightsError as exc:
        raise WeightsError(f"{path}: not a readable {what} ({exc})") from None


def _read_zip(handle: IO[bytes]) -> Any:
    with zipfile.ZipFile(handle) as archive:
        names = archive.namelist()
        pickles = [name for name in names if name.endswith("/data.pkl") or name == "data.pkl"]
        if not pickles:
            raise WeightsError("a zip archive without data.pkl")
        root = pickles[0][: -len("data.pkl")]
        order = archive.read(f"{root}byteorder").decode().strip() if f"{root}byteorder" in names else "little"
        storages: Dict[str, _Storage] = {}

        def load(pid: Tuple[Any, ...]) -> _Storage:
            _, kind, key, _location, numel = pid[:5]
            if key not in storages:
                storage = _Storage(kind.dtype, int(numel))
                raw = archive.read(f"{root}data/{key}")
                storage.data = np.frombuffer(raw, kind.dtype.newbyteorder("<" if order == "little" else ">"))
                storages[key] = storage
            return storages[key]

        return TorchUnpickler(io.BytesIO(archive.read(pickles[0])), load).load()


def _read_legacy(handle: IO[bytes]) -> Any:
    def plain() -> Any:  # the header pickles hold numbers and a dict of numbers: no global at all
        return TorchUnpickler(handle, _no_storage).load()

    if plain() != _MAGIC:
        raise WeightsError("neither a zip archive nor a legacy torch.save stream")
    if plain() != 1001:
        raise WeightsError("a legacy torch.save stream of an unknown protocol version")
    plain()  # system information: byte order and type sizes; the storages below are little-endian
    storages: Dict[str, _Storage] = {}

    def load(pid: Tuple[Any, ...]) -> _Storage:
        _, kind, key, _location, numel = pid[:5]
        if len(pid) > 5 and pid[5] is not None:
            raise WeightsError("a storage view (torch before 0.4 with shared storages) is not supported")
        if key not in storages:
            storages[key] = _Storage(kind.dtype, int(numel))
        return storages[key]

    state = TorchUnpickler(handle, load).load()
    keys: List[str] = TorchUnpickler(handle, _no_storage).load()
    for key in keys:
        storage = storages.get(key)
        (count,) = struct.unpack("<q", handle.read(8))
        if storage is None:
            raise WeightsError(f"storage {key!r} is listed but no tensor uses it")
        raw = handle.read(count * storage.dtype.itemsize)
        if len(raw) != count * storage.dtype.itemsize:
            raise WeightsError("the file ends inside a storage")
        storage.data = np.frombuffer(raw, storage.dtype.newbyteorder("<"))
    return state


def _no_storage(pid: Tuple[Any, ...]) -> _Storage:
    raise UnsafePickle(f"persistent id {str(pid)[:40]!r}")
