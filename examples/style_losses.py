"""Draw docs/style-losses.png: the bundled images stylised with each --style-loss, side by side.

The same run (the d2l preset at 150x225, each loss at its default style
weight) with ``gram``, ``mean-std`` and ``w2``.  Pass ``--weights`` a real
VGG-19 (``imagenet`` or a file) for stylised results; the default is
synthetic weights.

    python examples/style_losses.py --weights random:0
"""

from __future__ import annotations

import os
import sys
import warnings

import multistyle
from multistyle import images
from multistyle.losses import STYLE_LOSSES

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from preserve_color import arguments, contact_sheet  # noqa: E402


def main() -> None:
    args = arguments(__doc__, 150, "style-losses.png")
    size = (150, 225)
    content = images.load_image(os.path.join(HERE, "content.jpg"))
    style = images.load_image(os.path.join(HERE, "style.jpg"))
    panels = [("content", images.resize_pixels(content, size)), ("style", images.resize_pixels(style, size))]
    for loss in STYLE_LOSSES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", multistyle.UntrainedWeightsWarning)
            result = multistyle.transfer(content, style, backend=args.backend, device="cpu", weights=args.weights,
                                         size=size, epochs=args.epochs, style_loss=loss)
        panels.append((f"--style-loss {loss}", result.image / 255.0))
    contact_sheet(panels, size, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
