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
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from . import images, memory
from .backend import Backend, get_backend, parse_device
from .errors import MultistyleError
from .losses import content_loss, gram, style_loss, tv_loss
from .optim import DEFAULT_LR, OPTIMIZERS
from .weightfiles import read_weights
from .vgg import (LAYER_BY_NAME, Weights, canonical_weights, deepest_index,
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
        out = replace(
            self,
            content_layers=tuple(resolve_layers(
                preset["content_layers"] if self.content_layers is None else self.content_layers, "--content-layers")),
            style_layers=tuple(resolve_layers(
                preset["style_layers"] if self.style_layers is None else self.style_layers, "--style-layers")),
            **taken,
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
    ``tv``, each already multiplied by its weight, and their sum ``total``
    (``tv`` is ``None`` when its weight is 0: the term is then not computed).
    ``x`` and the images given here are in the preset's domain: normalised, or
    pixels in [0, 1] that the objective normalises first.
    """

    def __init__(self, backend: Backend, weights: Weights, settings: Settings,
                 content_x: np.ndarray, style_x: np.ndarray) -> None:
        self.B = backend
        self.settings = settings
        self.pixel = PRESETS[settings.preset]["domain"] == "pixel"
        if self.pixel:
            self.mean = backend.asarray(images.RGB_MEAN.reshape(1, 3, 1, 1))
            self.std = backend.asarray(images.RGB_STD.reshape(1, 3, 1, 1))
        self.layer_names = list(dict.fromkeys(settings.content_layers + settings.style_layers))  # type: ignore[operator]
        self.extract = FeatureExtractor(backend, weights, self.layer_names)
        content_features = self.features(backend.asarray(content_x))
        self.content_targets = [content_features[name] for name in settings.content_layers]  # type: ignore[union-attr]
        style_features = self.features(backend.asarray(style_x))
        self.style_targets = [gram(backend, style_features[name]) for name in settings.style_layers]  # type: ignore[union-attr]

    def features(self, x: Any) -> Dict[str, Any]:
        """VGG-19 features of an image in the preset's domain."""
        return self.extract((x - self.mean) / self.std if self.pixel else x)

    def terms(self, x: Any) -> Dict[str, Any]:
        B, settings = self.B, self.settings
        features = self.features(x)
        content = sum_terms([content_loss(B, features[name], target)
                             for name, target in zip(settings.content_layers, self.content_targets)])  # type: ignore[arg-type]
        style = sum_terms([style_loss(B, features[name], target)
                           for name, target in zip(settings.style_layers, self.style_targets)])  # type: ignore[arg-type]
        out = {"content": settings.content_weight * content, "style": settings.style_weight * style,
               "tv": settings.tv_weight * tv_loss(B, x) if settings.tv_weight else None}
        out["total"] = out["content"] + out["style"] if out["tv"] is None else out["content"] + out["style"] + out["tv"]
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
             settings: Optional[Settings] = None, deterministic: bool = False, snapshot_every: int = 0,
             max_memory: Optional[int] = None, **overrides: Any) -> Result:
    """Stylise ``content`` with ``style`` and return a :class:`Result`.

    ``content`` and ``style`` are paths, PIL images or uint8 arrays.  Any
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
    pixel = PRESETS[settings.preset]["domain"] == "pixel"
    plan = scale_plan(shape, settings.scales, settings.epochs)  # type: ignore[arg-type]

    B = get_backend(backend, device) if isinstance(backend, str) else backend
    B.check_optimizer(settings.optimizer, settings.line_search)  # before loading weights, which may take long
    predicted = plan_memory(B.name, B.device, shape, settings)
    memory.check_limit(max_memory, predicted, B.name, lambda at: plan_memory(B.name, B.device, at, settings), shape)
    B.seed(settings.seed)
    if deterministic:
        B.set_deterministic()
    last = deepest_index(list(settings.content_layers) + list(settings.style_layers))  # type: ignore[arg-type]
    vgg_weights, weights_label, untrained = load_weights(weights, B, last)
    if untrained:
        warnings.warn("VGG-19 has random weights (untrained): the result is not a stylised image; "
                      "use this for tests and smoke runs only", UntrainedWeightsWarning, stacklevel=2)
    low, high = (B.asarray(bound) for bound in images.valid_range(normalized=not pixel))
    history: List[Dict[str, float]] = []
    stopped, start = "", None
    for number, (scale_shape, epochs) in enumerate(plan):
        content_x = images.preprocess(content_image, scale_shape, normalize=not pixel)
        style_x = images.preprocess(style_image, scale_shape, normalize=not pixel)
        # The first scale starts as the settings say; each later one from the previous result, upsampled.
        start = initial_image(settings, content_x) if start is None else images.resize_array(start, scale_shape)
        objective = StyleLoss(B, vgg_weights, settings, content_x, style_x)
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
    return Result(image=images.postprocess(final, normalized=not pixel), array=final, history=history,
                  settings=settings,
                  backend=B.name, device=B.device, framework_version=B.framework_version(),
                  weights=weights_label, untrained=untrained, size=shape, peak_device_memory=B.peak_device_memory(),
                  stopped=stopped)


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
