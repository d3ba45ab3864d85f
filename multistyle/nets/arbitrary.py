"""AdaIN networks (:mod:`.adain`): their files, their encoder, and one stylisation on any backend.

An :class:`ArbitraryNetwork` holds the encoder and the decoder as one flat mapping (``encoder.N.*``,
``decoder.N.*``) plus string metadata.  Its files:

* ``.safetensors`` (multistyle's own, from ``multistyle train --arbitrary``): both halves, so that the file
  carries the encoder it was trained with; the metadata names it (``encoder``: its source and checksum);
* the public PyTorch port's two ``.pth`` state dicts: ``decoder.pth`` as ``--model`` and
  ``vgg_normalised.pth`` as ``--weights``, read by :mod:`multistyle.torch_pickle` (no object is unpickled).
  The layouts are recognised from keys and shapes (:func:`.adain.is_decoder`,
  :func:`.adain.is_normalised_encoder`).
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import MultistyleError
from ..vgg import canonical_weights, load_npz, parse_weights_spec
from . import adain
from .files import FORMAT, SUFFIXES, TORCH_SUFFIXES, _read_safetensors, split_checkpoint, write_network


def params_checksum(params: Mapping[str, np.ndarray], prefix: str) -> str:
    """SHA-256 (first 16 hex digits) of the arrays under ``prefix``, in name order: the same in every format."""
    digest = hashlib.sha256()
    for name in sorted(name for name in params if name.startswith(prefix)):
        digest.update(np.ascontiguousarray(params[name], np.float32).tobytes())
    return digest.hexdigest()[:16]


class ArbitraryNetwork:
    """An AdaIN network: ``params`` (``encoder.*`` and ``decoder.*`` float32 arrays), ``metadata`` (str -> str),
    and a checkpoint's ``optimizer`` state (empty otherwise)."""

    def __init__(self, params: Mapping[str, np.ndarray], metadata: Optional[Mapping[str, str]] = None,
                 optimizer: Optional[Mapping[str, np.ndarray]] = None, source: str = "the network") -> None:
        shapes = {**adain.encoder_shapes(), **adain.decoder_shapes()}
        for name, shape in shapes.items():
            if name not in params:
                raise MultistyleError(f"{source}: not a complete AdaIN network: '{name}' is missing")
            if tuple(np.shape(params[name])) != shape:
                raise MultistyleError(f"{source}: '{name}' has shape {tuple(np.shape(params[name]))}, expected "
                                      f"{shape}")
        self.params: Dict[str, np.ndarray] = {name: np.ascontiguousarray(params[name], np.float32) for name in shapes}
        self.metadata: Dict[str, str] = dict(metadata or {})
        self.metadata.setdefault("format", FORMAT)
        self.metadata["architecture"] = adain.ARCHITECTURE
        self.metadata.setdefault("encoder", f"unknown sha256:{params_checksum(self.params, 'encoder.')}")
        self.optimizer: Dict[str, np.ndarray] = dict(optimizer or {})
        self.source = source

    @classmethod
    def fresh(cls, encoder: Mapping[str, np.ndarray], encoder_label: str, seed: int = 0) -> "ArbitraryNetwork":
        """A network with this encoder and a freshly drawn decoder (the same numbers on every framework)."""
        params = {**encoder, **adain.init_decoder(seed)}
        return cls(params, {"seed": str(seed), "encoder": describe_encoder(encoder, encoder_label)})

    @property
    def iterations(self) -> int:
        """Training iterations done (0 for a fresh or foreign decoder)."""
        return int(self.metadata.get("iterations", "0"))

    @property
    def untrained(self) -> bool:
        """Whether the encoder is a random one (``--weights random``): the pictures will not look stylised."""
        return self.metadata["encoder"].startswith("random:")

    def describe(self) -> str:
        """One line: the architecture, the encoder and the iterations."""
        trained = f"{self.iterations} iterations" if self.iterations else "untrained or foreign"
        return f"AdaIN network {adain.ARCHITECTURE} (any style), encoder {self.metadata['encoder']}, {trained}"

    def save(self, path: str, with_optimizer: bool = False) -> None:
        """Write a ``.safetensors`` file atomically (with the optimizer state for a checkpoint)."""
        write_network(path, self.params, self.metadata, self.optimizer if with_optimizer else None)


def describe_encoder(encoder: Mapping[str, np.ndarray], label: str) -> str:
    """How a file names its encoder: where it came from and its arrays' checksum."""
    return f"{label} sha256:{params_checksum(encoder, 'encoder.')}"


# -- the encoder behind --weights ------------------------------------------------------------------------
def _raw_state(path: str, option: str) -> Dict[str, np.ndarray]:
    """A weight file's arrays by key, read without running code from it; ``None`` for a framework's own format."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix in TORCH_SUFFIXES:
        from ..torch_pickle import load_torch_state_dict

        return load_torch_state_dict(path, "weights (PyTorch state dict)")
    if suffix == ".npz":
        return load_npz(path)
    if suffix == ".safetensors":
        return _read_safetensors(path, option)[0]
    return {}


def load_encoder(spec: str, backend: Any = None, option: str = "--weights",
                 need_normalised: str = "") -> Tuple[Dict[str, np.ndarray], str]:
    """The encoder ``--weights`` names, and its label: ``random[:SEED]`` (untrained), a normalised VGG-19 file
    (``vgg_normalised.pth``'s layout), or any VGG-19 multistyle reads (``imagenet``: the backend's model zoo;
    a file), with ImageNet's normalisation as its 1x1 convolution.

    ``need_normalised`` (a decoder file's name): the decoder was trained against the normalised VGG-19, so
    only that layout is accepted."""
    kind, value = parse_weights_spec(spec)
    if kind == "random":
        return adain.random_encoder(int(str(value))), f"random:{value}"
    if kind == "imagenet":
        if need_normalised:
            raise MultistyleError(f"--model {need_normalised}: an AdaIN decoder without its encoder; pass the "
                                  f"normalised VGG-19 it was trained with as --weights (vgg_normalised.pth)")
        from ..weightfiles import load_weights

        loaded = load_weights(spec, backend, adain.LAST_INDEX)
        return adain.encoder_from_vgg(loaded.arrays), loaded.label
    path = str(value)
    raw = _raw_state(path, option)
    if raw and adain.is_normalised_encoder(raw):
        return adain.encoder_from_normalised(raw, f"{option} {path}"), os.path.basename(path)
    if need_normalised:
        raise MultistyleError(f"{option} {path}: not a normalised VGG-19 (a 1x1 convolution at key 0 and the first "
                              f"3x3 at key 2); the decoder {need_normalised} was trained against "
                              f"vgg_normalised.pth")
    if raw:
        weights = canonical_weights(raw, path, adain.LAST_INDEX)
    else:
        from ..weightfiles import read_weights

        weights = read_weights(path, adain.LAST_INDEX, backend)[0]
    return adain.encoder_from_vgg(weights), os.path.basename(path)


def encoder_spec(model: str, weights: str) -> str:
    """The ``--weights`` a model reads: a ``.safetensors`` network carries its own encoder (``imagenet`` stands for
    "none given"), a published decoder takes ``weights``.  For ``serve``, whose ``--weights`` is the
    optimisation's VGG-19 too."""
    return "imagenet" if os.path.splitext(model)[1].lower() in SUFFIXES else weights


def load_arbitrary(path: str, weights: str = "imagenet", option: str = "--model", backend: Any = None,
                   raw: Optional[Mapping[str, np.ndarray]] = None) -> ArbitraryNetwork:
    """An AdaIN network from ``--model``: a multistyle ``.safetensors`` (which carries its encoder: ``weights``
    must then be left as it is), or the port's ``decoder.pth`` with its encoder from ``weights``."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix in SUFFIXES:
        tensors, metadata = _read_safetensors(path, option)
        if weights != "imagenet":
            raise MultistyleError(f"--weights: {path} carries the encoder it was trained with "
                                  f"({metadata.get('encoder', 'unnamed')}); leave out --weights")
        params, optimizer = split_checkpoint(tensors)
        return ArbitraryNetwork(params, metadata, optimizer, source=f"{option} {path}")
    from ..torch_pickle import load_torch_state_dict

    if raw is None:
        raw = load_torch_state_dict(path, "AdaIN decoder (PyTorch state dict)")
    decoder = adain.decoder_from_state(raw, f"{option} {path}")
    encoder, label = load_encoder(weights, backend, need_normalised=os.path.basename(path))
    return ArbitraryNetwork({**encoder, **decoder}, {"source": os.path.basename(path),
                                                     "encoder": describe_encoder(encoder, label)},
                            source=f"{option} {path}")


# -- one stylisation -------------------------------------------------------------------------------------
class ArbitraryRunner:
    """An AdaIN network placed on a backend once; the encoder's and the decoder's passes compiled from the
    second call on where the framework gains by it (as :class:`~multistyle.nets.stylize.Runner`)."""

    def __init__(self, B: Any, network: ArbitraryNetwork) -> None:
        self.B, self.network = B, network
        self.params = B.parameters(network.params)
        self._encode = B.compile_pass(self._encode_pass)
        self._decode = B.compile_pass(self._decode_pass)
        self._seen: set = set()  # sizes (content's, styles') passed once already: compiled from the second time on

    def _encode_pass(self, params: Any, x: Any) -> Any:
        return adain.encode(self.B, params, self.B.into_layers(x))[adain.LAST]

    def _decode_pass(self, params: Any, t: Any) -> Any:
        return self.B.out_of_layers(adain.decode(self.B, params, t))

    def __call__(self, content: np.ndarray, styles: Sequence[np.ndarray], blend: Optional[Sequence[float]] = None,
                 masks: Optional[Sequence[np.ndarray]] = None, alpha: float = 1.0) -> np.ndarray:
        """The picture for ``(H, W, 3)`` content pixels in [0, 1] and style pixels (each its own size): ``(H, W,
        3)`` float32 in about [0, 1], unclipped.  ``masks``: one ``(H, W)`` array in [0, 1] per style."""
        B = self.B
        size = (content.shape, tuple(style.shape for style in styles))
        compiled = size in self._seen
        self._seen.add(size)
        encode, decode = (self._encode, self._decode) if compiled else (self._encode_pass, self._decode_pass)
        height, width = content.shape[:2]
        features = encode(self.params, B.asarray(_nchw(content)))
        style_features = [encode(self.params, B.asarray(_nchw(style))) for style in styles]
        small = None if masks is None else [adain.mask_at_features(mask) for mask in masks]
        t = adain.stylised_features(B, features, style_features, blend, small, alpha)
        y = B.to_numpy(decode(self.params, t))
        return y[0, :, :height, :width].transpose(1, 2, 0)


def _nchw(pixels: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(pixels, np.float32).transpose(2, 0, 1)[None])


def arbitrary_pass(B: Any, network: ArbitraryNetwork, content: np.ndarray, styles: Sequence[np.ndarray],
                   **kwargs: Any) -> Tuple[np.ndarray, float]:
    """One stylisation (:class:`ArbitraryRunner` used once) and its seconds, style encoding included."""
    run = ArbitraryRunner(B, network)
    started = time.perf_counter()
    out = run(content, styles, **kwargs)
    return out, time.perf_counter() - started


def style_inputs(style_images: List[Any], shape: Tuple[int, int], settings: Any,
                 content_pixels: np.ndarray) -> List[np.ndarray]:
    """The style images as the encoder takes them: as the optimisation sizes them (the content's working size,
    or ``--style-scale`` times its long edge), recoloured for ``--preserve-color histogram``; [0, 1]."""
    from ..transfer import style_pixels

    return [style_pixels(image, shape, settings, content_pixels) for image in style_images]
