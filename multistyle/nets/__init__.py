"""Style networks that are trained once and stylise in one pass: the layer table, parameters, files, ONNX.

* :mod:`.transformer` -- Johnson et al.'s network as a table of operations over the backend protocol;
* :mod:`.files` -- :class:`StyleNetwork`: safetensors files, and PyTorch examples' ``.pth`` state dicts;
* :mod:`.stylize` -- one forward pass on any backend (``multistyle run --model``);
* :mod:`.onnx_export` -- the same table as an ONNX graph (``multistyle export --onnx``).
"""

from .files import StyleNetwork

__all__ = ["StyleNetwork"]
