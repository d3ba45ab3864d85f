"""Predicted peak memory of a job, from its size, layers, optimizer and backend, without running it.

A run holds, besides the framework itself: the VGG-19 weights up to the
deepest layer in use, the activations one forward and backward pass keeps
(every layer's output up to that layer, the targets, the gradients in flight),
the optimizer's state in image-sized vectors (Adam 2, RMSprop 1, L-BFGS 2 per
history pair, up to 100 pairs) and the images.  Each part is counted exactly
from the VGG-19 description; how many copies each framework keeps of the first
two, and what the framework costs at rest, are measured per backend
(``benchmarks/memory_report.py`` fits them and checks the prediction at three sizes).

Nothing here imports a framework: ``multistyle run --plan`` answers in a
fraction of a second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .backend import BUILTIN_BACKENDS, MemoryModel, spec_of
from .errors import MultistyleError
from .losses import MRF_PATCH, NEWTON_SCHULZ_STEPS, patch_grid
from .vgg import LAYERS, LAYER_BY_NAME

FLOAT = 4  # bytes per float32
LBFGS_HISTORY = 100


Model = MemoryModel

#: A backend without a measured model (a third-party one) gets the largest of each part of the built-in ones'
#: (each backend's spec holds its own, fitted by ``benchmarks/memory_report.py`` on this project's 2-core x86-64 Linux
#: machine: torch 2.x, MXNet 1.9.1, Paddle 3.x; peak resident set size of a fresh ``multistyle run``).
FALLBACK = Model(*(max(getattr(spec.memory, f) for spec in BUILTIN_BACKENDS.values() if spec.memory)
                   for f in Model._fields))


def host_model(backend: str) -> Model:
    """The host memory model of ``backend``: its spec's, or :data:`FALLBACK`."""
    try:
        return spec_of(backend).memory or FALLBACK
    except MultistyleError:  # not a known backend
        return FALLBACK
#: On a GPU the device holds the weights once and the activations of a pass with their gradients; the host
#: keeps the process and a NumPy copy of the weights.  Not calibrated on a GPU yet (none was lent).
DEVICE = Model(base=0.0, weights=1.0, activations=2.0)

OPTIMIZER_STATE = {"adam": 2, "rmsprop": 1}  # image-sized vectors, beside the image and its gradient


def _spatial(shape: Tuple[int, int], last: int) -> List[Tuple[int, int, int]]:
    """(channels, height, width) of each layer's output up to ``last``."""
    height, width = shape
    out = []
    for layer in LAYERS[:last + 1]:
        if layer.kind == "pool":
            height, width = height // 2, width // 2
        out.append((layer.out_channels, height, width))
    return out


def activation_bytes(shape: Tuple[int, int], last: int) -> int:
    """Bytes of every layer's output, up to layer ``last``, for an image of ``shape``."""
    return FLOAT * sum(c * h * w for c, h, w in _spatial(shape, last))


def weight_bytes(last: int) -> int:
    """Bytes of the convolution weights and biases up to layer ``last``."""
    return FLOAT * sum(layer.out_channels * (layer.in_channels * 9 + 1)
                       for layer in LAYERS[:last + 1] if layer.kind == "conv")


def style_loss_bytes(shape: Tuple[int, int], style_layers: Sequence[str], style_loss: str = "gram",
                     regions: int = 0, styles: int = 1, style_scale: Optional[float] = None) -> int:
    """Bytes a style loss keeps beyond Gram's (which the fitted models include), for the backward pass.

    ``w2``: per style layer, the Newton–Schulz iteration's three ``m × m`` matrices a step (``m`` the smaller of
    the channels and the positions) and two feature-sized matrices (the centred features and their product
    with the target's root), twice: the backward pass holds a gradient of each beside it.  Measured against
    Gram's peak in fresh runs (``benchmarks/style_losses.py --memory``, 150x225 and 300x450), this count came
    within 0.74 to 1.47 times the eager backends' extra; JAX's compiled program keeps less (the count is 2 to 3.2
    times its extra).  ``regions`` (``--content-masks``): one weighted copy of each style layer's features per
    region, and the loss's own matrices per region.  ``mean-std`` keeps vectors only.

    ``mrf``: per style layer, :data:`MRF_MATRICES` matrices of the picture's patches by the style's (the
    correlations, their scores, the nearest as a one-hot, their products and gradients), and
    :data:`MRF_PATCH_COPIES` copies of the style's patches as filters and of the picture's unfolded by the
    convolution.  ``styles`` blended pool their patches; ``style_scale`` sizes the style (its aspect taken as the
    content's).  Both constants are fitted to torch's peak at 300x450 and 600x900 against Gram's on the same
    layers (``benchmarks/style_losses.py --memory``)."""
    if style_loss == "mrf":
        return _mrf_bytes(shape, style_layers, max(regions, 1) * (1 if regions else styles), style_scale)
    if style_loss != "w2" and not regions:
        return 0
    spatial = _spatial(shape, max(LAYER_BY_NAME[name].index for name in style_layers))
    total = 0
    for name in style_layers:
        c, h, w = spatial[LAYER_BY_NAME[name].index]
        m = min(c, h * w)
        per_region = 2 * (3 * NEWTON_SCHULZ_STEPS * m * m + 2 * c * h * w) if style_loss == "w2" else 0
        total += max(regions, 1) * per_region + regions * c * h * w
    return FLOAT * total


#: What the ``mrf`` loss keeps per style layer, in patch-by-patch matrices and in patch-sized copies
#: (:func:`style_loss_bytes`).
MRF_MATRICES = 6.5
MRF_PATCH_COPIES = 1.4


def _mrf_bytes(shape: Tuple[int, int], style_layers: Sequence[str], styles: int,
               style_scale: Optional[float]) -> int:
    style_shape = shape if style_scale is None else (max(1, round(shape[0] * style_scale)),
                                                     max(1, round(shape[1] * style_scale)))
    last = max(LAYER_BY_NAME[name].index for name in style_layers)
    spatial, style_spatial = _spatial(shape, last), _spatial(style_shape, last)
    total = 0.0
    for name in style_layers:
        c, h, w = spatial[LAYER_BY_NAME[name].index]
        _, hs, ws = style_spatial[LAYER_BY_NAME[name].index]
        mine = _count(patch_grid(h, w))
        theirs = styles * _count(patch_grid(hs, ws))
        total += MRF_MATRICES * mine * theirs + MRF_PATCH_COPIES * c * MRF_PATCH * MRF_PATCH * (mine + theirs)
    return int(FLOAT * total)


def _count(grid: Tuple[int, int]) -> int:
    return grid[0] * grid[1]


def optimizer_vectors(optimizer: str, epochs: int) -> int:
    """Image-sized vectors an optimizer keeps, with the image and its gradient."""
    if optimizer == "lbfgs":
        return 2 + 2 * min(epochs, LBFGS_HISTORY) + 3  # + direction, previous gradient, line-search point
    return 2 + OPTIMIZER_STATE.get(optimizer, 2)


@dataclass
class Prediction:
    """Predicted peak bytes: ``host`` (resident set), ``device`` (GPU memory, or ``None`` on the CPU)."""

    host: int
    device: Optional[int]
    parts: Dict[str, int]

    @property
    def peak(self) -> int:
        return self.host if self.device is None else max(self.host, self.device)

    def describe(self) -> str:
        parts = ", ".join(f"{name} {format_bytes(value)}" for name, value in self.parts.items())
        text = f"host {format_bytes(self.host)}"
        if self.device is not None:
            text += f", GPU {format_bytes(self.device)} (not yet checked against a GPU)"
        return f"{text} ({parts})"


def predict(backend: str, device: str, shape: Tuple[int, int], layers: Sequence[str], optimizer: str,
            epochs: int, style_loss: int = 0) -> Prediction:
    """Peak memory of a run whose final (largest) scale is ``shape`` and runs ``epochs`` epochs there;
    ``style_loss``: the bytes its style loss keeps beyond Gram's (:func:`style_loss_bytes`)."""
    last = max(LAYER_BY_NAME[name].index for name in layers)
    model = host_model(backend)
    weights = weight_bytes(last)
    activations = activation_bytes(shape, last)
    image = FLOAT * 3 * shape[0] * shape[1]
    state = optimizer_vectors(optimizer, epochs) * image + 4 * image  # + content, style, start, result arrays
    if device == "cpu":
        parts = {"framework": int(model.base), "weights": int(model.weights * weights),
                 "activations": int(model.activations * activations), "optimizer and images": state}
        if style_loss:
            parts["style loss"] = style_loss
        return Prediction(host=sum(parts.values()), device=None, parts=parts)
    parts = {"framework": int(model.base), "weights": int(DEVICE.weights * weights),
             "activations": int(DEVICE.activations * activations), "optimizer and images": state}
    if style_loss:
        parts["style loss"] = style_loss
    host = int(model.base + model.weights * weights + 4 * image)
    return Prediction(host=host, device=parts["weights"] + parts["activations"] + state + style_loss, parts=parts)


def predict_training(backend: str, device: str, size: int, batch: int, width: int, layers: Sequence[str]) -> Prediction:
    """Peak memory of ``multistyle train`` at crops of ``size`` x ``size``, ``batch`` crops per step.

    The loss network's activations of the network's output batch (kept for the backward pass) and of the
    photos' batch (the content targets), and the style network's activations of the batch, counted from its
    table (:func:`multistyle.nets.transformer.activation_elements`), times the backend's training activation
    factor; plus what does not grow with the crops (the process, the loss network, the style network and
    Adam's state), both fitted to fresh ``multistyle train`` processes (``benchmarks/train_memory.py``).
    """
    from .nets import transformer

    last = max(LAYER_BY_NAME[name].index for name in layers)
    model = host_model(backend)
    activations = 2 * batch * activation_bytes((size, size), last) + \
        FLOAT * batch * transformer.activation_elements(width, size, size)
    fixed = int(model.train_base or model.base + model.weights * weight_bytes(last))
    params = 4 * FLOAT * transformer.parameter_count(width)
    if device == "cpu":
        parts = {"framework, loss network and Adam": fixed,
                 "activations": int(model.train_activations * activations)}
        return Prediction(host=sum(parts.values()), device=None, parts=parts)
    parts = {"framework": int(model.base), "loss network": int(DEVICE.weights * weight_bytes(last)),
             "activations": int(DEVICE.activations * activations), "network and Adam": params}
    host = int(model.base + model.weights * weight_bytes(last) + params)
    return Prediction(host=host, device=sum(parts.values()) - int(model.base), parts=parts)


def predict_arbitrary_training(backend: str, device: str, size: int, batch: int) -> Prediction:
    """Peak memory of ``multistyle train --arbitrary`` at crops of ``size`` x ``size``, ``batch`` of each.

    Counted as :func:`predict_training` counts: the encoder's activations to ``relu4_1`` for three batches (the
    contents, the styles, and the decoder's pictures, whose pass the backward keeps), the decoder's activations
    from its table (:func:`multistyle.nets.adain.decoder_activation_elements`), times the backend's training
    activation factor (fitted to the per-style network's training, not refitted for AdaIN's); plus the process,
    the encoder, and the decoder's parameters, gradients and Adam's two moments.
    """
    from .nets import adain

    last = adain.LAST_INDEX
    model = host_model(backend)
    activations = 3 * batch * activation_bytes((size, size), last) + \
        FLOAT * batch * adain.decoder_activation_elements(size, size)
    decoder = 4 * FLOAT * adain.decoder_parameter_count()
    if device == "cpu":
        parts = {"framework and encoder": int(model.base + model.weights * weight_bytes(last)),
                 "decoder and Adam": decoder, "activations": int(model.train_activations * activations)}
        return Prediction(host=sum(parts.values()), device=None, parts=parts)
    parts = {"framework": int(model.base), "encoder": int(DEVICE.weights * weight_bytes(last)),
             "activations": int(DEVICE.activations * activations), "decoder and Adam": decoder}
    host = int(model.base + model.weights * weight_bytes(last) + decoder)
    return Prediction(host=host, device=sum(parts.values()) - int(model.base), parts=parts)


_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
          "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40}


def parse_bytes(text: str, option: str = "--max-memory") -> int:
    """``"4G"``, ``"1.5GiB"``, ``"800M"``, ``"123456"`` -> bytes."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS or float(match.group(1)) <= 0:
        raise MultistyleError(f"{option}: expected a size such as 4G, 1.5GiB or 800M, got {text!r}")
    return int(float(match.group(1)) * _UNITS[unit])


def format_bytes(count: float) -> str:
    for unit, size in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if count >= size:
            return f"{count / size:.2f} {unit}"
    return f"{int(count)} B"


def largest_fitting(limit: int, predict_at: Callable[[Tuple[int, int]], Prediction],
                    shape: Tuple[int, int]) -> Optional[Tuple[int, int]]:
    """The largest size with ``shape``'s aspect ratio whose prediction fits in ``limit``, or ``None``."""
    def size(scale: float) -> Tuple[int, int]:
        return max(1, int(shape[0] * scale)), max(1, int(shape[1] * scale))

    low, high = 16 / min(shape), 1.0
    if predict_at(size(low)).peak > limit:
        return None
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if predict_at(size(middle)).peak <= limit else (low, middle)
    return size(low)


def check_limit(limit: Optional[int], prediction: Prediction, backend: str,
                predict_at: Callable[[Tuple[int, int]], Prediction], shape: Tuple[int, int]) -> None:
    """Refuse a job predicted to need more than ``limit`` bytes, naming the largest size that fits."""
    if limit is None or prediction.peak <= limit:
        return
    where = "host" if prediction.device is None or prediction.host >= prediction.device else "GPU"
    fits = largest_fitting(limit, predict_at, shape)
    hint = (f"use --size {fits[0]}x{fits[1]} or smaller, or raise --max-memory" if fits else
            f"no size fits: {backend} alone needs about {format_bytes(host_model(backend).base)}; "
            f"raise --max-memory")
    raise MultistyleError(f"--max-memory: the job needs about {format_bytes(prediction.peak)} of {where} memory "
                          f"at {shape[0]}x{shape[1]}, more than {format_bytes(limit)}; {hint}")
