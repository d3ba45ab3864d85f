"""The algorithm: features, losses and the optimisation loop, for any backend.

Defaults reproduce the "Neural Style Transfer" chapter of Dive into Deep
Learning: VGG-19, style layers ``conv1_1 conv2_1 conv3_1 conv4_1 conv5_1``,
content layer ``conv4_4`` (outputs before the ReLU), Adam with learning rate
0.3 multiplied by 0.8 every 50 epochs, 500 epochs, a 300x450 image started
from the content image and never clamped while it is optimised.

The chapter writes ``style_weight = 1e3`` but sums ``10 * styles_l + ...``,
a list repeated ten times, so the style term really enters the total loss
with weight 1e4.  multistyle states that effective weight: ``style_weight``
defaults to 1e4 and the reported style loss is the term that enters the total.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from . import images
from .backend import Backend, get_backend, parse_device
from .errors import MultistyleError
from .losses import content_loss, gram, style_loss, tv_loss
from .weightfiles import read_weights
from .vgg import (LAYER_BY_NAME, Weights, canonical_weights, deepest_index,
                  parse_weights_spec, random_weights, resolve_layers)

D2L_STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")

#: Named settings.  ``d2l`` is the chapter as its MXNet and Paddle code
#: computes it; ``d2l-pytorch`` is what its PyTorch code really computes
#: (torchvision's in-place ReLUs overwrite the stored conv outputs, so it uses
#: the ReLU outputs, except for conv5_1, the last layer of its cut network);
#: ``d2l-mxnet`` is its MXNet code's learning rate.
PRESETS: Dict[str, Dict[str, Any]] = {
    "d2l": {"style_layers": D2L_STYLE_LAYERS, "content_layers": ("conv4_4",), "lr": 0.3},
    "d2l-pytorch": {"style_layers": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "conv5_1"),
                    "content_layers": ("relu4_4",), "lr": 0.3},
    "d2l-mxnet": {"style_layers": D2L_STYLE_LAYERS, "content_layers": ("conv4_4",), "lr": 0.9},
}

DEFAULT_SIZE = (300, 450)


class UntrainedWeightsWarning(UserWarning):
    """The VGG-19 in use has random weights: results are not stylised images."""


@dataclass
class Settings:
    """Hyper-parameters of one run; ``None`` means "take it from the preset"."""

    preset: str = "d2l"
    content_layers: Optional[Sequence[str]] = None
    style_layers: Optional[Sequence[str]] = None
    lr: Optional[float] = None
    lr_decay: float = 0.8
    lr_decay_every: int = 50
    epochs: int = 500
    content_weight: float = 1.0
    style_weight: float = 1e4
    tv_weight: float = 10.0
    init: str = "content"
    seed: int = 0
    optimizer: str = "adam"

    def resolved(self) -> "Settings":
        """A copy with the preset applied and every value checked."""
        if self.preset not in PRESETS:
            raise MultistyleError(f"--preset: unknown preset {self.preset!r}; choose from {', '.join(PRESETS)}")
        preset = PRESETS[self.preset]
        out = replace(
            self,
            content_layers=tuple(resolve_layers(
                preset["content_layers"] if self.content_layers is None else self.content_layers, "--content-layers")),
            style_layers=tuple(resolve_layers(
                preset["style_layers"] if self.style_layers is None else self.style_layers, "--style-layers")),
            lr=float(preset["lr"] if self.lr is None else self.lr),
        )
        _positive("--epochs", out.epochs, integer=True)
        _positive("--lr", out.lr)
        _positive("--lr-decay", out.lr_decay)
        if out.lr_decay > 1:
            raise MultistyleError(f"--lr-decay: expected a factor in (0, 1], got {out.lr_decay!r}")
        _positive("--lr-decay-every", out.lr_decay_every, integer=True)
        for option, value in (("--content-weight", out.content_weight), ("--style-weight", out.style_weight),
                              ("--tv-weight", out.tv_weight)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise MultistyleError(f"{option}: expected a number >= 0, got {value!r}")
        if out.init not in ("content", "noise"):
            raise MultistyleError(f"--init: expected content or noise, got {out.init!r}")
        if not isinstance(out.seed, int) or isinstance(out.seed, bool) or out.seed < 0:
            raise MultistyleError(f"--seed: expected an integer >= 0, got {out.seed!r}")
        return out


def _positive(option: str, value: Any, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value) or value <= 0:
        what = "a positive integer" if integer else "a positive number"
        raise MultistyleError(f"{option}: expected {what}, got {value!r}")


@dataclass
class Result:
    """What a run returns: the image, its loss history and how it was made."""

    image: np.ndarray  # (H, W, 3) uint8, clipped
    array: np.ndarray  # (1, 3, H, W) float32, normalised, unclipped
    history: List[Dict[str, float]]
    settings: Settings
    backend: str
    device: str
    framework_version: str
    weights: str
    untrained: bool
    size: Tuple[int, int]
    peak_device_memory: Optional[int] = None  # bytes, where the framework reports it

    def save(self, path: str) -> None:
        """Save the image atomically; the format follows the extension."""
        images.save_image(self.image, path)


class FeatureExtractor:
    """Runs VGG-19 up to the deepest requested layer and keeps named outputs."""

    def __init__(self, backend: Backend, weights: Weights, layer_names: Sequence[str]) -> None:
        self.last = deepest_index(layer_names)
        self.layers = backend.vgg19_layers(weights, self.last)
        self.wanted = {LAYER_BY_NAME[name].index: name for name in layer_names}

    def __call__(self, x: Any) -> Dict[str, Any]:
        outputs = {}
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index in self.wanted:
                outputs[self.wanted[index]] = x
        return outputs


class StyleLoss:
    """The objective of one job on one backend: targets computed once, loss terms per image.

    ``terms(x)`` returns native scalar tensors ``content``, ``style`` and
    ``tv``, each already multiplied by its weight, and their sum ``total``.
    """

    def __init__(self, backend: Backend, weights: Weights, settings: Settings,
                 content_x: np.ndarray, style_x: np.ndarray) -> None:
        self.B = backend
        self.settings = settings
        self.layer_names = list(dict.fromkeys(settings.content_layers + settings.style_layers))  # type: ignore[operator]
        self.extract = FeatureExtractor(backend, weights, self.layer_names)
        content_features = self.extract(backend.asarray(content_x))
        self.content_targets = [content_features[name] for name in settings.content_layers]  # type: ignore[union-attr]
        style_features = self.extract(backend.asarray(style_x))
        self.style_targets = [gram(backend, style_features[name]) for name in settings.style_layers]  # type: ignore[union-attr]

    def terms(self, x: Any) -> Dict[str, Any]:
        B, settings = self.B, self.settings
        features = self.extract(x)
        content = sum_terms([content_loss(B, features[name], target)
                             for name, target in zip(settings.content_layers, self.content_targets)])  # type: ignore[arg-type]
        style = sum_terms([style_loss(B, features[name], target)
                           for name, target in zip(settings.style_layers, self.style_targets)])  # type: ignore[arg-type]
        out = {"content": settings.content_weight * content, "style": settings.style_weight * style,
               "tv": settings.tv_weight * tv_loss(B, x)}
        out["total"] = out["content"] + out["style"] + out["tv"]
        return out


def load_weights(spec: str, backend: Backend, last: int) -> Tuple[Weights, str, bool]:
    """Resolve ``--weights`` to arrays: ``(weights, description, untrained)``."""
    kind, value = parse_weights_spec(spec)
    if kind == "random":
        return random_weights(int(value), last), f"random:{value}", True  # type: ignore[arg-type]
    if kind == "imagenet":
        raw = backend.load_zoo_weights()
        return canonical_weights(raw, f"imagenet ({backend.name} model zoo)", last), f"imagenet ({backend.name})", False
    path = str(value)
    return read_weights(path, last, backend)[0], path, False


ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray]


def _as_image(source: ImageInput, option: str, max_pixels: int) -> Image.Image:
    if isinstance(source, Image.Image):
        return images.to_rgb(source)
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim not in (2, 3):
            raise MultistyleError(f"{option}: expected an (H, W) or (H, W, 3) uint8 array, got {source.dtype} {source.shape}")
        return images.to_rgb(Image.fromarray(source))
    return images.load_image(os.fspath(source), option, max_pixels)


def target_size(content: Image.Image, size: Union[None, int, str, Tuple[int, int]]) -> Tuple[int, int]:
    """``(H, W)`` from ``size``: a pair, a long edge, an ``HxW`` string or ``None`` (300x450)."""
    if size is None:
        return DEFAULT_SIZE
    if isinstance(size, str):
        pair, long_edge = images.parse_size(size)
        return pair if pair is not None else images.fit_long_edge(content.size, int(long_edge))  # type: ignore[arg-type]
    if isinstance(size, int) and not isinstance(size, bool):
        if size <= 0:
            raise MultistyleError(f"--size: sizes must be positive, got {size}")
        return images.fit_long_edge(content.size, size)
    height, width = (int(v) for v in size)
    if height <= 0 or width <= 0:
        raise MultistyleError(f"--size: sizes must be positive, got {height}x{width}")
    return height, width


Callback = Callable[[Dict[str, float], Callable[[], np.ndarray]], None]


def transfer(content: ImageInput, style: ImageInput, *, backend: Union[str, Backend] = "torch",
             device: str = "auto", weights: str = "imagenet",
             size: Union[None, int, str, Tuple[int, int]] = DEFAULT_SIZE,
             max_pixels: int = images.DEFAULT_MAX_PIXELS, callback: Optional[Callback] = None,
             settings: Optional[Settings] = None, deterministic: bool = False, **overrides: Any) -> Result:
    """Stylise ``content`` with ``style`` and return a :class:`Result`.

    ``content`` and ``style`` are paths, PIL images or uint8 arrays.  Any
    field of :class:`Settings` may be passed as a keyword (``epochs=100``,
    ``preset="d2l-mxnet"``).  ``callback(record, image)`` is called after
    every epoch with the epoch's losses and a function returning the current
    image as uint8 pixels.  ``deterministic`` turns on the framework's
    deterministic switches where it has them (GPU convolutions).
    """
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"transfer() got unknown settings {unknown}; known: {sorted(known)}")
    settings = replace(settings or Settings(), **overrides).resolved()
    parse_device(device)  # a malformed device is a user error whether or not the framework is installed
    content_image = _as_image(content, "--content", max_pixels)
    style_image = _as_image(style, "--style", max_pixels)
    shape = target_size(content_image, size)
    content_x = images.preprocess(content_image, shape)
    style_x = images.preprocess(style_image, shape)

    B = get_backend(backend, device) if isinstance(backend, str) else backend
    B.check_optimizer(settings.optimizer)  # before loading weights, which may take long
    B.seed(settings.seed)
    if deterministic:
        B.set_deterministic()
    last = deepest_index(list(settings.content_layers) + list(settings.style_layers))  # type: ignore[arg-type]
    vgg_weights, weights_label, untrained = load_weights(weights, B, last)
    if untrained:
        warnings.warn("VGG-19 has random weights (untrained): the result is not a stylised image; "
                      "use this for tests and smoke runs only", UntrainedWeightsWarning, stacklevel=2)
    objective = StyleLoss(B, vgg_weights, settings, content_x, style_x)
    optimizer = B.optimizer(settings.optimizer, initial_image(settings, content_x), settings.lr,
                            settings.lr_decay, settings.lr_decay_every)

    parts: Dict[str, Any] = {}

    def closure(x: Any) -> Any:
        parts.update(objective.terms(x))
        return parts["total"]

    history: List[Dict[str, float]] = []
    for epoch in range(settings.epochs):
        started = time.perf_counter()
        lr = optimizer.lr
        total = B.item(optimizer.step(closure))
        optimizer.epoch_end()
        record = {"epoch": epoch + 1, "lr": lr, "content": B.item(parts["content"]),
                  "style": B.item(parts["style"]), "tv": B.item(parts["tv"]),
                  "total": total, "seconds": time.perf_counter() - started}
        if not math.isfinite(total):
            raise MultistyleError(f"the loss became {total} at epoch {epoch + 1}; lower --lr (now {settings.lr}) "
                                  f"or the loss weights, or check the weights file")
        history.append(record)
        if callback is not None:
            callback(record, lambda: images.postprocess(B.to_numpy(optimizer.image)))

    final = B.to_numpy(optimizer.image)
    return Result(image=images.postprocess(final), array=final, history=history, settings=settings,
                  backend=B.name, device=B.device, framework_version=B.framework_version(),
                  weights=weights_label, untrained=untrained, size=shape, peak_device_memory=B.peak_device_memory())


def initial_image(settings: Settings, content_x: np.ndarray) -> np.ndarray:
    """The starting image: the content image, or seeded NumPy noise (the same on every backend)."""
    if settings.init == "content":
        return content_x
    return np.random.default_rng(settings.seed).standard_normal(content_x.shape, dtype=np.float32)


def sum_terms(terms: Sequence[Any]) -> Any:
    """Sum a non-empty list of loss tensors."""
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def write_log(history: Sequence[Dict[str, float]], path: str, meta: Optional[Dict[str, Any]] = None) -> None:
    """Write per-epoch losses and timings as CSV or JSON (by extension), atomically."""
    extension = os.path.splitext(path)[1].lower()
    if extension == ".json":
        text = json.dumps({"meta": meta or {}, "epochs": list(history)}, indent=2)
    else:
        buffer = io.StringIO()
        columns = ["epoch", "lr", "content", "style", "tv", "total", "seconds"]
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in history:
            writer.writerow({key: row[key] for key in columns})
        text = buffer.getvalue()
    with images.atomic_write(path) as handle:
        handle.write(text.encode("utf-8"))


def settings_dict(settings: Settings) -> Dict[str, Any]:
    """Settings as JSON-friendly values."""
    out = asdict(settings)
    for key in ("content_layers", "style_layers"):
        out[key] = list(out[key]) if out[key] is not None else None
    return out
