"""Draw docs/video-strip.png: a clip's frames before and after, stylised each frame alone and frame-coherently.

The clip is a camera pan over the bundled photo (``--frames`` frames, 6 pixels a frame), so it needs no
download.  Rows: the input frames; each frame optimised alone (``--temporal-weight 0 --start init``); Ruder et
al.'s coherent method at the same epochs; then, for each method, where frame ``t`` differs from frame
``t - 1``'s output carried onto it by the flow (the flicker; brighter is more, over the pixels the consistency
check keeps).  Pass ``--weights`` a real VGG-19 (``imagenet`` or a file) for stylised frames; the default is
synthetic weights.

    python examples/video_strip.py --weights random:0
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings

import numpy as np
from PIL import Image, ImageDraw

import multistyle
from multistyle import images
from multistyle.video import flow
from multistyle.video.coherent import stylize_clip_coherent
from multistyle.video.job import frame_name

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from preserve_color import arguments  # noqa: E402

SIZE = (150, 225)
STEP = 6


def pan(count: int) -> list:
    """``count`` frames of ``SIZE``, a window moving ``STEP`` pixels right each frame over the bundled photo."""
    photo = images.load_image(os.path.join(HERE, "content.jpg"))
    wide = np.asarray(photo.resize((SIZE[1] + STEP * count, SIZE[0]), Image.BICUBIC), np.uint8)
    return [np.ascontiguousarray(wide[:, STEP * t:STEP * t + SIZE[1]]) for t in range(count)]


def flicker(outputs: list, inputs: list) -> list:
    """For each frame after the first: |frame t - frame t-1's output carried onto it|, x4, where it is reliable."""
    maps = [np.zeros(SIZE + (3,))]
    for t in range(1, len(outputs)):
        backward, reliable = flow.flows(inputs[t - 1], inputs[t])
        carried = flow.warp(outputs[t - 1].astype(np.float32), backward)
        difference = np.abs(outputs[t].astype(np.float32) - carried).mean(axis=-1) * reliable
        maps.append(np.repeat(np.clip(difference * 4 / 255, 0, 1)[..., None], 3, axis=-1))
    return maps


def main() -> None:
    args = arguments(__doc__, 100, "video-strip.png")
    frames = pan(4)
    rows = [("input frames (a pan over the bundled photo)", [f / 255.0 for f in frames])]
    outputs = {}
    with tempfile.TemporaryDirectory() as folder:
        for index, frame in enumerate(frames):
            Image.fromarray(frame).save(os.path.join(folder, f"in{index}.png"))
        for name, options in (("each frame alone", dict(temporal_weight=0, start_from_previous=False)),
                              ("coherent (Ruder et al.)", {})):
            out = os.path.join(folder, name.split()[0])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", multistyle.UntrainedWeightsWarning)
                stylize_clip_coherent(folder, os.path.join(HERE, "style.jpg"), out, backend=args.backend,
                                      device="cpu", weights=args.weights, size=SIZE, epochs=args.epochs, **options)
            outputs[name] = [np.asarray(Image.open(os.path.join(out, frame_name(i))), np.uint8)
                             for i in range(len(frames))]
            rows.append((f"{name}, {args.epochs} epochs a frame", [o / 255.0 for o in outputs[name]]))
    for name, outs in outputs.items():
        rows.append((f"{name}: change from the previous frame along the flow (x4)", flicker(outs, frames)))
    height, width = SIZE
    sheet = Image.new("RGB", (len(frames) * (width + 8) + 8, len(rows) * (height + 26) + 4), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (title, panels) in enumerate(rows):
        y = 4 + r * (height + 26)
        draw.text((8, y + 4), title, fill="black")
        for k, pixels in enumerate(panels):
            sheet.paste(Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)),
                        (8 + k * (width + 8), y + 22))
    with images.atomic_path(args.output) as temp:  # 256 colours: a third of the bytes, for the docs
        sheet.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(temp, format="PNG",
                                                                                           optimize=True)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
