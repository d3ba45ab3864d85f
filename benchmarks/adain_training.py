"""Seconds per iteration of ``multistyle.train_arbitrary`` against a plain AdaIN loop in each framework's idiom.

Per backend, in a fresh child process: ``train_arbitrary`` (the core's encoder, decoder, AdaIN, loss and
Adam over the backend protocol) and the framework's plain loop (``references/adain_training.py``: the public
PyTorch port's training step, written as that framework's users write it, on the same crops and the same
starting decoder) alternate, ``--iterations`` iterations each per round, ``--rounds`` rounds; each call's
first iteration (compilation, first allocations) is left out, and the medians of the rest are compared.
The crops come from the example pictures at ``--size`` (content photo and painting, each its own folder),
the encoder is synthetic VGG-19 weights in the normalised layout (a step costs the same whatever they are).
The first losses of both are printed too: they are the same computation, so they agree to float32 rounding.

``--fresh-rounds N`` also times ``multistyle train --arbitrary`` as a user runs it, in fresh processes: runs
of ``2`` and ``2 + --iterations`` iterations alternate, ``N`` of each, and the difference of their median wall
times per extra iteration is the CLI's s/it (imports, reading, the first iterations and writing cancel out).

    python benchmarks/adain_training.py --size 256 --batch-size 4 --iterations 3 --rounds 2 --fresh-rounds 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Dict, List

from multistyle.backend import BUILTIN_BACKENDS
from multistyle.measure import call_isolated, usable_backends
from multistyle.nets import adain
from multistyle.nets.adain_training import LR, STYLE_STREAM, train_arbitrary
from multistyle.training import Photos

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples")
ENCODER_SEED = 0


def measure(backend: str, size: int, batch: int, iterations: int, rounds: int) -> Dict[str, List[float]]:
    """In a child process: seconds per iteration of both, alternated, first iteration of each call left out;
    and the first loss of each (``loss multistyle``, ``loss plain loop``)."""
    from multistyle.references.adain_training import LOOPS, Job

    with tempfile.TemporaryDirectory() as folder:
        contents, styles = os.path.join(folder, "contents"), os.path.join(folder, "styles")
        for name, into in (("content.jpg", contents), ("style.jpg", styles)):
            os.mkdir(into)
            shutil.copy(os.path.join(EXAMPLES, name), into)
        photos, paintings = Photos(contents, size), Photos(styles, size)
        count = iterations + 1
        job = Job([photos.batch(i, batch, 0) for i in range(count)],
                  [paintings.batch(i, batch, 0, STYLE_STREAM) for i in range(count)],
                  adain.random_encoder(ENCODER_SEED), adain.init_decoder(0), lr=LR)
        times: Dict[str, List[float]] = {"multistyle": [], "plain loop": []}
        first: List[float] = []
        for _ in range(rounds):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                seconds: List[float] = []

                def record(r: Dict[str, float]) -> None:
                    seconds.append(r["seconds"])
                    first.append(r["total"])

                train_arbitrary(contents, styles, backend=backend, device="cpu", weights=f"random:{ENCODER_SEED}",
                                size=size, batch_size=batch, iterations=count, callback=record)
            times["multistyle"] += seconds[1:]
            times["plain loop"] += LOOPS[backend](job, count)[1:]
        times["loss multistyle"], times["loss plain loop"] = first[:1], job.losses[:1]
    return times


def fresh(backend: str, size: int, batch: int, iterations: int, rounds: int) -> float:
    """The CLI's s/it: fresh ``multistyle train --arbitrary`` processes of 2 and ``2 + iterations`` iterations,
    alternated ``rounds`` times, the difference of their median wall times per extra iteration."""
    walls: Dict[int, List[float]] = {2: [], 2 + iterations: []}
    with tempfile.TemporaryDirectory() as folder:
        for name, into in (("content.jpg", "contents"), ("style.jpg", "styles")):
            os.mkdir(os.path.join(folder, into))
            shutil.copy(os.path.join(EXAMPLES, name), os.path.join(folder, into))
        for _ in range(rounds):
            for count in walls:
                command = [sys.executable, "-m", "multistyle", "train", "--arbitrary", "--contents", "contents",
                           "--styles", "styles", "--output", "adain.safetensors", "--backend", backend, "--device",
                           "cpu", "--weights", f"random:{ENCODER_SEED}", "--size", str(size), "--batch-size",
                           str(batch), "--iterations", str(count), "--quiet"]
                started = time.perf_counter()
                subprocess.run(command, cwd=folder, check=True, capture_output=True)
                walls[count].append(time.perf_counter() - started)
    return (statistics.median(walls[2 + iterations]) - statistics.median(walls[2])) / iterations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(sorted(BUILTIN_BACKENDS)))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--fresh-rounds", type=int, default=0)
    args = parser.parse_args()
    backends, unusable = usable_backends(args.backends.split(","))
    for name, reason in unusable.items():
        print(f"{name}: skipped ({reason})")
    print(f"AdaIN decoder training, s/it at {args.size}x{args.size}, batch {args.batch_size} contents + "
          f"{args.batch_size} styles: median of {args.iterations * args.rounds} iterations each, alternated in "
          f"rounds, one fresh process per backend")
    cli = f" {'CLI fresh':>9}" if args.fresh_rounds else ""
    print(f"{'backend':<11} {'multistyle':>10} {'plain loop':>10} {'ratio':>6}{cli}   first loss (multistyle / plain)")
    for name in backends:
        times = call_isolated(measure, name, args.size, args.batch_size, args.iterations, args.rounds)
        ours, theirs = statistics.median(times["multistyle"]), statistics.median(times["plain loop"])
        if args.fresh_rounds:
            cli = f" {fresh(name, args.size, args.batch_size, args.iterations, args.fresh_rounds):>9.3f}"
        print(f"{name:<11} {ours:>10.3f} {theirs:>10.3f} {ours / theirs:>6.2f}{cli}   "
              f"{times['loss multistyle'][0]:.6g} / {times['loss plain loop'][0]:.6g}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
