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

Two more recipes are presets: ``pytorch-tutorial`` (the PyTorch tutorial
"Neural Transfer Using PyTorch": L-BFGS in pixel space) and ``viblo`` (the
same objective with RMSprop).  In pixel space the image lives in [0, 1] and
the ImageNet normalisation is the first operation of the objective; in the
d2l presets the image is optimised already normalised.  A preset fixes every
default (layers, loss weights, optimizer, rate and its decay, epochs, where
the image is clamped); any of them can still be set explicitly.

One epoch is one optimizer iteration, whatever the optimizer; its record
counts the loss evaluations it took (L-BFGS with line search may take several)
and reports the losses at the point the iteration started from.
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
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from . import animation, color, images, memory
from .backend import Backend, get_backend, parse_device
from .errors import MultistyleError
from .losses import content_loss, gram, style_loss, tv_loss
from .optim import DEFAULT_LR, OPTIMIZERS
from .progress import ProgressBar
from .weightfiles import read_weights
from .vgg import (CONV_INDICES, LAYER_BY_NAME, Weights, canonical_weights, deepest_index,
                  parse_weights_spec, random_weights, resolve_layers)

D2L_STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
#: The tutorial counts convolutions: its conv_1 ... conv_5 are these, and its content layer conv_4 is conv2_2.
TUTORIAL_STYLE_LAYERS = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1")

_D2L = {"style_layers": D2L_STYLE_LAYERS, "content_layers": ("conv4_4",), "adam_lr": 0.3, "optimizer": "adam",
        "domain": "normalized", "clamp": "none", "content_weight": 1.0, "style_weight": 1e4, "tv_weight": 10.0,
        "epochs": 500, "lr_decay": 0.8, "lr_decay_every": 50, "scales": 1}
_TUTORIAL = {"style_layers": TUTORIAL_STYLE_LAYERS, "content_layers": ("conv2_2",),
             # Adam is not part of these recipes; this rate is the chapter's 0.3 in normalised units
             # expressed in pixel units (x the ImageNet standard deviation, about 0.226).
             "adam_lr": 0.07, "domain": "pixel", "clamp": "closure", "content_weight": 1.0, "style_weight": 1e6,
             "tv_weight": 0.0, "epochs": 300, "lr_decay": 1.0, "lr_decay_every": 50, "scales": 1}

#: Named settings.  ``d2l`` is the chapter as its MXNet and Paddle code
#: computes it; ``d2l-pytorch`` is what its PyTorch code really computes
#: (torchvision's in-place ReLUs overwrite the stored conv outputs, so it uses
#: the ReLU outputs, except for conv5_1, the last layer of its cut network);
#: ``d2l-mxnet`` is its MXNet code's learning rate.  ``pytorch-tutorial`` is
#: the PyTorch tutorial (L-BFGS, clamped inside each evaluation), ``viblo``
#: the Viblo article built on it (RMSprop with torch's defaults).
PRESETS: Dict[str, Dict[str, Any]] = {
    "d2l": _D2L,
    "d2l-pytorch": dict(_D2L, style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "conv5_1"),
                        content_layers=("relu4_4",)),
    "d2l-mxnet": dict(_D2L, adam_lr=0.9),
    "pytorch-tutorial": dict(_TUTORIAL, optimizer="lbfgs"),
    "viblo": dict(_TUTORIAL, optimizer="rmsprop"),
    # The d2l objective, optimised coarse to fine on a shorter schedule (README: Time to a finished image).
    "fast": dict(_D2L, scales=2, epochs=400, lr_decay_every=30),
}

#: Starting images (or an image file's path).
INITS = ("content", "noise", "style")
POOLINGS = ("max", "avg")

#: Where the image is clamped to its valid range: inside every loss evaluation
#: (the tutorial's closure), after every optimizer step, only at the end, never.
CLAMPS = ("closure", "step", "end", "none")

DEFAULT_SIZE = (300, 450)


class UntrainedWeightsWarning(UserWarning):
    """The VGG-19 in use has random weights: results are not stylised images."""


@dataclass
class Settings:
    """Hyper-parameters of one run; ``None`` means "take it from the preset"."""

    preset: str = "d2l"
    content_layers: Optional[Sequence[str]] = None
    style_layers: Optional[Sequence[str]] = None
    optimizer: Optional[str] = None
    lr: Optional[float] = None
    lr_decay: Optional[float] = None
    lr_decay_every: Optional[int] = None
    epochs: Optional[int] = None
    content_weight: Optional[float] = None
    style_weight: Optional[float] = None
    tv_weight: Optional[float] = None
    clamp: Optional[str] = None
    line_search: bool = False
    until_loss: Optional[float] = None
    tol: Optional[float] = None
    scales: Optional[int] = None
    init: str = "content"
    seed: int = 0
    style_blend: Optional[Sequence[float]] = None
    style_scale: Optional[float] = None
    preserve_color: str = "none"
    pooling: str = "max"
    content_layer_weights: Optional[Sequence[float]] = None
    style_layer_weights: Optional[Sequence[float]] = None

    def resolved(self) -> "Settings":
        """A copy with the preset applied and every value checked."""
        if self.preset not in PRESETS:
            raise MultistyleError(f"--preset: unknown preset {self.preset!r}; choose from {', '.join(PRESETS)}")
        preset = PRESETS[self.preset]
        taken = {name: preset[name] for name in ("optimizer", "lr_decay", "lr_decay_every", "epochs", "content_weight",
                                                 "style_weight", "tv_weight", "clamp", "scales") if getattr(self, name) is None}
        optimizer = taken.get("optimizer", self.optimizer)
        if optimizer not in OPTIMIZERS:
            raise MultistyleError(f"--optimizer: expected one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
        if self.lr is None:
            taken["lr"] = float(preset["adam_lr"] if optimizer == "adam" else DEFAULT_LR[optimizer])
        content_layers, content_weights = _layer_weights(
            preset["content_layers"] if self.content_layers is None else self.content_layers,
            self.content_layer_weights, "--content-layers")
        style_layers, style_weights = _layer_weights(
            preset["style_layers"] if self.style_layers is None else self.style_layers,
            self.style_layer_weights, "--style-layers")
        out = replace(self, content_layers=content_layers, style_layers=style_layers,
                      content_layer_weights=content_weights, style_layer_weights=style_weights,
                      style_blend=_blend(self.style_blend), **taken)
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
        if out.init not in INITS and not os.path.isfile(os.fspath(out.init)):
            raise MultistyleError(f"--init: expected {', '.join(INITS)} or an image file, got {out.init!r} "
                                  f"(no such file)")
        if out.style_scale is not None:
            _positive("--style-scale", out.style_scale)
        if out.preserve_color not in color.MODES:
            raise MultistyleError(f"--preserve-color: expected one of {', '.join(color.MODES)}, "
                                  f"got {out.preserve_color!r}")
        if out.pooling not in POOLINGS:
            raise MultistyleError(f"--pooling: expected one of {', '.join(POOLINGS)}, got {out.pooling!r}")
        if out.clamp not in CLAMPS:
            raise MultistyleError(f"--clamp: expected one of {', '.join(CLAMPS)}, got {out.clamp!r}")
        _positive("--scales", out.scales, integer=True)
        if out.scales > out.epochs:  # type: ignore[operator]
            raise MultistyleError(f"--scales: {out.scales} scales need at least as many epochs, got {out.epochs}")
        if out.until_loss is not None:
            _positive("--until-loss", out.until_loss)
        if out.tol is not None and not (isinstance(out.tol, (int, float)) and 0 < out.tol < 1):
            raise MultistyleError(f"--tol: expected a relative improvement between 0 and 1 (e.g. 0.001), "
                                  f"got {out.tol!r}")
        if out.line_search and out.optimizer != "lbfgs":
            raise MultistyleError(f"--line-search: only L-BFGS has a line search, not {out.optimizer}; "
                                  f"use --optimizer lbfgs or drop --line-search")
        if not isinstance(out.seed, int) or isinstance(out.seed, bool) or out.seed < 0:
            raise MultistyleError(f"--seed: expected an integer >= 0, got {out.seed!r}")
        return out


def _layer_weights(entries: Sequence[str], weights: Optional[Sequence[float]],
                   option: str) -> Tuple[Tuple[str, ...], Tuple[float, ...]]:
    """Names and weights from ``NAME`` or ``NAME:WEIGHT`` entries (weight 1 when left out)."""
    names, parsed, given = [], [], False
    for entry in entries:
        name, separator, text = str(entry).partition(":")
        names.append(name.strip())
        given = given or bool(separator)
        try:
            value = float(text) if separator else 1.0
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= 0):
            raise MultistyleError(f"{option}: the weight of {name.strip() or '?'} must be a number >= 0, got "
                                  f"{text.strip()!r}; write NAME:WEIGHT, e.g. conv1_1:0.5")
        parsed.append(value)
    names = resolve_layers(names, option)
    if weights is not None:
        if given or len(weights) != len(names):
            raise MultistyleError(f"{option}: give layer weights either as NAME:WEIGHT or as a list of "
                                  f"{len(names)} numbers, not both")
        parsed = [float(w) for w in weights]
        if not all(math.isfinite(w) and w >= 0 for w in parsed):
            raise MultistyleError(f"{option}: layer weights must be numbers >= 0, got {list(weights)}")
    if not any(parsed):
        raise MultistyleError(f"{option}: every layer has weight 0; give one a positive weight "
                              f"(or set the loss's own weight to 0)")
    return tuple(names), tuple(parsed)


def _blend(weights: Optional[Sequence[float]]) -> Optional[Tuple[float, ...]]:
    """Style blend weights normalised to sum 1 (``None``: equal weights)."""
    if weights is None:
        return None
    values = [float(w) for w in weights]
    if not values or not all(math.isfinite(w) and w >= 0 for w in values) or not any(values):
        raise MultistyleError(f"--style-blend: expected numbers >= 0, not all 0, one per style, got "
                              f"{','.join(str(w) for w in weights)!r}")
    total = sum(values)
    return tuple(w / total for w in values)


def _positive(option: str, value: Any, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value) or value <= 0:
        what = "a positive integer" if integer else "a positive number"
        raise MultistyleError(f"{option}: expected {what}, got {value!r}")


@dataclass
class Result:
    """What a run returns: the image, its loss history and how it was made."""

    image: np.ndarray  # (H, W, 3) uint8, clipped
    array: np.ndarray  # (1, 3, H, W) float32, in the preset's domain (normalised, or pixels in [0, 1])
    history: List[Dict[str, float]]
    settings: Settings
    backend: str
    device: str
    framework_version: str
    weights: str
    untrained: bool
    size: Tuple[int, int]
    peak_device_memory: Optional[int] = None  # bytes, where the framework reports it
    stopped: str = ""  # why the run ended before --epochs (--until-loss, --tol), or ""

    def save(self, path: str) -> None:
        """Save the image atomically; the format follows the extension."""
        images.save_image(self.image, path)

    def _repr_png_(self) -> bytes:
        """The image, for Jupyter: a result shows itself as a picture in a notebook."""
        buffer = io.BytesIO()
        Image.fromarray(self.image).save(buffer, format="PNG")
        return buffer.getvalue()


class FeatureExtractor:
    """Runs VGG-19 up to the deepest requested layer and keeps named outputs."""

    def __init__(self, backend: Backend, weights: Weights, layer_names: Sequence[str], pooling: str = "max") -> None:
        self.last = deepest_index(layer_names)
        self.layers = backend.vgg19_layers(weights, self.last, pooling=pooling)
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
    ``tv``, each already multiplied by its weight, and their sum ``total``
    (``tv`` is ``None`` when its weight is 0: the term is then not computed).
    ``x`` and the images given here are in the preset's domain: normalised, or
    pixels in [0, 1] that the objective normalises first.  ``style_x`` is one
    image or a list: each style layer's target is the blend of their Gram
    matrices (``settings.style_blend``, equal by default).  A layer whose
    weight is 0 is left out, as if it had not been named.
    """

    def __init__(self, backend: Backend, weights: Weights, settings: Settings,
                 content_x: np.ndarray, style_x: Union[np.ndarray, Sequence[np.ndarray]]) -> None:
        self.B = backend
        self.settings = settings
        self.pixel = PRESETS[settings.preset]["domain"] == "pixel"
        if self.pixel:
            self.mean = backend.asarray(images.RGB_MEAN.reshape(1, 3, 1, 1))
            self.std = backend.asarray(images.RGB_STD.reshape(1, 3, 1, 1))
        self.content = _weighted(settings.content_layers, settings.content_layer_weights)
        self.style = _weighted(settings.style_layers, settings.style_layer_weights)
        self.layer_names = list(dict.fromkeys([name for name, _ in self.content + self.style]))
        self.extract = FeatureExtractor(backend, weights, self.layer_names, settings.pooling)
        content_features = self.features(backend.asarray(content_x))
        self.content_targets = [content_features[name] for name, _ in self.content]
        styles = [style_x] if isinstance(style_x, np.ndarray) else list(style_x)
        blend = settings.style_blend or [1.0 / len(styles)] * len(styles)
        if len(blend) != len(styles):
            raise MultistyleError(blend_mismatch(len(blend), len(styles)))
        grams: List[Any] = [None] * len(self.style)
        for image, share in zip(styles, blend):
            if share == 0:
                continue
            features = self.features(backend.asarray(image))
            for k, (name, _) in enumerate(self.style):
                term = gram(backend, features[name]) if share == 1 else share * gram(backend, features[name])
                grams[k] = term if grams[k] is None else grams[k] + term
        self.style_targets = grams

    def features(self, x: Any) -> Dict[str, Any]:
        """VGG-19 features of an image in the preset's domain."""
        return self.extract((x - self.mean) / self.std if self.pixel else x)

    def terms(self, x: Any) -> Dict[str, Any]:
        B, settings = self.B, self.settings
        features = self.features(x)
        content = sum_terms([_scaled(weight, content_loss(B, features[name], target))
                             for (name, weight), target in zip(self.content, self.content_targets)])
        style = sum_terms([_scaled(weight, style_loss(B, features[name], target))
                           for (name, weight), target in zip(self.style, self.style_targets)])
        out = {"content": settings.content_weight * content, "style": settings.style_weight * style,
               "tv": settings.tv_weight * tv_loss(B, x) if settings.tv_weight else None}
        out["total"] = out["content"] + out["style"] if out["tv"] is None else out["content"] + out["style"] + out["tv"]
        return out


def _weighted(names: Optional[Sequence[str]], weights: Optional[Sequence[float]]) -> List[Tuple[str, float]]:
    """``(layer, weight)`` pairs of a resolved setting, layers of weight 0 left out."""
    pairs = zip(names or (), weights if weights is not None else [1.0] * len(names or ()))
    return [(name, float(weight)) for name, weight in pairs if weight != 0]


def _scaled(weight: float, term: Any) -> Any:
    return term if weight == 1 else weight * term


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
        return LoadedWeights(random_weights(int(value), last), f"random:{value}", True)  # type: ignore[arg-type]
    if kind == "imagenet":
        if backend is None:
            raise ValueError("the model zoo's weights need a backend")
        raw = backend.load_zoo_weights()
        return LoadedWeights(canonical_weights(raw, f"imagenet ({backend.name} model zoo)", last),
                             f"imagenet ({backend.name})", False)
    path = str(value)
    return LoadedWeights(read_weights(path, last, backend)[0], path, False)


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


def transfer(content: ImageInput, style: Union[ImageInput, Sequence[ImageInput]], *, backend: Union[str, Backend] = "torch",
             device: str = "auto", weights: Union[str, "LoadedWeights"] = "imagenet",
             size: Union[None, int, str, Tuple[int, int]] = DEFAULT_SIZE,
             max_pixels: int = images.DEFAULT_MAX_PIXELS, callback: Optional[Callback] = None,
             settings: Optional[Settings] = None, deterministic: bool = False, snapshot_every: int = 0,
             max_memory: Optional[int] = None, progress: bool = False, animate: Optional[str] = None,
             animate_every: int = 0, **overrides: Any) -> Result:
    """Stylise ``content`` with ``style`` and return a :class:`Result`.

    ``content`` and ``style`` are paths, PIL images or uint8 arrays; ``style``
    may also be a list of them, blended by ``style_blend``.  Any
    field of :class:`Settings` may be passed as a keyword (``epochs=100``,
    ``preset="d2l-mxnet"``).  ``callback(record, image)`` is called after
    every epoch, in order, with the epoch's losses and a function returning the
    current image as uint8 pixels.  On an asynchronous device (MXNet, CUDA)
    losses are read a few epochs at a time, so the callback is called in short
    bursts and ``image()`` may be a few epochs ahead of the record, except at
    every ``snapshot_every``-th epoch and the last, where it is that epoch's
    image.  ``deterministic`` turns on the framework's deterministic switches
    where it has them (GPU convolutions).  ``max_memory`` (bytes) refuses a
    job predicted to need more (:mod:`multistyle.memory`) before weights load.
    ``progress`` shows a progress bar (a widget in Jupyter).  ``animate`` (a
    ``.gif`` or ``.webp`` path) writes the optimisation as an animation, a
    frame every ``animate_every`` epochs (default: about 50 frames) and the
    result last.
    """
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"transfer() got unknown settings {unknown}; known: {sorted(known)}")
    settings = replace(settings or Settings(), **overrides).resolved()
    parse_device(device)  # a malformed device is a user error whether or not the framework is installed
    content_image = _as_image(content, "--content", max_pixels)
    style_images = [_as_image(one, "--style", max_pixels) for one in _style_list(style)]
    if settings.style_blend is not None and len(settings.style_blend) != len(style_images):
        raise MultistyleError(blend_mismatch(len(settings.style_blend), len(style_images)))
    init_image = None if settings.init in INITS else images.load_image(os.fspath(settings.init), "--init", max_pixels)
    shape = target_size(content_image, size)
    if animate_every < 0:
        raise MultistyleError(f"--animate-every: expected a positive number of epochs, got {animate_every}")
    if animate is not None:
        animation.check_animation_path(animate)
    pixel = PRESETS[settings.preset]["domain"] == "pixel"
    plan = scale_plan(shape, settings.scales, settings.epochs)  # type: ignore[arg-type]

    recorder = animation.FrameRecorder(animate) if animate is not None else None
    frame_every = animate_every or animation.default_every(settings.epochs)  # type: ignore[arg-type]
    bar = ProgressBar(settings.epochs, enabled=progress, notebook=True)  # type: ignore[arg-type]

    def on_epoch(record: Dict[str, float], image: Callable[[], np.ndarray]) -> None:
        bar.update(record)
        if recorder is not None and record["epoch"] % frame_every == 0 and record["epoch"] < settings.epochs:
            recorder.add(image())
        if callback is not None:
            callback(record, image)

    every = math.gcd(snapshot_every, frame_every if recorder is not None else 0)
    try:
        result = _run(settings, backend, device, weights, shape, plan, pixel, content_image, style_images,
                      init_image, on_epoch, every, max_memory, deterministic)
        if recorder is not None:
            recorder.add(result.image)
            recorder.write()
    finally:
        bar.close()
        if recorder is not None:
            recorder.close()
    return result


def _run(settings: Settings, backend: Union[str, Backend], device: str, weights: Union[str, LoadedWeights], shape: Tuple[int, int],
         plan: List[Tuple[Tuple[int, int], int]], pixel: bool, content_image: Image.Image,
         style_images: List[Image.Image], init_image: Optional[Image.Image], callback: Callback, snapshot_every: int,
         max_memory: Optional[int], deterministic: bool) -> Result:
    B = get_backend(backend, device) if isinstance(backend, str) else backend
    B.check_optimizer(settings.optimizer, settings.line_search)  # before loading weights, which may take long
    predicted = plan_memory(B.name, B.device, shape, settings)
    memory.check_limit(max_memory, predicted, B.name, lambda at: plan_memory(B.name, B.device, at, settings), shape)
    B.seed(settings.seed)
    if deterministic:
        B.set_deterministic()
    last = deepest_index(list(settings.content_layers) + list(settings.style_layers))  # type: ignore[arg-type]
    if isinstance(weights, LoadedWeights):
        missing = [index for index in CONV_INDICES if index <= last and index not in weights.arrays]
        if missing:
            raise ValueError(f"the loaded weights stop before layer {missing[0]}, which this job needs")
        vgg_weights, weights_label, untrained = weights
    else:
        vgg_weights, weights_label, untrained = load_weights(weights, B, last)
    if untrained:
        warnings.warn("VGG-19 has random weights (untrained): the result is not a stylised image; "
                      "use this for tests and smoke runs only", UntrainedWeightsWarning, stacklevel=3)
    low, high = (B.asarray(bound) for bound in images.valid_range(normalized=not pixel))
    history: List[Dict[str, float]] = []
    stopped, start = "", None
    for number, (scale_shape, epochs) in enumerate(plan):
        content_pixels, content_x, style_xs = _inputs(settings, content_image, style_images, scale_shape, pixel)
        if start is None:  # the first scale starts as the settings say
            start = initial_image(settings, content_x, style_images[0], init_image, content_pixels, pixel)
        else:  # each later one from the previous result, upsampled
            start = images.resize_array(start, scale_shape)
        objective = StyleLoss(B, vgg_weights, settings, content_x, style_xs)
        optimizer = B.optimizer(settings.optimizer, start, settings.lr, settings.lr_decay,  # type: ignore[arg-type]
                                settings.lr_decay_every, line_search=settings.line_search)
        final_scale = number == len(plan) - 1
        stopped = _optimise(B, objective, optimizer, settings, epochs, (low, high), history, callback,
                            pixel, number if len(plan) > 1 else None, final=final_scale,
                            snapshot_every=snapshot_every)
        if not final_scale:  # the stop rules judge only the final scale, so no run ends before it
            start = B.to_numpy(optimizer.image)

    if settings.clamp != "none":  # the tutorial clamps once more at the end
        B.clip_(optimizer.image, low, high)
    final = B.to_numpy(optimizer.image)
    image = images.postprocess(final, normalized=not pixel)
    if settings.preserve_color == "luminance":  # the content's colours, the result's luminance
        image = color.keep_luminance(image, images.postprocess(content_x, normalized=not pixel))
    return Result(image=image, array=final, history=history,
                  settings=settings,
                  backend=B.name, device=B.device, framework_version=B.framework_version(),
                  weights=weights_label, untrained=untrained, size=shape, peak_device_memory=B.peak_device_memory(),
                  stopped=stopped)


def _inputs(settings: Settings, content_image: Image.Image, style_images: List[Image.Image], shape: Tuple[int, int],
            pixel: bool) -> Tuple[np.ndarray, np.ndarray, List[np.ndarray]]:
    """The content's pixels, and the content and styles as network inputs, at ``shape``."""
    content_pixels = images.resize_pixels(content_image, shape)
    content_x = images.to_input(content_pixels, normalize=not pixel)
    style_xs = [images.to_input(style_pixels(image, shape, settings, content_pixels), normalize=not pixel)
                for image in style_images]
    return content_pixels, content_x, style_xs


def first_gradient(content: ImageInput, style: Union[ImageInput, Sequence[ImageInput]], *, backend: str,
                   device: str, weights: str, size: Union[None, int, str, Tuple[int, int]],
                   settings: Settings) -> Tuple[float, np.ndarray, np.ndarray]:
    """``(total loss, its gradient, the start image)`` of a job at its full size, before any step: what the
    first optimizer step sees (``multistyle explain`` measures optimizer formulas with it)."""
    settings = settings.resolved()
    B = get_backend(backend, device)
    content_image = _as_image(content, "--content", images.DEFAULT_MAX_PIXELS)
    style_images = [_as_image(one, "--style", images.DEFAULT_MAX_PIXELS) for one in _style_list(style)]
    pixel = PRESETS[settings.preset]["domain"] == "pixel"
    shape = target_size(content_image, size)
    content_pixels, content_x, style_xs = _inputs(settings, content_image, style_images, shape, pixel)
    init = None if settings.init in INITS else images.load_image(os.fspath(settings.init), "--init")
    start = initial_image(settings, content_x, style_images[0], init, content_pixels, pixel)
    last = deepest_index(list(settings.content_layers) + list(settings.style_layers))  # type: ignore[arg-type]
    objective = StyleLoss(B, load_weights(weights, B, last).arrays, settings, content_x, style_xs)
    loss, grad = B.value_and_grad(lambda x: objective.terms(x)["total"], start)
    return loss, grad, start


#: On an asynchronous device (MXNet's engine, CUDA) losses are read back at most this many epochs at a time.
READ_BATCH = 8


def plan_memory(backend: str, device: str, shape: Tuple[int, int], settings: Settings) -> memory.Prediction:
    """Predicted peak memory of a job (resolved ``settings``) whose full size is ``shape``."""
    final_epochs = scale_epochs(settings.scales, settings.epochs)[-1]  # type: ignore[arg-type]
    return memory.predict(backend, device, shape, list(settings.content_layers) + list(settings.style_layers),  # type: ignore[arg-type]
                          settings.optimizer, final_epochs)  # type: ignore[arg-type]


def _optimise(B: Backend, objective: StyleLoss, optimizer: Any, settings: Settings, epochs: int,
              bounds: Tuple[Any, Any], history: List[Dict[str, float]], callback: Optional[Callback], pixel: bool,
              scale: Optional[int], final: bool, snapshot_every: int = 0) -> str:
    """Run ``epochs`` iterations, appending to ``history``; return why it stopped early, or ``""``.

    The stop rules judge only the ``final`` (full-size) scale: losses at other sizes are not comparable.

    Each epoch's losses stay on the device, packed in one small tensor; they are
    read in one transfer per batch of epochs.  A synchronous device, or a run
    with a stop rule (which needs each loss as it comes), reads every epoch; an
    asynchronous one reads up to :data:`READ_BATCH` epochs at a time, and at
    every ``snapshot_every``-th epoch, so the device is not kept waiting for the
    host.  An epoch's ``seconds`` is the wall time of its batch shared out.
    """
    low, high = bounds
    first_epoch = len(history)
    evaluations: List[Dict[str, Any]] = []
    stop_rules = settings.until_loss is not None or settings.tol is not None
    batch = READ_BATCH if B.asynchronous and not stop_rules else 1
    pending: List[Tuple[Dict[str, Any], Any, bool]] = []  # (record so far, packed losses, has tv) per unread epoch

    def closure(x: Any) -> Any:
        if settings.clamp == "closure":  # the tutorial: clamp the image itself, then evaluate
            B.clip_(x, low, high)
        evaluations.append(objective.terms(x))
        return evaluations[-1]["total"]

    since = time.perf_counter()
    for index in range(epochs):
        lr = optimizer.lr
        evaluations.clear()
        optimizer.step(closure)
        if settings.clamp == "step":
            B.clip_(optimizer.image, low, high)
        optimizer.epoch_end()
        first = evaluations[0]  # the losses at the point this iteration started from
        has_tv = first["tv"] is not None
        terms = [first["content"], first["style"], first["total"]] + ([first["tv"]] if has_tv else [])
        epoch = len(history) + len(pending) + 1
        pending.append(({"epoch": epoch, "lr": lr, "evaluations": len(evaluations)}, B.pack(terms), has_tv))
        # The first epoch (warm-up, slow) is read alone, so that its time is not shared with others.
        if (len(pending) < batch and 0 < index < epochs - 1
                and not (snapshot_every and epoch % snapshot_every == 0)):
            continue
        values = B.to_numpy(B.pack([packed for _, packed, _ in pending])).astype(float).tolist()
        seconds = (time.perf_counter() - since) / len(pending)
        offset = 0
        for partial, _, has_tv in pending:
            content, style, total = values[offset:offset + 3]
            tv = values[offset + 3] if has_tv else 0.0
            offset += 4 if has_tv else 3
            record = {"epoch": partial["epoch"], "lr": partial["lr"], "content": content, "style": style, "tv": tv,
                      "total": total, "evaluations": partial["evaluations"], "seconds": seconds}
            if scale is not None:
                record["scale"] = scale
            if not math.isfinite(total):
                raise MultistyleError(f"the loss became {total} at epoch {record['epoch']}; lower --lr (now "
                                      f"{settings.lr}) or the loss weights, or check the weights file")
            history.append(record)
            if callback is not None:
                callback(record, lambda: images.postprocess(B.to_numpy(optimizer.image), normalized=not pixel))
            stopped = stop_reason(settings, history[first_epoch:]) if final else ""
            if stopped:  # only with batches of one epoch: the image is this epoch's
                return stopped
        pending.clear()
        since = time.perf_counter()
    return ""


def scale_plan(shape: Tuple[int, int], scales: int, epochs: int) -> List[Tuple[Tuple[int, int], int]]:
    """``[(size, epochs), ...]`` from coarse to fine for ``--scales``: each size half the next one."""
    height, width = shape
    sizes = [(max(1, round(height / 2 ** k)), max(1, round(width / 2 ** k))) for k in range(scales - 1, -1, -1)]
    if min(sizes[0]) < 16:
        raise MultistyleError(f"--scales: {scales} scales of {height}x{width} make the coarsest "
                              f"{sizes[0][0]}x{sizes[0][1]}, smaller than 16 pixels; use fewer scales or a larger size")
    return list(zip(sizes, scale_epochs(scales, epochs)))


def scale_epochs(scales: int, epochs: int) -> List[int]:
    """Epochs per scale, coarse to fine: weighted 2**(scales - 1 - k) toward the coarse scales, where an
    epoch costs a quarter as much per halving, and at least one each."""
    weights = [2 ** (scales - 1 - k) for k in range(scales)]
    counts = [max(1, int(epochs * w / sum(weights))) for w in weights]
    counts[0] += epochs - sum(counts)  # what rounding left goes to the coarsest scale
    return counts


#: Epochs over which --tol measures the improvement.
TOL_WINDOW = 20


def stop_reason(settings: Settings, history: Sequence[Dict[str, float]]) -> str:
    """Why to stop after the last epoch of ``history`` (``--until-loss``, ``--tol``), or ``""`` to go on.

    ``--tol`` compares the best loss of the last 20 epochs with the best one
    before them, so a single spike (L-BFGS) neither stops a run nor hides progress.
    """
    epoch, total = int(history[-1]["epoch"]), history[-1]["total"]
    if settings.until_loss is not None and total <= settings.until_loss:
        return f"the loss reached {total:.6g} <= --until-loss {settings.until_loss:g} at epoch {epoch}"
    if settings.tol is not None and len(history) > TOL_WINDOW:
        before = min(row["total"] for row in history[:-TOL_WINDOW])
        recent = min(row["total"] for row in history[-TOL_WINDOW:])
        if recent > before * (1 - settings.tol):
            gain = (before - recent) / before
            return (f"the loss improved by {max(gain, 0):.2g} (< --tol {settings.tol:g}) over the "
                    f"{TOL_WINDOW} epochs to epoch {epoch}")
    return ""


def initial_image(settings: Settings, content_x: np.ndarray, style: Optional[Image.Image] = None,
                  init: Optional[Image.Image] = None, content_pixels: Optional[np.ndarray] = None,
                  pixel: bool = False) -> np.ndarray:
    """The starting image: the content image, seeded NumPy noise (the same on every backend), the
    (first) style image or an image file, either resized to the content's size."""
    if settings.init == "content":
        return content_x
    if settings.init == "noise":
        return np.random.default_rng(settings.seed).standard_normal(content_x.shape, dtype=np.float32)
    size = (content_x.shape[2], content_x.shape[3])
    if settings.init == "style":
        pixels = images.resize_pixels(style, size)  # type: ignore[arg-type]
        if settings.preserve_color == "histogram":
            pixels = color.match_color(pixels, content_pixels)  # type: ignore[arg-type]
    else:
        pixels = images.resize_pixels(init, size)  # type: ignore[arg-type]
    return images.to_input(pixels, normalize=not pixel)


def style_pixels(image: Image.Image, shape: Tuple[int, int], settings: Settings,
                 content_pixels: np.ndarray) -> np.ndarray:
    """A style image as ``(H, W, 3)`` floats for a working size ``shape``: resized to that size (the
    chapter's way), or with ``style_scale`` to that many times its long edge, keeping the style's own
    aspect ratio; with ``preserve_color="histogram"`` its colours moved to the content's."""
    if settings.style_scale is None:
        size = shape
    else:
        size = images.fit_long_edge(image.size, max(1, round(settings.style_scale * max(shape))))
        if min(size) < 16:
            raise MultistyleError(f"--style-scale: {settings.style_scale:g} makes the style image "
                                  f"{size[0]}x{size[1]}, smaller than 16 pixels; use a larger scale")
    pixels = images.resize_pixels(image, size)
    if settings.preserve_color == "histogram":
        pixels = color.match_color(pixels, content_pixels)
    return pixels


def blend_mismatch(weights: int, styles: int) -> str:
    return (f"--style-blend: {weights} weight{'s' if weights != 1 else ''} for {styles} style "
            f"image{'s' if styles != 1 else ''}; give one weight per style")


def _style_list(style: Union[ImageInput, Sequence[ImageInput]]) -> List[ImageInput]:
    if isinstance(style, (list, tuple)):
        if not style:
            raise MultistyleError("--style: expected at least one style image")
        return list(style)
    return [style]  # type: ignore[list-item]


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
        columns = ["epoch", "lr", "content", "style", "tv", "total", "evaluations", "seconds"]
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
