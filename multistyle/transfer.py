"""The public function: stylise a content image with one or more style images, on any backend.

:mod:`multistyle.settings` resolves what was asked, :mod:`multistyle.objective`
computes the loss terms and :mod:`multistyle.loop` optimises the image; this
module reads the inputs, prepares them once per scale (the same helper serves
:func:`first_gradient`) and returns a :class:`Result`.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, fields, replace
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union, cast

import numpy as np
from PIL import Image

from . import animation, color, images, interrupts, memory
from .backend import Backend, get_backend, parse_device
from .errors import MultistyleError
from .loop import Callback, Scale, optimise, plan_memory, scale_plan
from .objective import StyleLoss, masks_mismatch
from .progress import ProgressBar
from .settings import DEFAULT_SIZE, INITS, PRESETS, ResolvedSettings, Settings, blend_mismatch
from .vgg import CONV_INDICES, deepest_index
from .weightfiles import LoadedWeights, load_weights

__all__ = ["PRESETS", "LoadedWeights", "ResolvedSettings", "Result", "Settings", "UntrainedWeightsWarning",
           "first_gradient", "load_weights", "transfer"]

Size = Union[None, int, str, Tuple[int, int]]


class UntrainedWeightsWarning(UserWarning):
    """The VGG-19 in use has random weights: results are not stylised images."""


@dataclass
class Result(images.Picture):
    """What a run returns: the image, its loss history and how it was made."""

    image: np.ndarray  # (H, W, 3) uint8, clipped
    array: np.ndarray  # (1, 3, H, W) float32, in the preset's domain (normalised, or pixels in [0, 1])
    history: List[Dict[str, float]]
    settings: ResolvedSettings
    backend: str
    device: str
    framework_version: str
    weights: str
    untrained: bool
    size: Tuple[int, int]
    peak_device_memory: Optional[int] = None  # bytes, where the framework reports it
    stopped: str = ""  # why the run ended before --epochs (--until-loss, --tol), or ""


ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray]


def _as_image(source: ImageInput, option: str, max_pixels: int) -> Image.Image:
    if isinstance(source, Image.Image):
        return images.to_rgb(source)
    if isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim not in (2, 3):
            raise MultistyleError(f"{option}: expected an (H, W) or (H, W, 3) uint8 array, got {source.dtype} {source.shape}")
        return images.to_rgb(Image.fromarray(source))
    return images.load_image(os.fspath(source), option, max_pixels)


def target_size(content: Image.Image, size: Size) -> Tuple[int, int]:
    """``(H, W)`` from ``size``: a pair, a long edge, an ``HxW`` string or ``None`` (300x450)."""
    if size is None:
        return DEFAULT_SIZE
    if isinstance(size, str):
        pair, long_edge = images.parse_size(size)
        if pair is not None:
            return pair
        if long_edge is None:  # parse_size gives one of the two
            raise MultistyleError(f"--size: cannot read {size!r}")
        return images.fit_long_edge(content.size, long_edge)
    if isinstance(size, int) and not isinstance(size, bool):
        if size <= 0:
            raise MultistyleError(f"--size: sizes must be positive, got {size}")
        return images.fit_long_edge(content.size, size)
    height, width = (int(v) for v in size)
    if height <= 0 or width <= 0:
        raise MultistyleError(f"--size: sizes must be positive, got {height}x{width}")
    return height, width


def transfer(content: ImageInput, style: Union[ImageInput, Sequence[ImageInput]], *, backend: Union[str, Backend] = "torch",
             device: str = "auto", weights: Union[str, LoadedWeights] = "imagenet", size: Size = DEFAULT_SIZE,
             max_pixels: int = images.DEFAULT_MAX_PIXELS, callback: Optional[Callback] = None,
             settings: Optional[Union[Settings, ResolvedSettings]] = None, deterministic: bool = False,
             snapshot_every: int = 0, max_memory: Optional[int] = None, progress: bool = False,
             animate: Optional[str] = None, animate_every: int = 0, temporal: Optional[Any] = None,
             **overrides: Any) -> Result:
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
    result last.  ``temporal`` (a :class:`multistyle.video.temporal.Temporal`) makes this a video frame's
    optimisation: the temporal term joins the loss, and the start is the previous output carried here.
    """
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"transfer() got unknown settings {unknown}; known: {sorted(known)}")
    resolved = replace(settings or Settings(), **overrides).resolved()
    parse_device(device)  # a malformed device is a user error whether or not the framework is installed
    job = _read_job(resolved, content, style, size, max_pixels)
    if animate_every < 0:
        raise MultistyleError(f"--animate-every: expected a positive number of epochs, got {animate_every}")
    if animate is not None:
        animation.check_animation_path(animate)
    plan = scale_plan(job.shape, resolved.scales, resolved.epochs, resolved.final_share)
    recorder = animation.FrameRecorder(animate) if animate is not None else None
    frame_every = animate_every or animation.default_every(resolved.epochs)
    bar = ProgressBar(resolved.epochs, enabled=progress, notebook=True)

    def on_epoch(record: Dict[str, float], image: Callable[[], np.ndarray]) -> None:
        bar.update(record)
        if recorder is not None and record["epoch"] % frame_every == 0 and record["epoch"] < resolved.epochs:
            recorder.add(image())
        if callback is not None:
            callback(record, image)

    every = math.gcd(snapshot_every, frame_every if recorder is not None else 0)
    try:
        with interrupts.watched():  # a Ctrl-C that the framework swallows still stops the run
            result = _run(job, plan, backend, device, weights, on_epoch, every, max_memory, deterministic,
                          temporal)
        if recorder is not None:
            recorder.add(result.image)
            recorder.write()
    finally:
        bar.close()
        if recorder is not None:
            recorder.close()
    return result


class _Job(NamedTuple):
    """A run's inputs, read and checked: settings, the images and the full size."""

    settings: ResolvedSettings
    content: Image.Image
    styles: List[Image.Image]
    init: Optional[Image.Image]
    shape: Tuple[int, int]
    masks: Optional[List[Image.Image]] = None


def _read_job(settings: ResolvedSettings, content: ImageInput, style: Union[ImageInput, Sequence[ImageInput]],
              size: Size, max_pixels: int) -> _Job:
    content_image = _as_image(content, "--content", max_pixels)
    style_images = [_as_image(one, "--style", max_pixels) for one in _style_list(style)]
    if settings.style_blend is not None and len(settings.style_blend) != len(style_images):
        raise MultistyleError(blend_mismatch(len(settings.style_blend), len(style_images)))
    init_image = None if settings.init in INITS else images.load_image(os.fspath(settings.init), "--init", max_pixels)
    masks = read_masks(settings, len(style_images), max_pixels)
    return _Job(settings, content_image, style_images, init_image, target_size(content_image, size), masks)


def read_masks(settings: ResolvedSettings, styles: int, max_pixels: int) -> Optional[List[Image.Image]]:
    """The ``--content-masks`` as greyscale images, checked: one per style, readable, each white somewhere."""
    if settings.content_masks is None:
        return None
    if len(settings.content_masks) != styles:
        raise MultistyleError(masks_mismatch(len(settings.content_masks), styles))
    masks = [images.load_image(path, "--content-masks", max_pixels).convert("L") for path in settings.content_masks]
    for path, mask in zip(settings.content_masks, masks):
        if mask.getextrema()[1] == 0:
            raise MultistyleError(f"--content-masks: {path!r} is black everywhere, so its style applies nowhere; "
                                  "white marks where it applies")
    return masks


def _run(job: _Job, plan: List[Tuple[Tuple[int, int], int]], backend: Union[str, Backend], device: str,
         weights: Union[str, LoadedWeights], callback: Callback, snapshot_every: int, max_memory: Optional[int],
         deterministic: bool, temporal: Optional[Any] = None) -> Result:
    settings, shape, pixel = job.settings, job.shape, job.settings.pixel_domain
    B = get_backend(backend, device) if isinstance(backend, str) else backend
    B.check_optimizer(settings.optimizer, settings.line_search)  # before loading weights, which may take long
    predicted = plan_memory(B.name, B.device, shape, settings)
    memory.check_limit(max_memory, predicted, B.name, lambda at: plan_memory(B.name, B.device, at, settings), shape)
    B.seed(settings.seed)
    if deterministic:
        B.set_deterministic()
    vgg_weights, weights_label, untrained = _weights(weights, B, deepest_index(settings.layers))
    low, high = (B.asarray(bound) for bound in images.valid_range(normalized=not pixel))
    history: List[Dict[str, float]] = []
    stopped, start, previous_content = "", None, None
    # The network is built (its weights placed on the device) once; each scale's objective shares it.
    extract = StyleLoss.network(B, vgg_weights, settings)
    for number, (scale_shape, epochs) in enumerate(plan):
        content_pixels, content_x, style_xs = _inputs(settings, job.content, job.styles, scale_shape)
        masks = _masks(job.masks, scale_shape)
        frame = None if temporal is None else temporal.at(scale_shape)
        if start is None and frame is not None and frame.start:  # a video frame: the previous output, carried
            start = images.to_input(frame.begin, normalize=not pixel)
        elif start is None:  # the first scale starts as the settings say
            start = initial_image(settings, content_x, job.styles[0], job.init, content_pixels, pixel)
        elif settings.scale_start == "content-detail":  # the content here, plus the last scale's change to it
            start = content_x + images.resize_array(start - previous_content, scale_shape)
        else:  # each later one from the previous result, upsampled
            start = images.resize_array(start, scale_shape)
        previous_content = content_x
        term = None
        if frame is not None and frame.weight:
            from .video.temporal import TemporalTarget

            term = (frame.weight, TemporalTarget(B, frame.warped, frame.reliable, pixel))
        objective = StyleLoss(B, vgg_weights, settings, content_x, style_xs, extract, masks, term)
        optimizer = B.optimizer(settings.optimizer, start, settings.lr, settings.lr_decay,
                                settings.lr_decay_every, line_search=settings.line_search)
        scale = Scale(number if len(plan) > 1 else None, final=number == len(plan) - 1)
        stopped = optimise(B, objective, optimizer, settings, epochs, (low, high), history, callback, scale,
                           snapshot_every=snapshot_every)
        if not scale.final:  # the stop rules judge only the final scale, so no run ends before it
            start = B.to_numpy(optimizer.image)
    if settings.clamp != "none":  # the tutorial clamps once more at the end
        B.clip_(optimizer.image, low, high)
    final = B.to_numpy(optimizer.image)
    image = images.postprocess(final, normalized=not pixel)
    if settings.preserve_color == "luminance":  # the content's colours, the result's luminance
        image = color.keep_luminance(image, images.postprocess(content_x, normalized=not pixel))
    return Result(image=image, array=final, history=history, settings=settings,
                  backend=B.name, device=B.device, framework_version=B.framework_version(),
                  weights=weights_label, untrained=untrained, size=shape, peak_device_memory=B.peak_device_memory(),
                  stopped=stopped)


def _weights(weights: Union[str, LoadedWeights], B: Backend, last: int) -> LoadedWeights:
    """The job's VGG-19 weights, read now or already loaded (which must reach layer ``last``)."""
    if isinstance(weights, LoadedWeights):
        missing = [index for index in CONV_INDICES if index <= last and index not in weights.arrays]
        if missing:
            raise ValueError(f"the loaded weights stop before layer {missing[0]}, which this job needs")
    else:
        weights = load_weights(weights, B, last)
    if weights.untrained:
        warnings.warn("VGG-19 has random weights (untrained): the result is not a stylised image; "
                      "use this for tests and smoke runs only", UntrainedWeightsWarning, stacklevel=4)
    return weights


def _inputs(settings: ResolvedSettings, content_image: Image.Image, style_images: List[Image.Image],
            shape: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray, List[np.ndarray]]:
    """The content's pixels, and the content and styles as network inputs, at ``shape``."""
    pixel = settings.pixel_domain
    content_pixels = images.resize_pixels(content_image, shape)
    content_x = images.to_input(content_pixels, normalize=not pixel)
    style_xs = [images.to_input(style_pixels(image, shape, settings, content_pixels), normalize=not pixel)
                for image in style_images]
    return content_pixels, content_x, style_xs


def _masks(masks: Optional[List[Image.Image]], shape: Tuple[int, int]) -> Optional[List[np.ndarray]]:
    """The masks at ``shape`` (bilinear), as ``(H, W)`` arrays in [0, 1]."""
    if masks is None:
        return None
    return [np.asarray(mask.resize((shape[1], shape[0]), Image.BILINEAR), np.float32) / 255.0 for mask in masks]


def first_gradient(content: ImageInput, style: Union[ImageInput, Sequence[ImageInput]], *, backend: str,
                   device: str, weights: str, size: Size,
                   settings: Union[Settings, ResolvedSettings]) -> Tuple[float, np.ndarray, np.ndarray]:
    """``(total loss, its gradient, the start image)`` of a job at its full size, before any step: what the
    first optimizer step sees (:mod:`multistyle.maths` measures optimizer formulas with it)."""
    B, objective, start = objective_at_start(content, style, backend=backend, device=device, weights=weights,
                                             size=size, settings=settings)
    loss, grad = B.value_and_grad(lambda x: objective.terms(x)["total"], start)
    return loss, grad, start


def objective_at_start(content: ImageInput, style: Union[ImageInput, Sequence[ImageInput]], *, backend: str,
                       device: str, weights: str, size: Size, settings: Union[Settings, ResolvedSettings]
                       ) -> Tuple[Backend, StyleLoss, np.ndarray]:
    """The backend, the objective and the start image of a job at its full size: what its first step reads."""
    job = _read_job(settings.resolved(), content, style, size, images.DEFAULT_MAX_PIXELS)
    B = get_backend(backend, device)
    content_pixels, content_x, style_xs = _inputs(job.settings, job.content, job.styles, job.shape)
    start = initial_image(job.settings, content_x, job.styles[0], job.init, content_pixels, job.settings.pixel_domain)
    arrays = load_weights(weights, B, deepest_index(job.settings.layers)).arrays
    return B, StyleLoss(B, arrays, job.settings, content_x, style_xs, masks=_masks(job.masks, job.shape)), start


def initial_image(settings: ResolvedSettings, content_x: np.ndarray, style: Optional[Image.Image] = None,
                  init: Optional[Image.Image] = None, content_pixels: Optional[np.ndarray] = None,
                  pixel: bool = False) -> np.ndarray:
    """The starting image: the content image, the content recoloured to the (first) style's colours, seeded
    NumPy noise (the same on every backend), the (first) style image or an image file, either resized to the
    content's size."""
    if settings.init == "content":
        return content_x
    size = (content_x.shape[2], content_x.shape[3])
    if settings.init == "content-in-style-colors":
        # The content's colours given the style's mean and covariance (as the objective sees the style): the
        # style's first-layer statistics start near their target, the content's layout is kept.  Not clipped:
        # clipping moves the statistics off again, and measured, the run then needs more epochs (see the
        # benchmark page); the result is clipped as every result is.  The objective is unchanged.
        if style is None or content_pixels is None:
            raise MultistyleError(f"--init: {settings.init} needs the content's pixels and a style image")
        recoloured = color.match_color(content_pixels, style_pixels(style, size, settings, content_pixels))
        return images.to_input(recoloured, normalize=not pixel)
    if settings.init == "noise":
        return np.random.default_rng(settings.seed).standard_normal(content_x.shape, dtype=np.float32)
    source = style if settings.init == "style" else init
    if source is None:
        raise MultistyleError(f"--init: {settings.init} starts from an image, and none was given")
    pixels = images.resize_pixels(source, size)
    if settings.init == "style" and settings.preserve_color == "histogram":
        if content_pixels is None:
            raise MultistyleError("--preserve-color histogram: the content's pixels are needed to start from the style")
        pixels = color.match_color(pixels, content_pixels)
    return images.to_input(pixels, normalize=not pixel)


def style_pixels(image: Image.Image, shape: Tuple[int, int], settings: ResolvedSettings,
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


def _style_list(style: Union[ImageInput, Sequence[ImageInput]]) -> List[ImageInput]:
    if isinstance(style, (list, tuple)):
        if not style:
            raise MultistyleError("--style: expected at least one style image")
        return list(style)
    return [cast(ImageInput, style)]
