"""Trained networks as ONNX graphs, built once from their layer tables, for every framework.

* A style network (:mod:`.transformer`) takes ``image`` (1x3xHxW float32 RGB in [0, 1], H and W dynamic) and
  gives ``stylized`` (the same shape, in [0, 1]).  Inside: ``image x 255``, then per operation of the table
  ``Pad(mode=reflect)`` and ``Conv`` (``Resize(mode=nearest)`` by 2 before an upsampling convolution),
  ``InstanceNormalization``, ``Relu`` and ``Add``; at the end the output is cropped to the input's size
  (``Slice``: a size that is not a multiple of 4 comes back larger), clipped to 0..255 and divided by 255.
* An AdaIN network (:mod:`.adain`) takes ``content`` and ``style`` (each 1x3xHxW float32 RGB in [0, 1], sizes
  dynamic and independent) and ``alpha`` (a float32 scalar in [0, 1]), and gives ``stylized`` (the content's
  shape, in [0, 1]).  Inside: the encoder twice over the same initializers (``MaxPool`` with ``ceil_mode``),
  the statistics as the port's ``calc_mean_std`` (``ReduceMean``, and the squared deviations' ``ReduceSum``
  over ``H·W − 1``), ``alpha`` mixing, the decoder, a crop, a clip to [0, 1].

Opset 17; the ``onnx`` package writes them, and onnxruntime (an independent implementation) is the check and
a deployment path.
"""

from __future__ import annotations

from typing import Any, Dict, List, Union

import numpy as np

from ..errors import MultistyleError
from ..images import atomic_path
from . import adain, transformer
from .arbitrary import ArbitraryNetwork
from .files import StyleNetwork

OPSET = 17


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise MultistyleError("export --onnx: needs the onnx package: pip install 'multistyle[onnx]'") from None
    return onnx


class _Graph:
    """Nodes and initializers as they are added, named in order; :meth:`model` closes them into a checked model."""

    def __init__(self, params: Dict[str, np.ndarray]) -> None:
        from onnx import numpy_helper

        self.nodes: List[Any] = []
        self.initializers = [numpy_helper.from_array(value, name) for name, value in params.items()]
        self.count = 0

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: List[str], output: str = "", **attributes: object) -> str:
        from onnx import helper

        self.count += 1
        out = output or f"{op.lower()}_{self.count}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attributes))
        return out

    def reflect_conv(self, x: str, weight: str, bias: str, kernel: int, stride: int = 1) -> str:
        """``Pad(mode=reflect)`` by ``kernel // 2`` on each side, then ``Conv``."""
        pad = kernel // 2
        if pad:
            pads = f"pads_{pad}"
            if not any(init.name == pads for init in self.initializers):
                self.const(pads, np.array([0, 0, pad, pad, 0, 0, pad, pad], np.int64))
            x = self.node("Pad", [x, pads], mode="reflect")
        return self.node("Conv", [x, weight, bias], kernel_shape=[kernel, kernel], strides=[stride, stride])

    def crop_like(self, x: str, like: str) -> str:
        """``x`` cut to the height and width of ``like`` (its top-left part)."""
        hw = self.node("Slice", [self.node("Shape", [like]), "shape_hw", "shape_end"])
        return self.node("Slice", [x, "origin", hw, "spatial_axes"])

    def model(self, name: str, inputs: List[Any], outputs: List[Any], metadata: Dict[str, str]) -> Any:
        onnx = _onnx()
        from onnx import helper

        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="multistyle")
        model.ir_version = min(model.ir_version, 8)  # readable by onnxruntime releases from 1.11 on
        for key, value in metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(model)
        return model


_CROP = {"spatial_axes": np.array([2, 3], np.int64), "origin": np.array([0, 0], np.int64),
         "shape_hw": np.array([2], np.int64), "shape_end": np.array([4], np.int64)}


def build_model(network: Union[StyleNetwork, ArbitraryNetwork]) -> Any:
    """The ONNX model of ``network`` (an ``onnx.ModelProto``, checked by ``onnx.checker``)."""
    _onnx()
    if isinstance(network, ArbitraryNetwork):
        return _build_arbitrary(network)
    from onnx import TensorProto, helper

    g = _Graph(network.params)
    for name, value in {"pixel_scale": np.array(255.0, np.float32), "pixel_low": np.array(0.0, np.float32),
                        "pixel_high": np.array(255.0, np.float32),
                        "upsample_scales": np.array([1, 1, 2, 2], np.float32), **_CROP}.items():
        g.const(name, value)
    x = g.node("Mul", ["image", "pixel_scale"])
    saved: List[str] = []
    for op in transformer.operations(network.width):
        if op.kind == "conv":
            if op.upsample:
                x = g.node("Resize", [x, "", "upsample_scales"], mode="nearest",
                           coordinate_transformation_mode="asymmetric", nearest_mode="floor")
            x = g.reflect_conv(x, f"{op.name}.conv2d.weight", f"{op.name}.conv2d.bias", op.kernel, op.stride)
        elif op.kind == "norm":
            x = g.node("InstanceNormalization", [x, f"{op.name}.weight", f"{op.name}.bias"],
                       epsilon=transformer.EPSILON)
        elif op.kind == "relu":
            x = g.node("Relu", [x])
        elif op.kind == "save":
            saved.append(x)
        else:
            x = g.node("Add", [x, saved.pop()])
    x = g.node("Clip", [g.crop_like(x, "image"), "pixel_low", "pixel_high"])
    g.node("Div", [x, "pixel_scale"], output="stylized")
    shape = [1, 3, "height", "width"]
    metadata = {key: network.metadata[key] for key in ("style_sha256", "loss_network", "iterations")
                if key in network.metadata}
    return g.model(f"multistyle_{transformer.ARCHITECTURE}_w{network.width}",
                   [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
                   [helper.make_tensor_value_info("stylized", TensorProto.FLOAT, shape)], metadata)


def _build_arbitrary(network: ArbitraryNetwork) -> Any:
    from onnx import TensorProto, helper

    g = _Graph(network.params)
    for name, value in {"one": np.array(1.0, np.float32), "zero": np.array(0.0, np.float32),
                        "epsilon": np.array(adain.EPSILON, np.float32),
                        "upsample_scales": np.array([1, 1, 2, 2], np.float32), **_CROP}.items():
        g.const(name, value)

    def encode(x: str) -> str:
        x = g.node("Conv", [x, "encoder.0.weight", "encoder.0.bias"], kernel_shape=[1, 1])
        for index, layer in adain.ENCODER:
            if layer.kind == "conv":
                x = g.reflect_conv(x, f"encoder.{index}.weight", f"encoder.{index}.bias", 3)
            elif layer.kind == "relu":
                x = g.node("Relu", [x])
            else:
                x = g.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)
        return x

    def statistics(f: str) -> "tuple[str, str, str]":
        """The centred map, the mean and the std (sqrt of the unbiased variance + eps) per channel."""
        mean = g.node("ReduceMean", [f], axes=[2, 3], keepdims=1)
        centred = g.node("Sub", [f, mean])
        squares = g.node("ReduceSum", [g.node("Mul", [centred, centred]), "spatial_axes"], keepdims=1)
        count = g.node("Cast", [g.node("ReduceProd", [g.node("Slice", [g.node("Shape", [f]), "shape_hw",
                                                                       "shape_end"])], keepdims=0)],
                       to=TensorProto.FLOAT)
        divisor = g.node("Max", [g.node("Sub", [count, "one"]), "one"])
        std = g.node("Sqrt", [g.node("Add", [g.node("Div", [squares, divisor]), "epsilon"])])
        return centred, mean, std

    content = encode("content")
    centred, _, std = statistics(content)
    _, style_mean, style_std = statistics(encode("style"))
    t = g.node("Add", [g.node("Mul", [g.node("Div", [centred, std]), style_std]), style_mean])
    t = g.node("Add", [g.node("Mul", [t, "alpha"]), g.node("Mul", [content, g.node("Sub", ["one", "alpha"])])])
    for op in adain.DECODER:
        if op.kind == "up":
            t = g.node("Resize", [t, "", "upsample_scales"], mode="nearest",
                       coordinate_transformation_mode="asymmetric", nearest_mode="floor")
            continue
        t = g.reflect_conv(t, f"decoder.{op.index}.weight", f"decoder.{op.index}.bias", 3)
        if op.relu:
            t = g.node("Relu", [t])
    g.node("Clip", [g.crop_like(t, "content"), "zero", "one"], output="stylized")
    image = [1, 3, "height", "width"]
    metadata = {key: network.metadata[key] for key in ("architecture", "encoder", "iterations")
                if key in network.metadata}
    return g.model(f"multistyle_{adain.ARCHITECTURE}",
                   [helper.make_tensor_value_info("content", TensorProto.FLOAT, image),
                    helper.make_tensor_value_info("style", TensorProto.FLOAT, [1, 3, "style_height", "style_width"]),
                    helper.make_tensor_value_info("alpha", TensorProto.FLOAT, [])],
                   [helper.make_tensor_value_info("stylized", TensorProto.FLOAT, image)], metadata)


def export_onnx(network: Union[StyleNetwork, ArbitraryNetwork], path: str) -> None:
    """Write ``network`` as an ONNX file at ``path``, atomically."""
    if not path.lower().endswith(".onnx"):
        raise MultistyleError(f"--onnx: expected a .onnx file name, got {path!r}")
    model = build_model(network)
    with atomic_path(path) as temp:
        with open(temp, "wb") as handle:
            handle.write(model.SerializeToString())
