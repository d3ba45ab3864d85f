"""Seconds per training iteration of ``multistyle.train`` against a plain loop in each framework's own idiom.

Per backend, in a fresh child process: ``multistyle.train`` (the core's network, loss and Adam over the
backend protocol) and the framework's plain loop (``references/fast_training.py``: the same network, loss and
batches, written as that framework's users write it) alternate, ``--iterations`` iterations each per round,
``--rounds`` rounds; each call's first iteration (compilation, first allocations) is left out, and the
medians of the rest are compared.  The batches are crops of the example pictures at ``--size``, the loss
network synthetic VGG-19 weights (a step costs the same whatever they are), the loss the d2l preset's.

    python benchmarks/fast_training.py --size 256 --batch-size 4 --iterations 4 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import warnings
from typing import Dict, List

import numpy as np

from multistyle import images
from multistyle.backend import BUILTIN_BACKENDS
from multistyle.measure import call_isolated, usable_backends
from multistyle.settings import Settings
from multistyle.training import Photos, train
from multistyle.vgg import LAYER_BY_NAME, random_weights
from multistyle.weightfiles import LoadedWeights

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples")


def measure(backend: str, size: int, batch: int, iterations: int, rounds: int) -> Dict[str, List[float]]:
    """In a child process: seconds per iteration of both, alternated, first iteration of each call left out."""
    from multistyle.references.fast_training import LOOPS, Job

    settings = Settings().resolved()
    last = max(LAYER_BY_NAME[name].index for name in settings.layers)
    weights = random_weights(0, last)
    with tempfile.TemporaryDirectory() as folder:
        for name in ("content.jpg", "style.jpg"):
            shutil.copy(os.path.join(EXAMPLES, name), folder)
        photos = Photos(folder, size)
        batches = [photos.batch(i, batch, 0) for i in range(iterations + 1)]
        style = images.resize_pixels(images.load_image(os.path.join(EXAMPLES, "style.jpg")),
                                     images.fit_long_edge(images.load_image(os.path.join(EXAMPLES, "style.jpg")).size,
                                                          size))
        job = Job(batches, (style * 255).transpose(2, 0, 1)[None].astype(np.float32), weights,
                  [LAYER_BY_NAME[n].index for n in settings.content_layers],
                  [LAYER_BY_NAME[n].index for n in settings.style_layers],
                  (settings.content_weight, settings.style_weight, settings.tv_weight))
        times: Dict[str, List[float]] = {"multistyle": [], "plain loop": []}
        for _ in range(rounds):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                seconds: List[float] = []
                train(os.path.join(EXAMPLES, "style.jpg"), folder, backend=backend, device="cpu",
                      weights=LoadedWeights(weights, "random:0", True), size=size, batch_size=batch,
                      iterations=iterations + 1, callback=lambda r: seconds.append(r["seconds"]))
            times["multistyle"] += seconds[1:]
            times["plain loop"] += LOOPS[backend](job, iterations + 1)[1:]
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(sorted(BUILTIN_BACKENDS)))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    backends, unusable = usable_backends(args.backends.split(","))
    for name, reason in unusable.items():
        print(f"{name}: skipped ({reason})")
    print(f"s/it at {args.size}x{args.size}, batch {args.batch_size}, width 32: median of "
          f"{args.iterations * args.rounds} iterations each, alternated in rounds, one fresh process per backend")
    print(f"{'backend':<11} {'multistyle':>10} {'plain loop':>10} {'ratio':>6}")
    for name in backends:
        times = call_isolated(measure, name, args.size, args.batch_size, args.iterations, args.rounds)
        ours, theirs = statistics.median(times["multistyle"]), statistics.median(times["plain loop"])
        print(f"{name:<11} {ours:>10.3f} {theirs:>10.3f} {ours / theirs:>6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
