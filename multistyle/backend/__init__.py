"""The backend protocol and the registry of backends.

The core computes with native tensors of one framework through the small
protocol :class:`Backend` (``protocol.py``); every per-backend fact known
before the framework is imported is on its :class:`BackendSpec`
(``spec.py``, which also lists them: built-in, then entry points); backends are imported lazily by name (``loader.py``), the
built-in ones from :data:`BUILTIN_BACKENDS`, third-party ones through the
entry point group ``multistyle.backends``; device strings are checked once
(``devices.py``); frameworks whose arrays never change hold images in a
:class:`Holder` (``holder.py``).  Importing this package imports no framework.
"""

from ..errors import BackendBug, BackendUnavailable
from ..optim import Optimizer, ScheduledOptimizer
from .devices import mkl_avx2_on_amd, parse_device, resolve_device, use_all_cores
from .holder import HeldImages, Holder, unwrap
from .loader import backend_for_weights, backend_names, describe_backends, get_backend, load_backend_class
from .protocol import Backend, Layer, Tensor, zoo_error
from .spec import BUILTIN_BACKENDS, ENTRY_POINT_GROUP, BackendSpec, MemoryModel, registry, spec_of

__all__ = ["BUILTIN_BACKENDS", "Backend", "BackendBug", "BackendSpec", "BackendUnavailable", "ENTRY_POINT_GROUP",
           "HeldImages", "Holder", "Layer", "MemoryModel", "Optimizer", "ScheduledOptimizer", "Tensor", "backend_for_weights",
           "backend_names", "describe_backends", "get_backend", "load_backend_class", "mkl_avx2_on_amd",
           "parse_device", "registry", "resolve_device", "spec_of", "unwrap", "use_all_cores", "zoo_error"]
