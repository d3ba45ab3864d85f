"""Presets and settings: what a run is asked for, checked once into a frozen :class:`ResolvedSettings`.

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
same objective with RMSprop); ``crowsonkb`` is crowsonkb's style-transfer-pytorch
as far as multistyle's losses and schedule reach (W2, Adam on pixels, three
scales).  In pixel space the image lives in [0, 1] and the ImageNet normalisation is the first operation of the objective
(``ResolvedSettings.pixel_domain``); in the d2l presets the image is optimised
already normalised.  A preset fixes every default (layers, loss weights,
optimizer, rate and its decay, epochs, where the image is clamped); any of
them can still be set explicitly.

:class:`Settings` holds what a user gave (``None``: "the preset's");
:meth:`Settings.resolved` applies the preset, checks every value and returns a
:class:`ResolvedSettings`, whose fields have the same names and are all set.
Only ``until_loss``, ``tol``, ``style_blend`` and ``style_scale`` may stay
``None``, where ``None`` is itself a choice (no stop rule, equal blend, the
style resized to the content's size).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Optional, Sequence, Tuple, Union

from . import color
from .errors import MultistyleError
from .losses import STYLE_LOSSES
from .optim import DEFAULT_LR, OPTIMIZERS
from .vgg import resolve_layers

D2L_STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
#: The tutorial counts convolutions: its conv_1 ... conv_5 are these, and its content layer conv_4 is conv2_2.
TUTORIAL_STYLE_LAYERS = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1")

_D2L = {"style_layers": D2L_STYLE_LAYERS, "content_layers": ("conv4_4",), "adam_lr": 0.3, "optimizer": "adam",
        "domain": "normalized", "clamp": "none", "content_weight": 1.0, "style_weight": 1e4, "tv_weight": 10.0,
        "epochs": 500, "lr_decay": 0.8, "lr_decay_every": 50, "scales": 1, "final_share": None, "tv_smoothing": 0.0,
        "scale_start": "upsampled", "init": "content"}
_TUTORIAL = {"style_layers": TUTORIAL_STYLE_LAYERS, "content_layers": ("conv2_2",),
             # Adam is not part of these recipes; this rate is the chapter's 0.3 in normalised units
             # expressed in pixel units (x the ImageNet standard deviation, about 0.226).
             "adam_lr": 0.07, "domain": "pixel", "clamp": "closure", "content_weight": 1.0, "style_weight": 1e6,
             "tv_weight": 0.0, "epochs": 300, "lr_decay": 1.0, "lr_decay_every": 50, "scales": 1,
             "final_share": None, "tv_smoothing": 0.0, "scale_start": "upsampled",
             "init": "content"}

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
    # The d2l objective, optimised coarse to fine on a shorter schedule, the total variation descended
    # smoothed (README: Time to a finished image).
    "fast": dict(_D2L, scales=2, epochs=500, final_share=0.88, lr_decay_every=30, tv_smoothing=0.02,
                 scale_start="content-detail", init="content-in-style-colors"),
    # crowsonkb's style-transfer-pytorch as far as multistyle's pieces reach (docs: Style losses and masks): W2
    # on relu1_1..relu5_1 weighted 256:64:16:4:1 (normalised), content relu4_2 at 0.015, total variation 2,
    # Adam at 0.02 on pixels clamped after each step, 1000 epochs at the coarsest scale and 500 at each other.
    "crowsonkb": dict(_TUTORIAL, style_loss="w2",
                      style_layers=tuple(f"relu{k}_1:{w / 341:.6g}" for k, w in zip(range(1, 6), (256, 64, 16, 4, 1))),
                      content_layers=("relu4_2",), content_weight=0.015, style_weight=1.0, tv_weight=2.0,
                      optimizer="adam", adam_lr=0.02, clamp="step", epochs=2000, scales=3, final_share=0.25),
}

#: The style weight of a loss that is not the preset's own (``--style-loss`` given, ``--style-weight`` not):
#: 10 for the two that compare per-channel statistics, AdaIN's (Huang & Belongie 2017) for ``mean-std``,
#: whose loss is this one, against a content weight of 1.  ``w2`` takes the same: for features whose
#: covariances are diagonal it equals ``mean-std`` (the squared distance of the means plus that of the
#: standard deviations, over the channels), so the two are on one scale.  ``gram`` on a preset of another
#: loss takes the chapter's 1e4.
#: ``mrf`` takes 10 too: CNNMRF (Li & Wand's code) weighs its content loss 20 as a mean over the features, and
#: its MRF loss 1e-4 as a sum over the patches' elements, about 2e6 to 4e6 of them at each of its two layers at
#: its 384 pixels: 180 to 380 as a mean (this loss is one), 9 to 19 times the content's.
STYLE_WEIGHTS = {"mean-std": 10.0, "w2": 10.0, "mrf": 10.0}
#: The style layers of ``mrf`` on a preset of another loss (``--style-layers`` not given): Li & Wand's.  A patch
#: loss is quadratic in the positions (each patch of the picture against each of the style), so the chapter's
#: conv1_1 at 300x450 would compare 3e4 patches with 3e4.
MRF_STYLE_LAYERS = ("relu3_1", "relu4_1")

#: Starting images (or an image file's path).
INITS = ("content", "content-in-style-colors", "noise", "style")
POOLINGS = ("max", "avg")

#: Where the image is clamped to its valid range: inside every loss evaluation
#: (the tutorial's closure), after every optimizer step, only at the end, never.
CLAMPS = ("closure", "step", "end", "none")

#: How each scale after the first starts (``--scales``): the last scale's result upsampled, or the content at
#: the new size plus the last scale's change to the content, upsampled (the content's fine detail kept).
SCALE_STARTS = ("upsampled", "content-detail")

DEFAULT_SIZE = (300, 450)


@dataclass(frozen=True)
class ResolvedSettings:
    """Settings with the preset applied and every value checked: what the algorithm reads."""

    preset: str
    content_layers: Tuple[str, ...]
    style_layers: Tuple[str, ...]
    optimizer: str
    lr: float
    lr_decay: float
    lr_decay_every: int
    epochs: int
    content_weight: float
    style_weight: float
    tv_weight: float
    tv_smoothing: float
    clamp: str
    line_search: bool
    until_loss: Optional[float]
    tol: Optional[float]
    scales: int
    final_share: Optional[float]
    scale_start: str
    init: Union[str, "os.PathLike[str]"]
    seed: int
    style_blend: Optional[Tuple[float, ...]]
    style_scale: Optional[float]
    preserve_color: str
    pooling: str
    style_loss: str
    content_masks: Optional[Tuple[str, ...]]
    content_layer_weights: Tuple[float, ...]
    style_layer_weights: Tuple[float, ...]

    @property
    def pixel_domain(self) -> bool:
        """True when the image is optimised as pixels in [0, 1] (the tutorial presets), False when normalised."""
        return bool(PRESETS[self.preset]["domain"] == "pixel")

    @property
    def layers(self) -> Tuple[str, ...]:
        """The content layers, then the style layers."""
        return self.content_layers + self.style_layers

    def resolved(self) -> "ResolvedSettings":
        """Checked again, so that ``dataclasses.replace`` on resolved settings cannot skip the checks."""
        return Settings(**{f.name: getattr(self, f.name) for f in fields(self)}).resolved()


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
    tv_smoothing: Optional[float] = None
    clamp: Optional[str] = None
    line_search: bool = False
    until_loss: Optional[float] = None
    tol: Optional[float] = None
    scales: Optional[int] = None
    final_share: Optional[float] = None
    scale_start: Optional[str] = None
    init: Optional[str] = None
    seed: int = 0
    style_blend: Optional[Sequence[float]] = None
    style_scale: Optional[float] = None
    preserve_color: str = "none"
    pooling: str = "max"
    style_loss: Optional[str] = None
    content_masks: Optional[Sequence[str]] = None
    content_layer_weights: Optional[Sequence[float]] = None
    style_layer_weights: Optional[Sequence[float]] = None

    def resolved(self) -> ResolvedSettings:
        """The preset applied and every value checked."""
        if self.preset not in PRESETS:
            raise MultistyleError(f"--preset: unknown preset {self.preset!r}; choose from {', '.join(PRESETS)}")
        preset = PRESETS[self.preset]
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        if values["style_loss"] is None:
            values["style_loss"] = preset.get("style_loss", "gram")
        if values["style_weight"] is None and values["style_loss"] != preset.get("style_loss", "gram"):
            values["style_weight"] = STYLE_WEIGHTS.get(values["style_loss"], _D2L["style_weight"])
        for name in ("optimizer", "lr_decay", "lr_decay_every", "epochs", "content_weight", "style_weight",
                     "tv_weight", "tv_smoothing", "clamp", "scales", "final_share", "scale_start", "init"):
            if values[name] is None:
                values[name] = preset[name]
        optimizer = values["optimizer"]
        if optimizer not in OPTIMIZERS:
            raise MultistyleError(f"--optimizer: expected one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
        if self.lr is None:
            values["lr"] = float(preset["adam_lr"] if optimizer == "adam" else DEFAULT_LR[optimizer])
        if values["style_layers"] is None and values["style_loss"] == "mrf" != preset.get("style_loss", "gram"):
            values["style_layers"] = MRF_STYLE_LAYERS
        for kind in ("content", "style"):
            given = values[f"{kind}_layers"]
            values[f"{kind}_layers"], values[f"{kind}_layer_weights"] = _layer_weights(
                preset[f"{kind}_layers"] if given is None else given, values[f"{kind}_layer_weights"],
                f"--{kind}-layers")
        values["style_blend"] = _blend(self.style_blend)
        if values["content_masks"] is not None:
            values["content_masks"] = tuple(os.fspath(path) for path in values["content_masks"])
        out = ResolvedSettings(**values)
        _check(out)
        return out


def _check(out: ResolvedSettings) -> None:
    """Raise a one-line error for the first value of ``out`` that is out of range."""
    if out.content_masks is not None and out.style_blend is not None:
        raise MultistyleError("--content-masks and --style-blend: a mask says where each style applies, so the "
                              "styles are not blended; leave out --style-blend")
    _positive("--epochs", out.epochs, integer=True)
    _positive("--lr", out.lr)
    _positive("--lr-decay", out.lr_decay)
    if out.lr_decay > 1:
        raise MultistyleError(f"--lr-decay: expected a factor in (0, 1], got {out.lr_decay!r}")
    _positive("--lr-decay-every", out.lr_decay_every, integer=True)
    for option, value in (("--content-weight", out.content_weight), ("--style-weight", out.style_weight),
                          ("--tv-weight", out.tv_weight), ("--tv-smoothing", out.tv_smoothing)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise MultistyleError(f"{option}: expected a number >= 0, got {value!r}")
    if out.init not in INITS and not os.path.isfile(os.fspath(out.init)):
        raise MultistyleError(f"--init: expected {', '.join(INITS)} or an image file, got {out.init!r} "
                              f"(no such file)")
    if out.style_scale is not None:
        _positive("--style-scale", out.style_scale)
    for option, value, choices in (("--preserve-color", out.preserve_color, color.MODES),
                                   ("--pooling", out.pooling, POOLINGS), ("--clamp", out.clamp, CLAMPS),
                                   ("--style-loss", out.style_loss, STYLE_LOSSES),
                                   ("--scale-start", out.scale_start, SCALE_STARTS)):
        if value not in choices:
            raise MultistyleError(f"{option}: expected one of {', '.join(choices)}, got {value!r}")
    _positive("--scales", out.scales, integer=True)
    if out.scales > out.epochs:
        raise MultistyleError(f"--scales: {out.scales} scales need at least as many epochs, got {out.epochs}")
    if out.final_share is not None and not (isinstance(out.final_share, (int, float)) and 0 < out.final_share < 1):
        raise MultistyleError(f"--final-share: expected a share of the epochs between 0 and 1 (e.g. 0.5), "
                              f"got {out.final_share!r}")
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


def blend_mismatch(weights: int, styles: int) -> str:
    """The error for a ``--style-blend`` whose length is not the number of styles."""
    return (f"--style-blend: {weights} weight{'s' if weights != 1 else ''} for {styles} style "
            f"image{'s' if styles != 1 else ''}; give one weight per style")


def settings_dict(settings: Union[Settings, ResolvedSettings]) -> Dict[str, Any]:
    """Settings as JSON-friendly values."""
    out = asdict(settings)
    for key in ("content_layers", "style_layers"):
        out[key] = list(out[key]) if out[key] is not None else None
    return out
