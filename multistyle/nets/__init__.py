"""Style networks that are trained once and stylise in one pass: the layer table, parameters, files, ONNX.

* :mod:`.transformer` -- Johnson et al.'s network as a table of operations over the backend protocol;
* :mod:`.files` -- :class:`StyleNetwork`: safetensors files, and PyTorch examples' ``.pth`` state dicts;
* :mod:`.stylize` -- one forward pass on any backend (``multistyle run --model``);
* :mod:`.onnx_export` -- the same tables as ONNX graphs (``multistyle export --onnx``);
* :mod:`.adain`, :mod:`.arbitrary`, :mod:`.adain_training` -- Huang & Belongie's AdaIN (any style at run time):
  the encoder and decoder tables and the transform, the files and one stylisation, the decoder's training.
"""

from .arbitrary import ArbitraryNetwork
from .files import StyleNetwork

__all__ = ["ArbitraryNetwork", "StyleNetwork"]
