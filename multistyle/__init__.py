"""multistyle: neural style transfer (Gatys, Ecker & Bethge) on several frameworks.

The core in this package never imports a deep-learning framework; backends
(``multistyle.backends``) are imported on first use.

>>> import multistyle
>>> result = multistyle.transfer("photo.jpg", "painting.jpg", backend="paddle")  # doctest: +SKIP
>>> result.save("out.png")  # doctest: +SKIP
"""

__version__ = "0.1.0"

from .backend import Backend, Optimizer, backend_names, describe_backends, get_backend
from .errors import BackendUnavailable, MultistyleError, WeightsError
from .settings import PRESETS, Settings
from .transfer import Result, UntrainedWeightsWarning, transfer

__all__ = [
    "Backend", "BackendUnavailable", "MultistyleError", "Optimizer", "PRESETS", "Result", "Settings",
    "UntrainedWeightsWarning", "WeightsError", "backend_names", "describe_backends", "get_backend", "transfer",
]
