"""PyTorch's two ``torch.save`` layouts written without PyTorch, byte for byte as torch lays them out: the
tests' published ``.pth`` files (PyTorch's examples publish their style networks so).  torch itself reads
what this writes (a test checks it where torch is installed)."""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict

import numpy as np


def _stand_in(module, name):
    """A function importable as ``_standin_<module>.<name>``: pickled by reference (a GLOBAL opcode), whose
    module the writer then renames to ``module`` in the bytes (so nothing named ``torch`` is ever imported)."""
    import sys
    import types

    alias = "_standin_" + module.replace(".", "_")
    stand_in = sys.modules.setdefault(alias, types.ModuleType(alias))
    if not hasattr(stand_in, name):
        def function(*args):
            raise AssertionError("never called")
        function.__module__, function.__qualname__, function.__name__ = alias, name, name
        setattr(stand_in, name, function)
    return getattr(stand_in, name)


RENAMES = ((b"c_standin_torch__utils\n", b"ctorch._utils\n"), (b"c_standin_torch\n", b"ctorch\n"))


class _TensorRef:
    def __init__(self, key, array):
        self.key, self.array = key, array


class _TorchPickler(pickle.Pickler):
    """Writes a dict of arrays as torch.save does: each tensor a ``_rebuild_tensor_v2`` call on a storage that
    a persistent id names, ``('storage', torch.FloatStorage, key, location, numel[, view])``."""

    def __init__(self, handle, legacy):
        super().__init__(handle, protocol=2)
        self.legacy, self.refs = legacy, []

    def persistent_id(self, obj):
        if isinstance(obj, _TensorRef):
            head = ("storage", _stand_in("torch", "FloatStorage"), obj.key, "cpu", obj.array.size)
            return head + (None,) if self.legacy else head
        return None

    def reducer_override(self, obj):
        if isinstance(obj, np.ndarray):
            ref = _TensorRef(str(len(self.refs)), obj)
            self.refs.append(ref)
            stride = tuple(s // obj.itemsize for s in obj.strides)
            return (_stand_in("torch._utils", "_rebuild_tensor_v2"), (ref, 0, obj.shape, stride, False, OrderedDict()))
        return NotImplemented


def write_torch_file(path, state, legacy=False):
    """``state`` (name -> float32 array) in torch.save's zip layout, or its legacy stream (before torch 1.6)."""
    state = OrderedDict((k, np.ascontiguousarray(v, np.float32)) for k, v in state.items())
    buffer = io.BytesIO()
    pickler = _TorchPickler(buffer, legacy)
    pickler.dump(state)
    refs, data = pickler.refs, buffer.getvalue()
    for old, new in RENAMES:
        data = data.replace(old, new)
    if legacy:
        with open(path, "wb") as handle:
            for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
                pickle.dump(header, handle, protocol=2)
            handle.write(data)
            pickle.dump([ref.key for ref in refs], handle, protocol=2)
            for ref in refs:
                handle.write(struct.pack("<q", ref.array.size) + ref.array.tobytes())
        return
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
        for ref in refs:
            archive.writestr(f"archive/data/{ref.key}", ref.array.tobytes())
