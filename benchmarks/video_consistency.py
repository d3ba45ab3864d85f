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
    python benchmarks/video_consistency.py --backends torch --sizes 128 --frames 6 --epochs 50
    python benchmarks/video_consistency.py --sizes 256,512 --frames 3 --epochs 20 --methods coherent,network

The **objective** is the optimisation's own (content + style + total variation, the temporal term left out) at
each frame's last epoch, averaged over the frames: what holding the frames together costs the picture.
``--temporal-weights 100,1000,10000`` gives a coherent row per weight, to choose one.  ``--cli-rounds N`` also
times fresh ``multistyle video`` processes, as a user runs them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from fractions import Fraction
from typing import Callable, Dict, List

import numpy as np
from PIL import Image, ImageFilter

from multistyle.backend import BUILTIN_BACKENDS
from multistyle.measure import call_isolated, usable_backends
from multistyle.video.coherent import TEMPORAL_WEIGHT

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


def measure(backend: str, size: int, count: int, epochs: int, weights: str, methods: List[str],
            temporal_weights: List[float]) -> Dict[str, List[float]]:
    """In a child process: each method's warping error, the picture's objective (content + style + TV at each
    frame's last epoch, the optimisation's only; the temporal term left out) and its seconds per frame (the
    first frame left out)."""
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

        def optimise(weight: float, start: bool) -> Callable[[str, Callable[..., None]], object]:
            return lambda o, cb: stylize_clip_coherent(
                clip, style, o, backend=backend, device="cpu", weights=weights, size=(height, width), epochs=epochs,
                temporal_weight=weight, start_from_previous=start, callback=cb)

        runs: Dict[str, Callable[[str, Callable[..., None]], object]] = {}
        if "independent" in methods:
            runs["independent"] = optimise(0, False)
        if "coherent" in methods:
            runs.update({"coherent" if weight == TEMPORAL_WEIGHT else f"coherent, weight {weight:g}":
                         optimise(weight, True) for weight in temporal_weights})
        if "network" in methods:
            runs["network"] = lambda o, cb: stylize_clip(network, clip, o, backend=backend, device="cpu", callback=cb)
            runs["network + temporal 0.7"] = lambda o, cb: stylize_clip(network, clip, o, backend=backend,
                                                                        device="cpu", temporal=0.7, callback=cb)
        inputs = list(Clip(clip).frames())  # the frames as the clip decodes them (H.264, crf 18): what all saw
        for name, run in runs.items():
            target = os.path.join(folder, name.replace(" ", "-").replace("+", "and").replace(".", "").replace(",", ""))
            records: List[Dict[str, float]] = []
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                run(target, records.append)
            outputs = [np.asarray(Image.open(os.path.join(target, frame_name(i)))) for i in range(count)]
            objective = [r["total"] - r.get("temporal", 0.0) for r in records if "total" in r]
            out[name] = [warping_error(outputs, inputs), float(np.mean(objective)) if objective else float("nan"),
                         statistics.median(r["seconds"] for r in records[1:])]
    return out


def time_cli(backend: str, size: int, epochs: int, rounds: int) -> float:
    """Seconds per extra frame of fresh ``multistyle video`` processes: clips of 2 and 4 frames, alternated
    ``rounds`` times, the difference of the median walls over the 2 extra frames."""
    frames = make_clip(4, size)
    walls: Dict[int, List[float]] = {2: [], 4: []}
    with tempfile.TemporaryDirectory() as folder:
        from multistyle.video.frames import write_video

        for count in walls:
            write_video(iter(frames[:count]), os.path.join(folder, f"clip{count}.mp4"), Fraction(12))
        script = os.path.join(os.path.dirname(sys.executable), "multistyle")
        for round_ in range(rounds):
            for count in walls:
                command = [script, "video", os.path.join(folder, f"clip{count}.mp4"), "--style",
                           os.path.join(EXAMPLES, "style.jpg"), "--output",
                           os.path.join(folder, f"out{round_}-{count}"),
                           "--backend", backend, "--device", "cpu", "--weights", "random:0", "--epochs", str(epochs),
                           "--size", f"{size * 2 // 3}x{size}", "--quiet"]
                started = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                walls[count].append(time.perf_counter() - started)
    return (statistics.median(walls[4]) - statistics.median(walls[2])) / 2


def _number(value: float, width: int) -> str:
    """``value`` to three places, or blank where there is none (no independent row, a network's objective)."""
    return f"{value:>{width}.3f}" if np.isfinite(value) else " " * width


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(sorted(BUILTIN_BACKENDS)))
    parser.add_argument("--sizes", default="128", help="the clip's widths, comma-separated (its height is two thirds)")
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--weights", default="random:0")
    parser.add_argument("--methods", default="independent,coherent,network",
                        help="comma-separated: independent, coherent, network (with and without blending)")
    parser.add_argument("--temporal-weights", default=f"{TEMPORAL_WEIGHT:g}",
                        help="the coherent method's --temporal-weight, or several, comma-separated: a row each")
    parser.add_argument("--cli-rounds", type=int, default=0,
                        help="also time fresh multistyle video processes (the optimisation), this many rounds")
    args = parser.parse_args()
    backends, unusable = usable_backends(args.backends.split(","))
    methods = args.methods.split(",")
    weights = [float(w) for w in args.temporal_weights.split(",")]
    for name, reason in unusable.items():
        print(f"{name}: skipped ({reason})")
    print(f"a synthetic clip of {args.frames} frames; the optimisation {args.epochs} epochs a frame (d2l preset, "
          f"weights {args.weights}); one fresh process per backend and size; s/frame the median of frames 2 on")
    print(f"{'backend':<11} {'size':>7} {'method':<26} {'warping error':>13} {'÷ indep.':>9} {'objective':>10} "
          f"{'÷ indep.':>9} {'s/frame':>8}")
    for backend in backends:
        for size in (int(s) for s in args.sizes.split(",")):
            started = time.perf_counter()
            rows = call_isolated(measure, backend, size, args.frames, args.epochs, args.weights, methods, weights)
            base = rows.get("independent", [float("nan")] * 3)
            shape = f"{size * 2 // 3}x{size}"
            for name, (error, objective, seconds) in rows.items():
                print(f"{backend:<11} {shape:>7} {name:<26} {error:>13.2f} {_number(error / base[0], 9)} "
                      f"{_number(objective, 10)} {_number(objective / base[1], 9)} {seconds:>8.3f}")
            print(f"{backend:<11} {shape:>7} ({time.perf_counter() - started:.0f} s)", flush=True)
            if args.cli_rounds:
                per_frame = time_cli(backend, size, args.epochs, args.cli_rounds)
                print(f"{backend:<11} {shape:>7} {'CLI, fresh processes':<26} {'':>13} {'':>9} {'':>10} {'':>9} "
                      f"{per_frame:>8.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
