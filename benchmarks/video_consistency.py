"""Temporal consistency of a stylised clip, as the video literature measures it, and seconds per frame.

The clip is made here: textured rectangles moving over a textured background (``--frames`` frames at
``--size``), so it needs no download.  Four ways to stylise it, on each backend:

* **independent**: each frame optimised alone (``stylize_clip_coherent`` with the temporal weight 0 and the
  settings' start), ``--epochs`` per frame;
* **coherent**: Ruder et al.'s method at the same epochs per frame (start from the previous output carried by
  the flow, the temporal term);
* **network** and **network + temporal**: a trained network's pass on each frame (a freshly drawn per-style
  network: a pass costs the same whatever its weights), without and with ``temporal`` blending.

The **warping error** (Lai et al., 2018): the mean squared difference, in pixels 0..255, between output frame
``t + 1`` and output frame ``t`` carried onto it by the input's backward flow, over the pixels the consistency
check keeps, averaged over the frame pairs.  The loss network is synthetic (``--weights random:0`` unless a
file is given): the pictures are not stylised ones, but the flicker of an optimisation that settles texture
differently on every frame is there all the same.

    pip install 'multistyle[video]'
    python benchmarks/video_consistency.py --backends torch --size 128 --frames 6 --epochs 50
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from fractions import Fraction
from typing import Dict, List

import numpy as np
from PIL import Image, ImageFilter

from multistyle.backend import BUILTIN_BACKENDS
from multistyle.measure import call_isolated, usable_backends

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples")


def _texture(seed: int, height: int, width: int) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(noise).filter(ImageFilter.GaussianBlur(2)))


def make_clip(count: int, size: int) -> List[np.ndarray]:
    """Two textured rectangles moving (by 2 to 3 pixels a frame at 128, scaled with the size) over a background."""
    height, width = size * 2 // 3, size
    background = _texture(0, height, width)
    shapes = [(_texture(1, height // 3, width // 4), (height // 6, width // 8), (1, 3)),
              (_texture(2, height // 4, width // 3), (height // 2, width // 2), (-1, -2))]
    frames = []
    for t in range(count):
        frame = background.copy()
        for pixels, (top, left), (dy, dx) in shapes:
            step = max(1, size // 128)
            y, x = top + t * dy * step, left + t * dx * step
            h, w = pixels.shape[:2]
            frame[max(y, 0):y + h, max(x, 0):x + w] = pixels[max(-y, 0):height - y, max(-x, 0):width - x]
        frames.append(frame)
    return frames


def warping_error(outputs: List[np.ndarray], inputs: List[np.ndarray]) -> float:
    from multistyle.video import flow

    errors = []
    for t in range(len(outputs) - 1):
        backward, reliable = flow.flows(inputs[t], inputs[t + 1])
        carried = flow.warp(outputs[t].astype(np.float32), backward)
        squared = ((outputs[t + 1].astype(np.float32) - carried) ** 2).mean(axis=-1)
        errors.append(float((squared * reliable).sum() / max(reliable.sum(), 1.0)))
    return float(np.mean(errors))


def measure(backend: str, size: int, count: int, epochs: int, weights: str) -> Dict[str, List[float]]:
    """In a child process: each method's warping error and its seconds per frame (the first frame left out)."""
    from multistyle.nets import StyleNetwork
    from multistyle.video.coherent import stylize_clip_coherent
    from multistyle.video.fast import stylize_clip
    from multistyle.video.frames import Clip, write_video
    from multistyle.video.job import frame_name

    frames = make_clip(count, size)
    style = os.path.join(EXAMPLES, "style.jpg")
    out: Dict[str, List[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        clip = os.path.join(folder, "clip.mp4")
        write_video(iter(frames), clip, Fraction(12))
        network = os.path.join(folder, "net.safetensors")
        StyleNetwork.fresh(32, seed=0).save(network)
        height, width = frames[0].shape[:2]
        runs = {
            "independent": lambda o, cb: stylize_clip_coherent(
                clip, style, o, backend=backend, device="cpu", weights=weights, size=(height, width), epochs=epochs,
                temporal_weight=0, start_from_previous=False, callback=cb),
            "coherent": lambda o, cb: stylize_clip_coherent(
                clip, style, o, backend=backend, device="cpu", weights=weights, size=(height, width), epochs=epochs,
                callback=cb),
            "network": lambda o, cb: stylize_clip(network, clip, o, backend=backend, device="cpu", callback=cb),
            "network + temporal 0.7": lambda o, cb: stylize_clip(network, clip, o, backend=backend, device="cpu",
                                                                 temporal=0.7, callback=cb),
        }
        inputs = list(Clip(clip).frames())  # the frames as the clip decodes them (H.264, crf 18): what all saw
        for name, run in runs.items():
            target = os.path.join(folder, name.replace(" ", "-").replace("+", "and").replace(".", ""))
            seconds: List[float] = []
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                run(target, lambda record: seconds.append(record["seconds"]))
            outputs = [np.asarray(Image.open(os.path.join(target, frame_name(i)))) for i in range(count)]
            out[name] = [warping_error(outputs, inputs), statistics.median(seconds[1:])]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(sorted(BUILTIN_BACKENDS)))
    parser.add_argument("--size", type=int, default=128, help="the clip's width (its height is two thirds)")
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--weights", default="random:0")
    args = parser.parse_args()
    backends, unusable = usable_backends(args.backends.split(","))
    for name, reason in unusable.items():
        print(f"{name}: skipped ({reason})")
    print(f"a synthetic clip of {args.frames} frames, {args.size * 2 // 3}x{args.size}; the optimisation "
          f"{args.epochs} epochs a frame (d2l preset, weights {args.weights}); one fresh process per backend")
    print(f"{'backend':<11} {'method':<24} {'warping error':>13} {'÷ independent':>14} {'s/frame':>8}")
    for backend in backends:
        started = time.perf_counter()
        rows = call_isolated(measure, backend, args.size, args.frames, args.epochs, args.weights)
        base = rows["independent"][0]
        for name, (error, seconds) in rows.items():
            print(f"{backend:<11} {name:<24} {error:>13.2f} {error / base:>14.2f} {seconds:>8.3f}")
        print(f"{backend:<11} ({time.perf_counter() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
