"""The feed-forward style network of Johnson et al. (2016), written once as a table of operations.

The layout is that of PyTorch's examples (``fast_neural_style``'s ``TransformerNet``), whose parameter
names are this module's, so that a published state dict needs no renaming:

* ``conv1`` 9x9 to ``width`` channels, ``conv2`` and ``conv3`` 3x3 with stride 2 to 2x and 4x ``width``;
* five residual blocks ``res1..res5`` of two 3x3 convolutions each;
* ``deconv1`` and ``deconv2``: nearest-neighbour x2 upsampling, each followed by a 3x3 convolution, back
  to 2x and 1x ``width``; ``deconv3`` 9x9 to 3 channels;
* reflection padding before every convolution (``kernel // 2`` on each side), an affine instance
  normalisation (``in1..in5``, and ``resN.in1``/``resN.in2``) after every convolution but the last, a ReLU
  after those outside the residual blocks' second halves; pixels 0..255 in and out.

:data:`OPS` (from :func:`operations`) is the table; :func:`forward` walks it over the backend protocol
(``conv2d``, ``instance_norm``, ``upsample_nearest``, ``relu``) and the ONNX exporter walks it once more.
Parameters are a flat mapping ``name -> array`` (OIHW convolution weights); :func:`init_parameters` draws
them as torch's ``nn.Conv2d`` does by default (uniform in ``±1/sqrt(fan_in)``), with instance norms at
scale 1 and shift 0, from a seeded NumPy generator, so every framework starts from the same numbers.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, NamedTuple, Tuple

import numpy as np

from ..errors import MultistyleError

#: The published network's first width; ``--width 16`` makes one of about a quarter of the cost.
DEFAULT_WIDTH = 32
RESIDUAL_BLOCKS = 5
ARCHITECTURE = "johnson2016"
EPSILON = 1e-5  # torch's InstanceNorm2d, which the published files were trained with


class Op(NamedTuple):
    """One operation: ``conv`` (name, in, out, kernel, stride, upsample first), ``norm`` (name, channels),
    ``relu``, ``save`` (remember the input of a residual block) or ``add`` (add what was saved)."""

    kind: str
    name: str = ""
    in_channels: int = 0
    out_channels: int = 0
    kernel: int = 0
    stride: int = 1
    upsample: bool = False


def operations(width: int = DEFAULT_WIDTH) -> List[Op]:
    """The network as a flat list of operations, for a first layer of ``width`` channels."""
    if width < 1:
        raise MultistyleError(f"--width: expected a positive number of channels, got {width}")
    w1, w2, w4 = width, 2 * width, 4 * width
    ops: List[Op] = []

    def conv(name: str, cin: int, cout: int, kernel: int, stride: int = 1, upsample: bool = False,
             norm: str = "", relu: bool = True) -> None:
        ops.append(Op("conv", name, cin, cout, kernel, stride, upsample))
        if norm:
            ops.append(Op("norm", norm, cout, cout))
        if relu:
            ops.append(Op("relu"))

    conv("conv1", 3, w1, 9, norm="in1")
    conv("conv2", w1, w2, 3, 2, norm="in2")
    conv("conv3", w2, w4, 3, 2, norm="in3")
    for block in range(1, RESIDUAL_BLOCKS + 1):
        ops.append(Op("save"))
        conv(f"res{block}.conv1", w4, w4, 3, norm=f"res{block}.in1")
        conv(f"res{block}.conv2", w4, w4, 3, norm=f"res{block}.in2", relu=False)
        ops.append(Op("add"))
    conv("deconv1", w4, w2, 3, upsample=True, norm="in4")
    conv("deconv2", w2, w1, 3, upsample=True, norm="in5")
    conv("deconv3", w1, 3, 9, relu=False)
    return ops


def parameter_shapes(width: int = DEFAULT_WIDTH) -> Dict[str, Tuple[int, ...]]:
    """Every parameter's name and shape, in the table's order (the published state dict's names)."""
    shapes: Dict[str, Tuple[int, ...]] = {}
    for op in operations(width):
        if op.kind == "conv":
            shapes[f"{op.name}.conv2d.weight"] = (op.out_channels, op.in_channels, op.kernel, op.kernel)
            shapes[f"{op.name}.conv2d.bias"] = (op.out_channels,)
        elif op.kind == "norm":
            shapes[f"{op.name}.weight"] = (op.out_channels,)
            shapes[f"{op.name}.bias"] = (op.out_channels,)
    return shapes


def init_parameters(width: int = DEFAULT_WIDTH, seed: int = 0) -> Dict[str, np.ndarray]:
    """Fresh float32 parameters: torch's default convolution init from a seeded NumPy generator, norms 1 and 0."""
    rng = np.random.default_rng(seed)
    params: Dict[str, np.ndarray] = {}
    shapes = parameter_shapes(width)
    for name, shape in shapes.items():
        if ".conv2d." in name:  # the weight's and the bias's bound: 1/sqrt(in x k x k) of the weight
            _, cin, kh, kw = shapes[name.rsplit(".", 1)[0] + ".weight"]
            bound = 1.0 / np.sqrt(cin * kh * kw)
            params[name] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
        else:
            params[name] = (np.ones if name.endswith(".weight") else np.zeros)(shape, np.float32)
    return params


def width_of(params: Mapping[str, Any]) -> int:
    """The first layer's channels of a parameter mapping (``conv1.conv2d.weight``'s outputs)."""
    return int(params["conv1.conv2d.weight"].shape[0])


def check_parameters(params: Mapping[str, np.ndarray], source: str) -> int:
    """The width of a complete, well-shaped parameter mapping; a one-line error naming the first fault otherwise."""
    weight = params.get("conv1.conv2d.weight")
    if weight is None or np.ndim(weight) != 4:
        raise MultistyleError(f"{source}: not a style network: it has no 4-D 'conv1.conv2d.weight' (found "
                              f"{', '.join(sorted(params)[:3]) or 'no tensors'}"
                              f"{', ...' if len(params) > 3 else ''})")
    width = width_of(params)
    for name, shape in parameter_shapes(width).items():
        if name not in params:
            raise MultistyleError(f"{source}: not a complete style network: '{name}' is missing")
        if tuple(params[name].shape) != shape:
            raise MultistyleError(f"{source}: '{name}' has shape {tuple(params[name].shape)}, expected {shape} "
                                  f"for a network of width {width}")
    return width


def forward(B: Any, params: Mapping[str, Any], x: Any) -> Any:
    """The network's output for ``x`` (pixels 0..255, in the backend's layer layout: ``B.into_layers``)."""
    relu = B.relu()
    saved: List[Any] = []
    for op in operations(width_of(params)):
        if op.kind == "conv":
            if op.upsample:
                x = B.upsample_nearest(x, 2)
            x = B.conv2d(x, params[f"{op.name}.conv2d.weight"], params[f"{op.name}.conv2d.bias"],
                         stride=op.stride, reflect=op.kernel // 2)
        elif op.kind == "norm":
            x = B.instance_norm(x, params[f"{op.name}.weight"], params[f"{op.name}.bias"], EPSILON)
        elif op.kind == "relu":
            x = relu(x)
        elif op.kind == "save":
            saved.append(x)
        else:
            x = x + saved.pop()
    return x


def activation_elements(width: int, height: int, image_width: int) -> int:
    """Floats one image's pass creates, op by op (padded and upsampled inputs included): what a backward pass
    keeps, for the memory plan of training."""
    total, c, h, w = 0, 3, height, image_width
    for op in operations(width):
        if op.kind == "conv":
            if op.upsample:
                h, w = 2 * h, 2 * w
                total += c * h * w
            pad = op.kernel // 2
            total += c * (h + 2 * pad) * (w + 2 * pad)
            h, w, c = -(-h // op.stride), -(-w // op.stride), op.out_channels
            total += c * h * w
        elif op.kind in ("norm", "relu", "add"):
            total += c * h * w
    return total


def parameter_count(width: int = DEFAULT_WIDTH) -> int:
    """Floats of all parameters (1,679,235 at the published width)."""
    total = 0
    for shape in parameter_shapes(width).values():
        count = 1
        for dim in shape:
            count *= dim
        total += count
    return total


def flops(width: int, height: int, image_width: int) -> int:
    """Multiply-adds x 2 of the convolutions at this image size (what a FLOP rate is measured against)."""
    total, h, w = 0, height, image_width
    for op in operations(width):
        if op.kind != "conv":
            continue
        if op.upsample:
            h, w = 2 * h, 2 * w
        h, w = -(-h // op.stride), -(-w // op.stride)
        total += 2 * h * w * op.out_channels * op.in_channels * op.kernel * op.kernel
    return total
