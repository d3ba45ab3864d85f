"""Reading pickled state dicts (Paddle's ``.pdparams``) without running code from the file.

A pickle is a small program: its ``GLOBAL``/``STACK_GLOBAL`` opcodes name any
importable callable and ``REDUCE`` calls it, so ``pickle.load`` on an
untrusted file can do anything the user can.  ``paddle.save`` writes a state
dict as a pickled ``dict`` of NumPy arrays; rebuilding one needs exactly three
globals (``numpy.core.multiarray._reconstruct``, ``numpy.ndarray`` and
``numpy.dtype``, under NumPy 2 also spelled ``numpy._core...``), plus
``numpy.core.multiarray.scalar`` for NumPy scalars, ``OrderedDict`` for
ordered state dicts and ``_codecs.encode`` for protocol-2 bytes.  :class:`StateDictUnpickler` admits those and nothing
else; any other global, and any persistent id, is refused before it is
imported, with a one-line :class:`~multistyle.errors.WeightsError`.
"""

from __future__ import annotations

import pickle
from typing import Any, Dict, FrozenSet, Tuple

import numpy as np

from .errors import WeightsError, first_line

#: The (module, name) pairs a pickled dict of NumPy arrays refers to.
ALLOWED_GLOBALS: FrozenSet[Tuple[str, str]] = frozenset(
    (module, name)
    for prefix in ("numpy.core", "numpy._core")
    for module, name in ((f"{prefix}.multiarray", "_reconstruct"), (f"{prefix}.multiarray", "scalar"))
) | frozenset({("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
              # Protocol 2 (older Paddle releases) writes array bytes as _codecs.encode(str, "latin1"):
              # a pure data transform whose codecs come only from the standard `encodings` package.
              ("_codecs", "encode")})


class UnsafePickle(WeightsError):
    """The pickle names something a state dict of arrays never needs."""


class StateDictUnpickler(pickle.Unpickler):
    """An unpickler that builds only plain containers and NumPy arrays."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickle(f"{module}.{name}")
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickle(f"persistent id {str(pid)[:40]!r}")


def load_state_dict(path: str, what: str = "Paddle checkpoint") -> Dict[str, np.ndarray]:
    """The arrays of a pickled state dict at ``path``, keyed by name; other values are dropped.

    Raises :class:`WeightsError` (one line) when the file is not a pickle of a
    dict, and :class:`UnsafePickle` when it names anything beyond
    :data:`ALLOWED_GLOBALS`; nothing the file names is imported or called.
    """
    try:
        with open(path, "rb") as handle:
            # latin1, as paddle.load reads: old Python 2 pickles hold array bytes as str.
            state = StateDictUnpickler(handle, encoding="latin1").load()
    except UnsafePickle as exc:
        raise UnsafePickle(f"weights {path}: refused to load: the file asks to run {exc}, which a {what} "
                           f"never contains (it may be malicious); use a trusted file or a portable .npz") from None
    except OSError as exc:
        raise WeightsError(f"weights {path}: cannot read it ({exc.strerror or exc})") from None
    except Exception as exc:  # truncated or not a pickle: UnpicklingError, EOFError, ValueError, ...
        raise WeightsError(f"weights {path}: not a readable {what} ({type(exc).__name__}: {first_line(exc)})") from None
    if not isinstance(state, dict):
        raise WeightsError(f"weights {path}: expected a state dict, found a {type(state).__name__}")
    return {str(key): value for key, value in state.items() if isinstance(value, np.ndarray)}
