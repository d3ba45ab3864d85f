"""Arbitrary style transfer: Huang & Belongie's AdaIN (2017), written once over the backend protocol.

A picture is encoded by VGG-19 up to ``relu4_1``; its features take the style's per-channel mean and
standard deviation (adaptive instance normalisation); a decoder that mirrors the encoder turns them back
into a picture.  Any style image works at run time: only the decoder is trained.

The layout is that of the public PyTorch port of the authors' code, whose two files are ``nn.Sequential``
state dicts keyed by module index (``"2.weight"``):

* the **encoder** (``vgg_normalised.pth``), converted from the authors' Lua model: a 1x1 convolution of RGB
  in [0, 1] (index 0), then VGG-19's convolutions, each after one pixel of reflection padding, with ReLUs,
  and 2x2 max pools in ceil mode (an odd last row or column pooled alone).  So it is not torchvision's
  VGG-19 (zero padding, floor-mode pools, ImageNet-normalised input).  The file goes on to ``relu5_4``;
  AdaIN reads it up to ``relu4_1`` (index 30).  :func:`encoder_from_vgg` builds the same layout from any
  VGG-19 that multistyle reads: the 1x1 convolution is then ImageNet's normalisation.
* the **decoder** (``decoder.pth``): the encoder backwards, each pool replaced by nearest-neighbour x2
  upsampling, reflection padding, no normalisation, no ReLU after the last convolution (to 3 channels,
  RGB in about [0, 1]).

multistyle's own files keep these indices under ``encoder.`` and ``decoder.``, one file holding both.

Statistics are those of the port's ``calc_mean_std``: per image and channel, the mean, and the square root
of the **unbiased** variance plus 1e-5 (:func:`statistics`); they serve both the transform and the training
loss.  multistyle's ``mean-std`` style loss (:mod:`multistyle.losses`) takes the biased variance.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ..errors import MultistyleError, WeightsError
from ..images import RGB_MEAN, RGB_STD
from ..vgg import LAYER_BY_NAME, LAYERS, Weights, random_weights

ARCHITECTURE = "adain2017"
EPSILON = 1e-5  # the port's calc_mean_std: added to the unbiased variance
LAST = "relu4_1"  # the encoder's output, where the statistics are swapped
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")  # the training loss's mean/std layers
LAST_INDEX = LAYER_BY_NAME[LAST].index  # in torchvision's numbering (vgg.LAYERS)


def _encoder_table() -> List[Tuple[int, Any]]:
    """``(module index in the normalised file, VGG-19 layer)`` up to ``relu4_1``: each convolution comes after
    a reflection-padding module, so it sits one index later than the padding."""
    table, index = [], 1
    for layer in LAYERS[: LAST_INDEX + 1]:
        if layer.kind == "conv":
            index += 1  # the padding module before it
        table.append((index, layer))
        index += 1
    return table


ENCODER = _encoder_table()  # conv1_1 at 2, pool1 at 7, conv4_1 at 29, relu4_1 at 30


class DecoderOp(NamedTuple):
    """One step of the decoder: ``up`` (nearest x2) or ``conv`` (module ``index``, 3x3 after reflection
    padding, ``relu`` after it or not)."""

    kind: str
    index: int = 0
    in_channels: int = 0
    out_channels: int = 0
    relu: bool = True


def _decoder_table() -> List[DecoderOp]:
    plan = [(512, 256), "up", (256, 256), (256, 256), (256, 256), (256, 128), "up", (128, 128), (128, 64), "up",
            (64, 64), (64, 3)]
    ops, index = [], 0
    for step in plan:
        if step == "up":
            ops.append(DecoderOp("up"))
            index += 1
        else:  # padding at index, convolution at index + 1, ReLU at index + 2
            cin, cout = step
            ops.append(DecoderOp("conv", index + 1, cin, cout, relu=cout != 3))
            index += 3
    return ops


DECODER = _decoder_table()  # convolutions at 1, 5, 8, 11, 14, 18, 21, 25, 28


def encoder_shapes() -> Dict[str, Tuple[int, ...]]:
    """The encoder's parameters under multistyle's names (``encoder.N.weight``), in the file's order."""
    shapes: Dict[str, Tuple[int, ...]] = {"encoder.0.weight": (3, 3, 1, 1), "encoder.0.bias": (3,)}
    for index, layer in ENCODER:
        if layer.kind == "conv":
            shapes[f"encoder.{index}.weight"] = (layer.out_channels, layer.in_channels, 3, 3)
            shapes[f"encoder.{index}.bias"] = (layer.out_channels,)
    return shapes


def decoder_shapes() -> Dict[str, Tuple[int, ...]]:
    """The decoder's parameters under multistyle's names (``decoder.N.weight``), in the file's order."""
    shapes: Dict[str, Tuple[int, ...]] = {}
    for op in DECODER:
        if op.kind == "conv":
            shapes[f"decoder.{op.index}.weight"] = (op.out_channels, op.in_channels, 3, 3)
            shapes[f"decoder.{op.index}.bias"] = (op.out_channels,)
    return shapes


def init_decoder(seed: int = 0) -> Dict[str, np.ndarray]:
    """A fresh float32 decoder: torch's default ``nn.Conv2d`` init (uniform in ``±1/sqrt(fan_in)``, weight then
    bias, layer by layer) from a seeded NumPy generator, so every framework starts from the same numbers."""
    rng = np.random.default_rng(seed)
    params: Dict[str, np.ndarray] = {}
    for name, shape in decoder_shapes().items():
        fan_in = 9 * (shape[1] if len(shape) == 4 else params[name[: -len("bias")] + "weight"].shape[1])
        bound = 1.0 / np.sqrt(fan_in)
        params[name] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
    return params


def encoder_from_vgg(weights: Weights) -> Dict[str, np.ndarray]:
    """The encoder from torchvision-layout VGG-19 weights (what ``--weights`` reads for the optimisation): its
    convolutions, after a 1x1 convolution that is ImageNet's normalisation of RGB in [0, 1]."""
    params = {"encoder.0.weight": np.diag(1.0 / RGB_STD).astype(np.float32).reshape(3, 3, 1, 1),
              "encoder.0.bias": (-RGB_MEAN / RGB_STD).astype(np.float32)}
    for index, layer in ENCODER:
        if layer.kind == "conv":
            if layer.index not in weights:
                raise WeightsError(f"weights: no {layer.name} (features.{layer.index}); the AdaIN encoder needs "
                                   f"VGG-19 up to {LAST}")
            weight, bias = weights[layer.index]
            params[f"encoder.{index}.weight"] = np.ascontiguousarray(weight, np.float32)
            params[f"encoder.{index}.bias"] = np.ascontiguousarray(bias, np.float32)
    return params


def random_encoder(seed: int) -> Dict[str, np.ndarray]:
    """An untrained encoder (tests, offline smoke runs): ``--weights random:SEED``'s VGG-19 in this layout."""
    return encoder_from_vgg(random_weights(seed, LAST_INDEX))


def _strip(raw: Mapping[str, np.ndarray], prefix: str) -> Dict[str, np.ndarray]:
    """Keys without a ``module.``/``vgg.``/``encoder.``-style prefix before the module index."""
    out: Dict[str, np.ndarray] = {}
    for key, value in raw.items():
        key = str(key)
        head, _, rest = key.partition(".")
        out[rest if head in ("module", prefix) and rest[:1].isdigit() else key] = np.asarray(value)
    return out


def is_normalised_encoder(raw: Mapping[str, np.ndarray]) -> bool:
    """Whether a state dict has the normalised VGG-19's layout: a 1x1 convolution of 3 channels at index 0 and
    the first 3x3 convolution at index 2 (torchvision's VGG-19 has its first convolution at index 0)."""
    keys = _strip(raw, "encoder")
    first, second = keys.get("0.weight"), keys.get("2.weight")
    return (first is not None and tuple(first.shape) == (3, 3, 1, 1)
            and second is not None and tuple(second.shape) == (64, 3, 3, 3))


def is_decoder(raw: Mapping[str, np.ndarray]) -> bool:
    """Whether a state dict has the decoder's layout: a 3x3 convolution from 512 to 256 channels at index 1."""
    first = _strip(raw, "decoder").get("1.weight")
    return first is not None and tuple(first.shape) == (256, 512, 3, 3)


def _take(raw: Mapping[str, np.ndarray], shapes: Mapping[str, Tuple[int, ...]], prefix: str, source: str,
          what: str) -> Dict[str, np.ndarray]:
    keys = _strip(raw, prefix)
    params: Dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        key = name[len(prefix) + 1:]
        if key not in keys:
            raise WeightsError(f"{source}: not a complete {what}: '{key}' is missing")
        if tuple(keys[key].shape) != shape:
            raise WeightsError(f"{source}: '{key}' has shape {tuple(keys[key].shape)}, expected {shape} for the "
                               f"{what}")
        params[name] = np.ascontiguousarray(keys[key], np.float32)
    return params


def encoder_from_normalised(raw: Mapping[str, np.ndarray], source: str) -> Dict[str, np.ndarray]:
    """The encoder from a normalised VGG-19 state dict (``vgg_normalised.pth``'s keys), checked to ``relu4_1``."""
    return _take(raw, encoder_shapes(), "encoder", source, "normalised VGG-19 (AdaIN's encoder)")


def decoder_from_state(raw: Mapping[str, np.ndarray], source: str) -> Dict[str, np.ndarray]:
    """The decoder from a state dict (``decoder.pth``'s keys), checked."""
    return _take(raw, decoder_shapes(), "decoder", source, "AdaIN decoder")


# -- the passes ------------------------------------------------------------------------------------------
def encode(B: Any, params: Mapping[str, Any], x: Any, names: Sequence[str] = (LAST,)) -> Dict[str, Any]:
    """The encoder's outputs at ``names`` for ``x`` (RGB in [0, 1], the backend's layers' layout)."""
    relu, pool = B.relu(), B.pool("max", ceil=True)
    x = B.conv2d(x, params["encoder.0.weight"], params["encoder.0.bias"])
    found: Dict[str, Any] = {}
    deepest = max(LAYER_BY_NAME[name].index for name in names)
    for index, layer in ENCODER[: deepest + 1]:
        if layer.kind == "conv":
            x = B.conv2d(x, params[f"encoder.{index}.weight"], params[f"encoder.{index}.bias"], reflect=1)
        elif layer.kind == "relu":
            x = relu(x)
        else:
            x = pool(x)
        if layer.name in names:
            found[layer.name] = x
    return found


def decode(B: Any, params: Mapping[str, Any], t: Any) -> Any:
    """The decoder's picture (RGB in about [0, 1], layers' layout) for ``relu4_1`` features ``t``: 8 times their
    size (a picture whose sides are not multiples of 8 comes back up to 7 pixels larger)."""
    relu = B.relu()
    for op in DECODER:
        if op.kind == "up":
            t = B.upsample_nearest(t, 2)
            continue
        t = B.conv2d(t, params[f"decoder.{op.index}.weight"], params[f"decoder.{op.index}.bias"], reflect=1)
        if op.relu:
            t = relu(t)
    return t


def feature_size(height: int, width: int) -> Tuple[int, int]:
    """``relu4_1``'s size for a picture: three ceil-mode pools, ``ceil(side / 8)``."""
    return -(-height // 8), -(-width // 8)


def decoder_activation_elements(height: int, width: int) -> int:
    """Floats the decoder's pass creates for a picture of ``height`` x ``width`` (padded and upsampled inputs
    included): what a backward pass keeps, for the memory plan of training."""
    h, w = feature_size(height, width)
    total, c = 0, 512
    for op in DECODER:
        if op.kind == "up":
            h, w = 2 * h, 2 * w
            total += c * h * w
            continue
        total += c * (h + 2) * (w + 2) + op.out_channels * h * w * (2 if op.relu else 1)
        c = op.out_channels
    return total


def flops(height: int, width: int, style: Optional[Tuple[int, int]] = None) -> int:
    """Multiply-adds x 2 of one stylisation's convolutions: the encoder over the picture and over the style
    (``style``'s size; the picture's by default), the decoder back to the picture's size."""
    def encoder(h: int, w: int) -> int:
        total = 2 * h * w * 3 * 3  # the 1x1 convolution
        for _, layer in ENCODER:
            if layer.kind == "pool":
                h, w = -(-h // 2), -(-w // 2)
            elif layer.kind == "conv":
                total += 2 * h * w * layer.out_channels * layer.in_channels * 9
        return total

    h, w = feature_size(height, width)
    decoder = 0
    for op in DECODER:
        if op.kind == "up":
            h, w = 2 * h, 2 * w
        else:
            decoder += 2 * h * w * op.out_channels * op.in_channels * 9
    return encoder(height, width) + encoder(*(style or (height, width))) + decoder


def decoder_parameter_count() -> int:
    """Floats of the decoder's parameters (3,505,219)."""
    return int(sum(np.prod(shape) for shape in decoder_shapes().values()))


# -- the statistics and the transform -----------------------------------------------------------------------
def rows(B: Any, x: Any) -> Tuple[Any, Tuple[int, int, int, int]]:
    """A map in the layers' layout as a ``(N·C, H·W)`` matrix (one row per image and channel), and its NCHW shape."""
    nchw = B.out_of_layers(x)
    n, c, h, w = B.shape(nchw)
    return B.reshape(nchw, (n * c, h * w)), (n, c, h, w)


def from_rows(B: Any, matrix: Any, shape: Sequence[int]) -> Any:
    """:func:`rows` undone: the matrix as a map in the layers' layout."""
    return B.into_layers(B.reshape(matrix, tuple(shape)))


def statistics(B: Any, matrix: Any, region: Optional[np.ndarray] = None) -> Tuple[Any, Any]:
    """Each row's mean and standard deviation, two ``(rows, 1)`` columns: the port's ``calc_mean_std``, the
    square root of the unbiased variance plus :data:`EPSILON`.

    ``region`` (``(H·W,)`` weights in [0, 1]) takes them over a region instead: a weighted mean, and the
    weighted squared deviations over ``count - 1`` (``count`` the weights' sum; at least 1, so that a region
    of one position has a variance of 0 rather than none)."""
    n = B.shape(matrix)[1]
    weights = np.ones(n, np.float64) if region is None else np.asarray(region, np.float64).reshape(n)
    count = float(weights.sum())
    mean = B.matmul(matrix, B.asarray((weights / count).astype(np.float32).reshape(n, 1)))
    deviations = B.matmul(B.square(matrix - mean), B.asarray(weights.astype(np.float32).reshape(n, 1)))
    return mean, B.sqrt(deviations / max(count - 1.0, 1.0) + EPSILON)


def adain(B: Any, content: Any, style: Any) -> Any:
    """Adaptive instance normalisation of ``content`` to ``style`` (maps in the layers' layout, as many images
    each: image ``i`` takes the statistics of style ``i``)."""
    matrix, shape = rows(B, content)
    mean, std = statistics(B, matrix)
    style_mean, style_std = statistics(B, rows(B, style)[0])
    return from_rows(B, (matrix - mean) / std * style_std + style_mean, shape)


def stylised_features(B: Any, content: Any, styles: Sequence[Any], blend: Optional[Sequence[float]] = None,
                      masks: Optional[Sequence[np.ndarray]] = None, alpha: float = 1.0) -> Any:
    """The features the decoder turns into the picture: one content map (batch 1) given the statistics of
    ``styles`` (each a map of batch 1, any size).

    * ``blend``: the styles' weights (summing to 1): their means and standard deviations are blended, as the
      port's interpolation does (a weighted sum of AdaIN outputs is AdaIN with the blended statistics);
    * ``masks`` (one per style, ``(h, w)`` in [0, 1] at the content map's size): style ``k`` applies where mask
      ``k`` is white, with the content's statistics taken over that region.  Where masks overlap they share a
      position (each weighted by its share once they sum past 1); where none covers it the content's own
      features stay;
    * ``alpha``: ``alpha · stylised + (1 − alpha) · content``.
    """
    matrix, shape = rows(B, content)
    style_stats = [statistics(B, rows(B, style)[0]) for style in styles]
    if masks is None:
        weights = list(blend) if blend is not None else [1.0 / len(styles)] * len(styles)
        mean, std = statistics(B, matrix)
        style_mean = sum_weighted([(w, s[0]) for w, s in zip(weights, style_stats)])
        style_std = sum_weighted([(w, s[1]) for w, s in zip(weights, style_stats)])
        out = (matrix - mean) / std * style_std + style_mean
    else:
        flat = [np.asarray(mask, np.float64).reshape(-1) for mask in masks]
        total = np.sum(flat, axis=0)
        share = 1.0 / np.maximum(total, 1.0)  # overlapping masks past 1 share the position
        out = matrix * B.asarray((1.0 - total * share).astype(np.float32).reshape(1, -1))
        for mask, (style_mean, style_std) in zip(flat, style_stats):
            if not mask.sum() > 0:
                raise MultistyleError(f"--content-masks: a mask covers nothing at {LAST} ({shape[2]}x{shape[3]}); "
                                      f"make its white region larger")
            mean, std = statistics(B, matrix, mask)
            stylised = (matrix - mean) / std * style_std + style_mean
            out = out + stylised * B.asarray((mask * share).astype(np.float32).reshape(1, -1))
    if alpha != 1.0:
        out = alpha * out + (1.0 - alpha) * matrix
    return from_rows(B, out, shape)


def sum_weighted(pairs: Sequence[Tuple[float, Any]]) -> Any:
    """``Σ w · t`` over ``(w, t)`` pairs, skipping weights of 0 (a blend of ``1,0`` is the first style's alone)."""
    kept = [(w, t) for w, t in pairs if w]
    out = kept[0][1] if kept[0][0] == 1 else kept[0][0] * kept[0][1]
    for weight, tensor in kept[1:]:
        out = out + weight * tensor
    return out


def mask_at_features(mask: np.ndarray) -> np.ndarray:
    """A mask at the picture's size (``(H, W)`` in [0, 1]) taken to ``relu4_1``'s: three 2x2 averages, an odd
    last row or column averaged alone, as the encoder's ceil-mode pools take it."""
    out = np.asarray(mask, np.float64)
    for _ in range(3):
        h, w = out.shape
        padded = np.pad(out, ((0, h % 2), (0, w % 2)), mode="edge")
        out = padded.reshape(-(-h // 2), 2, -(-w // 2), 2).mean(axis=(1, 3))
    return out


def check_alpha(alpha: float) -> float:
    """``--alpha`` checked: a number in [0, 1]."""
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise MultistyleError(f"--alpha: expected a number in [0, 1], got {alpha!r}") from None
    if not 0.0 <= value <= 1.0:
        raise MultistyleError(f"--alpha: expected a number in [0, 1] (1: all style, 0: the content's own "
                              f"features), got {alpha!r}")
    return value
