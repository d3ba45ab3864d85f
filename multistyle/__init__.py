"""multistyle: neural style transfer (Gatys, Ecker & Bethge) on several frameworks.

The core in this package never imports a deep-learning framework; backends
(``multistyle.backends``) are imported on first use.

>>> import multistyle
>>> result = multistyle.transfer("photo.jpg", "painting.jpg", backend="paddle")  # doctest: +SKIP
>>> result.save("out.png")  # doctest: +SKIP
>>> network = multistyle.train("painting.jpg", "photos/", output="painting.safetensors")  # doctest: +SKIP
>>> multistyle.stylize(network, "photo.jpg", backend="jax").save("fast.png")  # doctest: +SKIP
>>> adain = multistyle.train_arbitrary("photos/", "paintings/", output="adain.safetensors")  # doctest: +SKIP
>>> multistyle.stylize(adain, "photo.jpg", style="any.jpg", alpha=0.8).save("any.png")  # doctest: +SKIP
"""

__version__ = "0.1.0"

from .backend import Backend, Optimizer, backend_names, describe_backends, get_backend
from .errors import BackendUnavailable, MultistyleError, WeightsError
from .settings import PRESETS, Settings
from .nets import ArbitraryNetwork, StyleNetwork
from .nets.adain_training import train_arbitrary
from .nets.stylize import Stylized, load_model, stylize
from .training import TrainOptions, train
from .transfer import Result, UntrainedWeightsWarning, transfer

__all__ = [
    "ArbitraryNetwork", "Backend", "BackendUnavailable", "MultistyleError", "Optimizer", "PRESETS", "Result", "Settings", "StyleNetwork",
    "Stylized", "TrainOptions", "UntrainedWeightsWarning", "WeightsError", "backend_names", "describe_backends",
    "get_backend", "load_model", "stylize", "train", "train_arbitrary", "transfer",
]
