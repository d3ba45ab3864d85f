"""Reading, writing, converting and describing VGG-19 weight files.

The portable format is an ``.npz`` (read and written here, with NumPy).
Native checkpoints (``.pth``, ``.params``, ``.pdparams``) are read and
written by the backend of their framework, chosen by extension.  All paths
go through :data:`multistyle.vgg.Weights`, so a conversion keeps the arrays
bit for bit.
"""

from __future__ import annotations

import hashlib
import os
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from .backend import Backend, backend_for_weights, get_backend
from .errors import MultistyleError, WeightsError, first_line
from .images import atomic_path, check_writable
from .vgg import (CONV_INDICES, LAYERS, Weights, canonical_weights, load_npz, parse_weights_spec, random_weights,
                  save_npz)

ALL_CONVS = CONV_INDICES[-1]


def read_native(backend: Backend, path: str) -> Dict[str, np.ndarray]:
    """A native checkpoint as a raw state dict; the framework's errors become one line."""
    try:
        return backend.load_native_weights(path)
    except MultistyleError:
        raise
    except Exception as exc:  # the framework's reader rejected the file
        raise WeightsError(f"weights {path}: not a readable {backend.framework} checkpoint "
                           f"({type(exc).__name__}: {first_line(exc)})") from None


def _existing(path: str) -> None:
    if not os.path.exists(path):
        raise WeightsError(f"weights {path}: file does not exist")
    if os.path.isdir(path):
        raise WeightsError(f"weights {path}: is a directory, expected a weight file")


def read_weights(path: str, last: int = ALL_CONVS, backend: Optional[Backend] = None) -> Tuple[Weights, str]:
    """All convolutions up to ``last`` from a file, and a description of its format.

    Native checkpoints are read by ``backend`` when given (which must be the
    file's framework), else by the backend their extension names.
    """
    _existing(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npz":
        return canonical_weights(load_npz(path), path, last), "portable .npz"
    if backend is None:
        backend = get_backend(backend_for_weights(path), device="cpu")
    elif suffix not in backend.weight_suffixes:
        accepted = ", ".join((".npz",) + backend.weight_suffixes)
        raise WeightsError(f"weights {path}: the {backend.name} backend reads {accepted} files, not "
                           f"{suffix or 'no extension'!r}; use the backend of that format or a portable .npz")
    raw = read_native(backend, path)
    return canonical_weights(raw, path, last), f"{backend.framework} checkpoint ({suffix}, {backend.name} backend)"


def write_weights(weights: Weights, path: str) -> None:
    """Write ``weights`` as ``.npz`` or as the native format its extension names, atomically."""
    if path.lower().endswith(".npz"):
        save_npz(weights, path)
        return
    backend = get_backend(backend_for_weights(path), device="cpu")
    with atomic_path(path) as temp:
        backend.save_native_weights(weights, temp)


def checksum(weights: Weights) -> str:
    """SHA-256 of the arrays in layer order: equal for equal weights, whatever the file format."""
    digest = hashlib.sha256()
    for index in sorted(weights):
        for array in weights[index]:
            digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()


def describe(path: str) -> List[str]:
    """Lines for ``multistyle weights info``: format, layers, shapes, dtype, checksum."""
    weights, kind = read_weights(path)
    count = sum(w.size + b.size for w, b in weights.values())
    dtypes = sorted({str(a.dtype) for pair in weights.values() for a in pair})
    lines = [f"file:      {path} ({os.path.getsize(path):,} bytes)",
             f"format:    {kind}",
             f"layers:    {len(weights)} convolutions, {LAYERS[min(weights)].name} .. {LAYERS[max(weights)].name}",
             f"params:    {count:,} ({', '.join(dtypes)})",
             f"sha256:    {checksum(weights)} (of the arrays, the same in every format)"]
    for index in sorted(weights):
        w, b = weights[index]
        lines.append(f"  {LAYERS[index].name:8} features.{index:<3} weight {str(tuple(w.shape)):18} bias {tuple(b.shape)}")
    return lines


def convert(source: str, destination: str) -> Tuple[Weights, Optional[str]]:
    """Convert between any two supported formats; returns the weights and the source format."""
    if os.path.abspath(source) == os.path.abspath(destination):
        raise MultistyleError(f"DST: {destination!r} is the source file; choose another name")
    check_writable(destination, "DST")
    weights, kind = read_weights(source)
    write_weights(weights, destination)
    return weights, kind


class LoadedWeights(NamedTuple):
    """VGG-19 weights already read: what :func:`load_weights` returns, and what ``transfer(weights=...)``
    also accepts, so that many jobs (``multistyle batch``) read a weights file or model zoo once."""

    arrays: Weights
    label: str  # how results describe them: "imagenet (torch)", "random:0", a file path
    untrained: bool


def load_weights(spec: str, backend: Optional[Backend], last: int) -> LoadedWeights:
    """Resolve ``--weights`` to arrays.  ``backend`` may be ``None`` for the specs that need no
    framework (``random``, ``.npz``)."""
    kind, value = parse_weights_spec(spec)
    if kind == "random":
        return LoadedWeights(random_weights(int(str(value)), last), f"random:{value}", True)
    if kind == "imagenet":
        if backend is None:
            raise ValueError("the model zoo's weights need a backend")
        raw = backend.load_zoo_weights()
        return LoadedWeights(canonical_weights(raw, f"imagenet ({backend.name} model zoo)", last),
                             f"imagenet ({backend.name})", False)
    path = str(value)
    return LoadedWeights(read_weights(path, last, backend)[0], path, False)
