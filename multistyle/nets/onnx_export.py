"""A style network as an ONNX graph, built once from the layer table (:mod:`.transformer`), for every framework.

The graph takes ``image`` (1x3xHxW float32 RGB in [0, 1], H and W dynamic) and gives ``stylized`` (the same
shape, in [0, 1]).  Inside: ``image x 255``, then per operation of the table ``Pad(mode=reflect)`` and
``Conv`` (``Resize(mode=nearest)`` by 2 before an upsampling convolution), ``InstanceNormalization``,
``Relu`` and ``Add``; at the end the output is cropped to the input's size (``Slice``: a size that is not a
multiple of 4 comes back larger), clipped to 0..255 and divided by 255.  Opset 17; the ``onnx`` package
writes it, and onnxruntime (an independent implementation) is the check and a deployment path.
"""

from __future__ import annotations

from typing import Any, List

import numpy as np

from ..errors import MultistyleError
from ..images import atomic_path
from . import transformer
from .files import StyleNetwork

OPSET = 17


def build_model(network: StyleNetwork) -> Any:
    """The ONNX model of ``network`` (an ``onnx.ModelProto``, checked by ``onnx.checker``)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise MultistyleError("export --onnx: needs the onnx package: pip install 'multistyle[onnx]'") from None

    nodes: List[Any] = []
    initializers = [numpy_helper.from_array(value, name) for name, value in network.params.items()]
    constants = {
        "pixel_scale": np.array(255.0, np.float32), "pixel_low": np.array(0.0, np.float32),
        "pixel_high": np.array(255.0, np.float32), "upsample_scales": np.array([1, 1, 2, 2], np.float32),
        "spatial_axes": np.array([2, 3], np.int64), "origin": np.array([0, 0], np.int64),
        "shape_hw": np.array([2], np.int64), "shape_end": np.array([4], np.int64),
    }
    initializers += [numpy_helper.from_array(value, name) for name, value in constants.items()]
    counter = [0]

    def node(op: str, inputs: List[str], **attributes: object) -> str:
        counter[0] += 1
        out = f"{op.lower()}_{counter[0]}"
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attributes))
        return out

    x = node("Mul", ["image", "pixel_scale"])
    saved: List[str] = []
    for op in transformer.operations(network.width):
        if op.kind == "conv":
            if op.upsample:
                x = node("Resize", [x, "", "upsample_scales"], mode="nearest",
                         coordinate_transformation_mode="asymmetric", nearest_mode="floor")
            pad = op.kernel // 2
            pads = np.array([0, 0, pad, pad, 0, 0, pad, pad], np.int64)
            pads_name = f"{op.name}.pads"
            initializers.append(numpy_helper.from_array(pads, pads_name))
            x = node("Pad", [x, pads_name], mode="reflect")
            x = node("Conv", [x, f"{op.name}.conv2d.weight", f"{op.name}.conv2d.bias"],
                     kernel_shape=[op.kernel, op.kernel], strides=[op.stride, op.stride])
        elif op.kind == "norm":
            x = node("InstanceNormalization", [x, f"{op.name}.weight", f"{op.name}.bias"], epsilon=transformer.EPSILON)
        elif op.kind == "relu":
            x = node("Relu", [x])
        elif op.kind == "save":
            saved.append(x)
        else:
            x = node("Add", [x, saved.pop()])
    hw = node("Slice", [node("Shape", ["image"]), "shape_hw", "shape_end"])
    x = node("Slice", [x, "origin", hw, "spatial_axes"])
    x = node("Clip", [x, "pixel_low", "pixel_high"])
    nodes.append(helper.make_node("Div", [x, "pixel_scale"], ["stylized"], name="stylized"))
    shape = [1, 3, "height", "width"]
    graph = helper.make_graph(nodes, f"multistyle_{transformer.ARCHITECTURE}_w{network.width}",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("stylized", TensorProto.FLOAT, shape)], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="multistyle")
    model.ir_version = min(model.ir_version, 8)  # readable by onnxruntime releases from 1.11 on
    for key in ("style_sha256", "loss_network", "iterations"):
        if key in network.metadata:
            entry = model.metadata_props.add()
            entry.key, entry.value = key, network.metadata[key]
    onnx.checker.check_model(model)
    return model


def export_onnx(network: StyleNetwork, path: str) -> None:
    """Write ``network`` as an ONNX file at ``path``, atomically."""
    if not path.lower().endswith(".onnx"):
        raise MultistyleError(f"--onnx: expected a .onnx file name, got {path!r}")
    model = build_model(network)
    with atomic_path(path) as temp:
        with open(temp, "wb") as handle:
            handle.write(model.SerializeToString())
