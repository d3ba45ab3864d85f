"""Draw docs/preserve-color.png: what --preserve-color histogram and luminance do to the bundled images.

Panels: the content image, the style image, the style image after histogram
matching (the input of ``--preserve-color histogram``), a result, and the
same result with ``--preserve-color luminance``.  Pass ``--weights`` a real
VGG-19 (``imagenet`` or a file) for a stylised result; the default is
synthetic weights.

    python examples/preserve_color.py --weights random:0
"""

from __future__ import annotations

import argparse
import os
import warnings

import numpy as np
from PIL import Image, ImageDraw

import multistyle
from multistyle import color, images

HERE = os.path.dirname(os.path.abspath(__file__))


def contact_sheet(panels, size, output) -> None:
    """Titled panels (pixels in [0, 1], all of ``size``) side by side, written atomically to ``output``."""
    height, width = size
    sheet = Image.new("RGB", (len(panels) * (width + 8) + 8, height + 30), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (title, pixels) in enumerate(panels):
        x = 8 + k * (width + 8)
        sheet.paste(Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)), (x, 24))
        draw.text((x, 6), title, fill="black")
    with images.atomic_path(output) as temp:
        sheet.save(temp, format="PNG")


def arguments(doc: str, epochs: int, picture: str) -> argparse.Namespace:
    """The options of a docs picture's script: ``--weights``, ``--backend``, ``--epochs`` and ``--output``."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--weights", default="random:0")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--output", default=os.path.join(HERE, os.pardir, "docs", picture))
    return parser.parse_args()


def main() -> None:
    args = arguments(__doc__, 60, "preserve-color.png")
    size = (150, 225)
    content_image = images.load_image(os.path.join(HERE, "content.jpg"))
    style_image = images.load_image(os.path.join(HERE, "style.jpg"))
    content = images.resize_pixels(content_image, size)
    style = images.resize_pixels(style_image, size)
    matched = np.clip(color.match_color(style, content), 0, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", multistyle.UntrainedWeightsWarning)
        plain = multistyle.transfer(content_image, style_image, backend=args.backend, device="cpu",
                                    weights=args.weights, size=size, epochs=args.epochs)
    kept = color.keep_luminance(plain.image, np.round(content * 255).astype(np.uint8))
    panels = [("content", content), ("style", style), ("style, histogram-matched", matched),
              ("result", plain.image / 255.0), ("result, luminance kept", kept / 255.0)]
    contact_sheet(panels, size, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
