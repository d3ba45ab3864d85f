"""VGG-19: canonical layer names, weight formats and synthetic weights.

The network is described once here and every backend builds it from this
description.  Layer ``i`` of the list :data:`LAYERS` is layer ``i`` of
``features`` in torchvision, the Gluon model zoo and ``paddle.vision`` alike,
so the d2l chapter's indices map to names directly (``0 -> conv1_1``,
``25 -> conv4_4``, ``28 -> conv5_1``).

Weights travel between the core and the backends as a plain ``dict`` that maps
the index of each convolution to a ``(weight, bias)`` pair of float32 NumPy
arrays, weight in OIHW layout.  The portable file format is an ``.npz`` with
keys ``features.{i}.weight`` and ``features.{i}.bias``, the state-dict names
shared by all three frameworks.
"""

from __future__ import annotations

import os
import re
import zipfile
from typing import Dict, Iterable, List, Mapping, NamedTuple, Tuple

import numpy as np

from .errors import MultistyleError, WeightsError
from .images import atomic_write

# Channels of each convolution; "M" is a 2x2 max-pool (VGG configuration "E").
_CONFIG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
           512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


class Layer(NamedTuple):
    """One layer of ``features``: its canonical name, kind and shapes."""

    index: int
    name: str
    kind: str  # "conv", "relu" or "pool"
    in_channels: int
    out_channels: int


def _build_layers() -> List[Layer]:
    layers: List[Layer] = []
    block, conv, channels = 1, 1, 3
    for item in _CONFIG:
        if item == "M":
            layers.append(Layer(len(layers), f"pool{block}", "pool", channels, channels))
            block, conv = block + 1, 1
            continue
        out = int(item)
        layers.append(Layer(len(layers), f"conv{block}_{conv}", "conv", channels, out))
        layers.append(Layer(len(layers), f"relu{block}_{conv}", "relu", out, out))
        channels, conv = out, conv + 1
    return layers


LAYERS: List[Layer] = _build_layers()
LAYER_BY_NAME: Dict[str, Layer] = {layer.name: layer for layer in LAYERS}
CONV_INDICES: Tuple[int, ...] = tuple(layer.index for layer in LAYERS if layer.kind == "conv")

Weights = Dict[int, Tuple[np.ndarray, np.ndarray]]


def resolve_layers(names: Iterable[str], option: str) -> List[str]:
    """Check canonical layer names; ``option`` names the setting in errors."""
    result = [str(name).strip() for name in names]
    if not result or any(not name for name in result):
        raise MultistyleError(f"{option}: expected a comma-separated list of VGG-19 layer names, got {','.join(result)!r}")
    for name in result:
        if name not in LAYER_BY_NAME:
            raise MultistyleError(
                f"{option}: unknown VGG-19 layer {name!r}; use names like conv1_1..conv5_4, "
                f"relu1_1..relu5_4 or pool1..pool5")
    return result


def deepest_index(names: Iterable[str]) -> int:
    """Index of the deepest layer among ``names``: the network is cut after it."""
    return max(LAYER_BY_NAME[name].index for name in names)


def expected_shapes(index: int) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """OIHW weight shape and bias shape of the convolution at ``index``."""
    layer = LAYERS[index]
    return (layer.out_channels, layer.in_channels, 3, 3), (layer.out_channels,)


def random_weights(seed: int, last: int = LAYERS[-1].index) -> Weights:
    """He-normal weights and zero biases from a seeded NumPy generator.

    The draws happen in layer order, so the first layers are the same whatever
    ``last`` is, and the same on every backend.  Such a network is untrained:
    it is for tests and offline smoke runs only.
    """
    rng = np.random.default_rng(seed)
    weights: Weights = {}
    for index in CONV_INDICES:
        if index > last:
            break
        w_shape, b_shape = expected_shapes(index)
        fan_in = w_shape[1] * 9
        w = rng.standard_normal(w_shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))
        weights[index] = (w, np.zeros(b_shape, dtype=np.float32))
    return weights


_FEATURES_KEY = re.compile(r"^(?:module\.)?(?:features\.)?(\d+)\.(weight|bias)$")
_GLUON_LEGACY_KEY = re.compile(r"^(?:arg:|aux:)?vgg\d+_conv(\d+)_(weight|bias)$")


def canonical_weights(raw: Mapping[str, np.ndarray], source: str, last: int) -> Weights:
    """Turn a state dict read from any supported format into :data:`Weights`.

    Accepted key styles: ``features.{i}.weight`` (torchvision, Paddle, Gluon's
    ``save_parameters``), ``{i}.weight`` (a saved ``features`` module alone),
    and Gluon's legacy ``vgg0_conv{k}_weight`` where ``k`` counts convolutions.
    Keys of other layers (the classifier) are ignored.  Every convolution up to
    ``last`` must be present with the VGG-19 shape; ``source`` names the file
    in errors.
    """
    found: Dict[int, Dict[str, np.ndarray]] = {}
    for key, value in raw.items():
        key = str(key)
        match = _FEATURES_KEY.match(key)
        if match:
            index = int(match.group(1))
        else:
            match = _GLUON_LEGACY_KEY.match(key)
            if not match:
                continue
            k = int(match.group(1))
            if k >= len(CONV_INDICES):
                continue  # the legacy names number the dense layers on, too
            index = CONV_INDICES[k]
        found.setdefault(index, {})[match.group(2)] = np.asarray(value)
    weights: Weights = {}
    for index in CONV_INDICES:
        if index > last:
            break
        layer = LAYERS[index]
        pair = found.get(index, {})
        if "weight" not in pair or "bias" not in pair:
            raise WeightsError(
                f"weights {source}: no features.{index}.weight/bias ({layer.name}); "
                f"expected a VGG-19 state dict with keys features.N.weight and features.N.bias")
        w_shape, b_shape = expected_shapes(index)
        w, b = pair["weight"], pair["bias"]
        if tuple(w.shape) != w_shape or tuple(b.shape) != b_shape:
            raise WeightsError(
                f"weights {source}: {layer.name} (features.{index}) has weight {tuple(w.shape)} and bias "
                f"{tuple(b.shape)}, expected {w_shape} and {b_shape}; is this a VGG-19 file?")
        weights[index] = (np.ascontiguousarray(w, dtype=np.float32), np.ascontiguousarray(b, dtype=np.float32))
    return weights


def load_npz(path: str) -> Dict[str, np.ndarray]:
    """Read a portable ``.npz`` weight file into a plain dict."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise WeightsError(f"weights {path}: not a readable .npz file ({exc})") from None


def state_dict(weights: Weights) -> Dict[str, np.ndarray]:
    """:data:`Weights` under the state-dict names all three frameworks use: ``features.{i}.weight|bias``."""
    arrays = {}
    for index, (w, b) in sorted(weights.items()):
        arrays[f"features.{index}.weight"] = np.ascontiguousarray(w, dtype=np.float32)
        arrays[f"features.{index}.bias"] = np.ascontiguousarray(b, dtype=np.float32)
    return arrays


def save_npz(weights: Weights, path: str) -> None:
    """Write :data:`Weights` as a portable ``.npz``, atomically."""
    with atomic_write(path) as handle:
        np.savez(handle, **state_dict(weights))


def parse_weights_spec(spec: str) -> Tuple[str, object]:
    """Split ``--weights`` into ``("imagenet", None)``, ``("random", seed)`` or ``("file", path)``."""
    spec = str(spec).strip()
    if spec == "imagenet":
        return "imagenet", None
    if spec == "random" or spec.startswith("random:"):
        _, _, seed_text = spec.partition(":")
        try:
            seed = int(seed_text) if seed_text else 0
        except ValueError:
            raise MultistyleError(f"--weights: expected random:SEED with an integer SEED, got {spec!r}") from None
        return "random", seed
    if not spec:
        raise MultistyleError("--weights: expected imagenet, random[:SEED] or a weight file, got ''")
    if not os.path.exists(spec):
        raise WeightsError(f"--weights: file {spec!r} does not exist; pass imagenet, random[:SEED] or an existing .npz/.pth/.params/.pdparams file")
    if os.path.isdir(spec):
        raise WeightsError(f"--weights: {spec!r} is a directory; pass a weight file")
    return "file", spec
