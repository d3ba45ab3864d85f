"""One forward pass of a style network on any backend: ``multistyle run --model`` and :func:`stylize`.

VGG-19 is not loaded: the network alone runs.  The picture keeps the content's own size unless a size is
given; a size the network's two stride-2 convolutions do not divide by 4 comes back up to 3 pixels larger,
and is cropped to the input's.  Pixels leave the network in 0..255, clipped and rounded.
"""

from __future__ import annotations

import os
import time
import weakref
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from .. import color, images
from ..backend import Backend, get_backend
from ..errors import MultistyleError
from . import adain, transformer
from .arbitrary import ArbitraryNetwork, ArbitraryRunner, load_arbitrary, style_inputs
from .files import SUFFIXES, TORCH_SUFFIXES, StyleNetwork, safetensors_architecture

ModelInput = Union[str, "os.PathLike[str]", StyleNetwork]
ImageInput = Union[str, "os.PathLike[str]", Image.Image, np.ndarray]


class Stylized(images.Picture):
    """A stylised picture: ``image`` (``(H, W, 3)`` uint8), where it was made, and the seconds the pass took."""

    def __init__(self, image: np.ndarray, backend: str, device: str, seconds: float, network: StyleNetwork) -> None:
        self.image, self.backend, self.device, self.seconds, self.network = image, backend, device, seconds, network

    @property
    def size(self) -> Tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])


def load_network(model: ModelInput, option: str = "--model") -> StyleNetwork:
    """A :class:`StyleNetwork` from a path (``.safetensors`` or ``.pth``), or the one given."""
    return model if isinstance(model, StyleNetwork) else StyleNetwork.load(os.fspath(model), option)


def load_model(model: Union[ModelInput, ArbitraryNetwork], weights: str = "imagenet", option: str = "--model",
               backend: Any = None) -> Union[StyleNetwork, ArbitraryNetwork]:
    """A trained network of either kind from a path, told apart by the file's metadata or keys and shapes:
    a per-style network (:class:`StyleNetwork`) or an AdaIN one (:class:`ArbitraryNetwork`, whose published
    ``decoder.pth`` takes its encoder from ``weights``)."""
    if isinstance(model, (StyleNetwork, ArbitraryNetwork)):
        return model
    path = os.fspath(model)
    if not os.path.isfile(path):
        raise MultistyleError(f"{option}: no such file: {path!r}")
    extension = os.path.splitext(path)[1].lower()
    if extension in TORCH_SUFFIXES:
        from ..torch_pickle import load_torch_state_dict

        raw = load_torch_state_dict(path, "style network (PyTorch state dict)")
        if adain.is_decoder(raw):
            return load_arbitrary(path, weights, option, backend, raw)
        if adain.is_normalised_encoder(raw):
            raise MultistyleError(f"{option} {path}: a normalised VGG-19 (AdaIN's encoder), not a network; pass it "
                                  f"as --weights, and the decoder (decoder.pth) as --model")
        return StyleNetwork.from_state(raw, path, option)
    if extension in SUFFIXES and safetensors_architecture(path) == adain.ARCHITECTURE:
        return load_arbitrary(path, weights, option, backend)
    return StyleNetwork.load(path, option)


def check_preserve_color(mode: str) -> None:
    """The colour modes a trained network can honour: luminance (after the pass) or none."""
    if mode not in ("none", "luminance"):
        raise MultistyleError(f"--preserve-color {mode}: a trained network has no style image to recolour; "
                              f"use --preserve-color luminance with --model")


class Runner:
    """A network placed on a backend once, its pass compiled from the second call on where the framework gains
    by it (:meth:`~multistyle.backend.Backend.compile_pass`: JAX and TensorFlow, one program per picture size).

    The first pass is eager: compiling costs more than it saves on one pass.  Measured in fresh
    ``multistyle run --model`` processes at 300x450 (2 cores), TensorFlow took 2.89 s with the graph against
    2.23 s eager; warm at 512x512, the graph is 0.58 s a pass against 0.67 s, JAX's program 0.94 s against 1.02.
    """

    def __init__(self, B: Backend, network: StyleNetwork) -> None:
        self.B, self.network = B, network
        self.params = B.parameters(network.params)
        self._compiled = B.compile_pass(self._pass)
        self._seen: set = set()  # picture sizes passed once already: compiled from the second time on

    def _pass(self, params: Any, x: Any) -> Any:
        return self.B.out_of_layers(transformer.forward(self.B, params, self.B.into_layers(x)))

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """The output for ``(H, W, 3)`` pixels 0..255 (floats or uint8): ``(H, W, 3)`` float32, unclipped."""
        x = np.ascontiguousarray(np.asarray(pixels, np.float32).transpose(2, 0, 1)[None])
        height, width = x.shape[2:]
        forward = self._compiled if x.shape in self._seen else self._pass
        self._seen.add(x.shape)
        y = self.B.to_numpy(forward(self.params, self.B.asarray(x)))
        return y[0, :, :height, :width].transpose(1, 2, 0)


def network_pass(B: Backend, network: StyleNetwork, pixels: np.ndarray) -> np.ndarray:
    """One pass of ``network`` on ``B`` (a :class:`Runner` used once)."""
    return Runner(B, network)(pixels)


_RUNNERS: "weakref.WeakKeyDictionary[Any, List[Tuple[Backend, Any]]]" = weakref.WeakKeyDictionary()


def runner_for(B: Backend, network: Union[StyleNetwork, ArbitraryNetwork]) -> Any:
    """The network's runner on ``B``, kept with the network object: a network passed to :func:`stylize` again
    (a server's or a batch worker's) is placed on the backend once, and its passes are compiled from the second
    one at a size on.  The runner holds the parameters as they were placed: load the network again after
    changing them."""
    kept = _RUNNERS.setdefault(network, [])
    for backend, runner in kept:
        if backend is B:
            return runner
    runner = ArbitraryRunner(B, network) if isinstance(network, ArbitraryNetwork) else Runner(B, network)
    kept.append((B, runner))
    return runner


def stylize(model: Union[ModelInput, ArbitraryNetwork], content: ImageInput, *,
            style: Optional[Union[ImageInput, Sequence[ImageInput]]] = None, backend: Union[str, Backend] = "torch",
            device: str = "auto", size: Optional[Union[str, int, Tuple[int, int]]] = None,
            preserve_color: str = "none", max_pixels: int = images.DEFAULT_MAX_PIXELS, alpha: float = 1.0,
            style_blend: Optional[Sequence[float]] = None, content_masks: Optional[Sequence[str]] = None,
            style_scale: Optional[float] = None, weights: str = "imagenet") -> Stylized:
    """Stylise ``content`` with a trained network (a path, a :class:`StyleNetwork` or an
    :class:`~multistyle.nets.arbitrary.ArbitraryNetwork`) on ``backend``.

    The picture has the content's size unless ``size`` (``"HxW"``, a long edge, or ``(H, W)``) says
    otherwise.  ``preserve_color="luminance"`` keeps the content's colours and the network's luminance.

    An AdaIN network (any style) takes ``style`` too: one image, or several blended by ``style_blend`` or
    placed by ``content_masks`` (one mask per style); ``alpha`` in [0, 1] weighs the stylised features against
    the content's own; ``style_scale`` and ``preserve_color="histogram"`` size and recolour the styles as the
    optimisation does.  ``weights`` is the encoder of a published ``decoder.pth`` (``vgg_normalised.pth``).
    """
    network = load_model(model, weights, backend=None if isinstance(backend, str) else backend)
    B = get_backend(backend, device) if isinstance(backend, str) else backend
    image = _content_image(content, max_pixels)
    shape = (image.size[1], image.size[0]) if size is None else _shape(image, size)
    pixels = images.resize_pixels(image, shape)
    if isinstance(network, ArbitraryNetwork):
        return _stylize_arbitrary(B, network, pixels, style, preserve_color, max_pixels, adain.check_alpha(alpha),
                                  style_blend, content_masks, style_scale)
    if style is not None:
        raise MultistyleError(STYLE_BUILT_IN)
    if alpha != 1.0:
        raise MultistyleError("--alpha: only an AdaIN network (any style) weighs style against content at run "
                              "time; a per-style network's trade-off is set when it is trained")
    check_preserve_color(preserve_color)
    run = runner_for(B, network)
    started = time.perf_counter()
    out = run(pixels * np.float32(255.0))
    seconds = time.perf_counter() - started
    result = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return Stylized(_recoloured(result, pixels, preserve_color), B.name, B.device, seconds, network)


STYLE_BUILT_IN = ("--style: a trained network (--model) has its style built in (a per-style network); drop --style, "
                  "or drop --model to optimise with the style image")


def _recoloured(result: np.ndarray, pixels: np.ndarray, preserve_color: str) -> np.ndarray:
    if preserve_color != "luminance":
        return result
    return color.keep_luminance(result, np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8))


def _stylize_arbitrary(B: Backend, network: ArbitraryNetwork, pixels: np.ndarray,
                       style: Optional[Union[ImageInput, Sequence[ImageInput]]], preserve_color: str, max_pixels: int,
                       alpha: float, style_blend: Optional[Sequence[float]], content_masks: Optional[Sequence[str]],
                       style_scale: Optional[float]) -> Stylized:
    from ..settings import Settings, blend_mismatch
    from ..transfer import _masks, read_masks

    if style is None or (isinstance(style, (list, tuple)) and not style):
        raise MultistyleError("--style: an AdaIN network (--model) stylises with any style image; give one with "
                              "--style")
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    settings = Settings(style_blend=style_blend, content_masks=content_masks, preserve_color=preserve_color,
                        style_scale=style_scale).resolved()
    if settings.style_blend is not None and len(settings.style_blend) != len(styles):
        raise MultistyleError(blend_mismatch(len(settings.style_blend), len(styles)))
    masks = _masks(read_masks(settings, len(styles), max_pixels), pixels.shape[:2])
    style_images = [one if isinstance(one, Image.Image) else _content_image(one, max_pixels, "--style")
                    for one in styles]
    style_xs = style_inputs(style_images, pixels.shape[:2], settings, pixels)
    run = runner_for(B, network)
    started = time.perf_counter()
    out = run(pixels, style_xs, settings.style_blend, masks, alpha)
    seconds = time.perf_counter() - started
    result = np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
    return Stylized(_recoloured(result, pixels, preserve_color), B.name, B.device, seconds, network)


def _content_image(content: ImageInput, max_pixels: int, option: str = "--content") -> Image.Image:
    if isinstance(content, Image.Image):
        return images.to_rgb(content)
    if isinstance(content, np.ndarray):
        return images.to_rgb(Image.fromarray(np.asarray(content, np.uint8)))
    return images.load_image(os.fspath(content), option, max_pixels)


def _shape(image: Image.Image, size: Union[str, int, Tuple[int, int]]) -> Tuple[int, int]:
    from ..transfer import target_size

    return target_size(image, size)
