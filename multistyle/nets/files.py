"""Style network files: multistyle's safetensors, and the ``.pth`` state dicts that PyTorch's examples publish.

A :class:`StyleNetwork` is a flat mapping of float32 NumPy arrays, named as :mod:`.transformer` names them,
plus string metadata.  Reading a file never runs code from it:

* ``.safetensors`` (multistyle's own): a JSON header and raw tensors.  The metadata records the format,
  the architecture and width, the style image's SHA-256, the loss network (VGG-19's label and checksum),
  the training settings, the iterations done and multistyle's version.  A training checkpoint is the same
  file with the optimizer's state beside the network (``optimizer.m.NAME``, ``optimizer.v.NAME``).
* ``.pth``/``.pt``/``.model`` (PyTorch's examples, ``fast_neural_style``: candy, mosaic, rain_princess,
  udnie): a torch state dict, read by :mod:`multistyle.torch_pickle`.  Older files carry
  ``running_mean``/``running_var`` for the instance norms, which that project's own loader drops; so does
  this one.  Their names are already this module's.
"""

from __future__ import annotations

import json
import os
from typing import Dict, Mapping, Optional

import numpy as np

from .. import __version__
from ..errors import MultistyleError, WeightsError
from ..images import atomic_path, check_writable
from . import transformer

FORMAT = "multistyle-style-network"
SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pth", ".pt", ".model")
OPTIMIZER_PREFIX = "optimizer."


class StyleNetwork:
    """A trained (or fresh) style network: ``params`` (name -> float32 array) and ``metadata`` (str -> str).

    ``optimizer`` holds a checkpoint's optimizer state (``m.NAME``, ``v.NAME`` arrays), else it is empty.
    """

    def __init__(self, params: Mapping[str, np.ndarray], metadata: Optional[Mapping[str, str]] = None,
                 optimizer: Optional[Mapping[str, np.ndarray]] = None, source: str = "the network") -> None:
        self.width = transformer.check_parameters(params, source)
        self.params: Dict[str, np.ndarray] = {name: np.ascontiguousarray(params[name], dtype=np.float32)
                                              for name in transformer.parameter_shapes(self.width)}
        self.metadata: Dict[str, str] = dict(metadata or {})
        self.metadata.setdefault("format", FORMAT)
        self.metadata.setdefault("architecture", transformer.ARCHITECTURE)
        self.metadata["width"] = str(self.width)
        self.optimizer: Dict[str, np.ndarray] = dict(optimizer or {})
        self.source = source

    @classmethod
    def fresh(cls, width: int = transformer.DEFAULT_WIDTH, seed: int = 0) -> "StyleNetwork":
        """A network with freshly drawn parameters (the same numbers on every framework)."""
        return cls(transformer.init_parameters(width, seed), {"seed": str(seed)})

    @property
    def iterations(self) -> int:
        """Training iterations done (0 for a fresh or foreign network)."""
        return int(self.metadata.get("iterations", "0"))

    def settings(self) -> Dict[str, object]:
        """The training settings the metadata records (empty for a foreign network)."""
        return dict(json.loads(self.metadata.get("settings", "{}")))

    def describe(self) -> str:
        """One line: width, iterations and what it was trained against."""
        loss = self.metadata.get("loss_network", "an unknown loss network")
        trained = f"{self.iterations} iterations against {loss}" if self.iterations else "untrained or foreign"
        return f"style network {transformer.ARCHITECTURE}, width {self.width}, {trained}"

    @staticmethod
    def check_output(path: str, option: str = "--output") -> None:
        """Refuse, before any work, a path a network cannot be written to."""
        if os.path.splitext(path)[1].lower() not in SUFFIXES:
            raise MultistyleError(f"{option}: a style network is saved as .safetensors, got {path!r}")
        check_writable(path, option)

    def save(self, path: str, with_optimizer: bool = False) -> None:
        """Write a ``.safetensors`` file atomically (with the optimizer state for a checkpoint)."""
        write_network(path, self.params, self.metadata, self.optimizer if with_optimizer else None)

    @classmethod
    def from_state(cls, raw: Mapping[str, np.ndarray], path: str, option: str = "--model") -> "StyleNetwork":
        """A network from a PyTorch examples state dict read from ``path`` (its running statistics dropped)."""
        params = {name: value for name, value in raw.items()
                  if not name.endswith((".running_mean", ".running_var", ".num_batches_tracked"))}
        return cls(params, {"source": os.path.basename(path)}, source=f"{option} {path}")

    @classmethod
    def load(cls, path: str, option: str = "--model") -> "StyleNetwork":
        """Read a ``.safetensors`` network (or checkpoint), or a PyTorch examples ``.pth``; one-line errors."""
        if not os.path.isfile(path):
            raise MultistyleError(f"{option}: no such file: {path!r}")
        extension = os.path.splitext(path)[1].lower()
        if extension in TORCH_SUFFIXES:
            from ..torch_pickle import load_torch_state_dict

            return cls.from_state(load_torch_state_dict(path, "style network (PyTorch state dict)"), path, option)
        if extension not in SUFFIXES:
            raise MultistyleError(f"{option}: expected a .safetensors style network or a PyTorch .pth state dict, "
                                  f"got {path!r}")
        tensors, metadata = _read_safetensors(path, option)
        if metadata.get("format", FORMAT) != FORMAT:
            raise MultistyleError(f"{option}: {path} holds a {metadata['format']!r}, not a style network")
        params, optimizer = split_checkpoint(tensors)
        return cls(params, metadata, optimizer, source=f"{option} {path}")


def _read_safetensors(path: str, option: str) -> "tuple[Dict[str, np.ndarray], Dict[str, str]]":
    try:
        from safetensors import safe_open
    except ImportError:  # a core dependency; an environment that lost it
        raise MultistyleError("reading a style network needs safetensors: pip install safetensors") from None
    try:
        with safe_open(path, framework="numpy") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except Exception as exc:  # SafetensorError, a header that is not JSON, a truncated file
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{option}: {path} is not a readable safetensors file ({detail[:120]})") from None
    return tensors, metadata


def write_network(path: str, params: Mapping[str, np.ndarray], metadata: Mapping[str, str],
                  optimizer: Optional[Mapping[str, np.ndarray]] = None) -> None:
    """A network's ``.safetensors`` file, written atomically: its parameters, a checkpoint's optimizer state
    under ``optimizer.``, and the metadata with multistyle's version."""
    from safetensors.numpy import save_file

    if os.path.splitext(path)[1].lower() not in SUFFIXES:
        raise MultistyleError(f"--output: a network is saved as .safetensors, got {path!r}")
    tensors = dict(params)
    tensors.update({OPTIMIZER_PREFIX + name: value for name, value in (optimizer or {}).items()})
    with atomic_path(path) as temp:
        save_file(tensors, temp, metadata=dict(metadata, multistyle=__version__))


def split_checkpoint(tensors: Mapping[str, np.ndarray]) -> "tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]":
    """A file's tensors as ``(params, optimizer state)``: the state is what ``optimizer.`` prefixes."""
    optimizer = {name[len(OPTIMIZER_PREFIX):]: value for name, value in tensors.items()
                 if name.startswith(OPTIMIZER_PREFIX)}
    return {name: value for name, value in tensors.items() if not name.startswith(OPTIMIZER_PREFIX)}, optimizer


def safetensors_architecture(path: str) -> str:
    """The ``architecture`` a ``.safetensors`` network's metadata names (``""`` when it names none or the file
    cannot be read: :meth:`StyleNetwork.load` then says why)."""
    try:
        from safetensors import safe_open

        with safe_open(path, framework="numpy") as handle:
            return str((handle.metadata() or {}).get("architecture", ""))
    except Exception:  # unreadable: the full read reports it in one line
        return ""
