"""One forward pass of a style network on any backend: ``multistyle run --model`` and :func:`stylize`.

VGG-19 is not loaded: the network alone runs.  The picture keeps the content's own size unless a size is
given; a size the network's two stride-2 convolutions do not divide by 4 comes back up to 3 pixels larger,
and is cropped to the input's.  Pixels leave the network in 0..255, clipped and rounded.
"""

from __future__ import annotations

import os
import time
from typing import Any, Optional, Tuple, Union

import numpy as np
from PIL import Image

from .. import color, images
from ..backend import Backend, get_backend
from ..errors import MultistyleError
from . import transformer
from .files import StyleNetwork

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
        self._calls = 0

    def _pass(self, params: Any, x: Any) -> Any:
        return self.B.out_of_layers(transformer.forward(self.B, params, self.B.into_layers(x)))

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """The output for ``(H, W, 3)`` pixels 0..255 (floats or uint8): ``(H, W, 3)`` float32, unclipped."""
        x = np.ascontiguousarray(np.asarray(pixels, np.float32).transpose(2, 0, 1)[None])
        height, width = x.shape[2:]
        forward = self._compiled if self._calls else self._pass
        self._calls += 1
        y = self.B.to_numpy(forward(self.params, self.B.asarray(x)))
        return y[0, :, :height, :width].transpose(1, 2, 0)


def network_pass(B: Backend, network: StyleNetwork, pixels: np.ndarray) -> np.ndarray:
    """One pass of ``network`` on ``B`` (a :class:`Runner` used once)."""
    return Runner(B, network)(pixels)


def stylize(model: ModelInput, content: ImageInput, *, backend: Union[str, Backend] = "torch",
            device: str = "auto", size: Optional[Union[str, int, Tuple[int, int]]] = None,
            preserve_color: str = "none", max_pixels: int = images.DEFAULT_MAX_PIXELS) -> Stylized:
    """Stylise ``content`` with a trained network (a path or a :class:`StyleNetwork`) on ``backend``.

    The picture has the content's size unless ``size`` (``"HxW"``, a long edge, or ``(H, W)``) says
    otherwise.  ``preserve_color="luminance"`` keeps the content's colours and the network's luminance.
    """
    check_preserve_color(preserve_color)
    network = load_network(model)
    image = _content_image(content, max_pixels)
    shape = (image.size[1], image.size[0]) if size is None else _shape(image, size)
    pixels = images.resize_pixels(image, shape) * np.float32(255.0)
    B = get_backend(backend, device) if isinstance(backend, str) else backend
    run = Runner(B, network)
    started = time.perf_counter()
    out = run(pixels)
    seconds = time.perf_counter() - started
    result = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if preserve_color == "luminance":
        result = color.keep_luminance(result, np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
    return Stylized(result, B.name, B.device, seconds, network)


def _content_image(content: ImageInput, max_pixels: int) -> Image.Image:
    if isinstance(content, Image.Image):
        return images.to_rgb(content)
    if isinstance(content, np.ndarray):
        return images.to_rgb(Image.fromarray(np.asarray(content, np.uint8)))
    return images.load_image(os.fspath(content), "--content", max_pixels)


def _shape(image: Image.Image, size: Union[str, int, Tuple[int, int]]) -> Tuple[int, int]:
    from ..transfer import target_size

    return target_size(image, size)
