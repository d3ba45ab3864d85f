"""Seconds per iteration: the d2l chapter's own loop, the framework's floor, and ``multistyle.transfer``.

For each installed framework, in the same process and run, this times a
loop written the way the chapter writes it (the framework's zoo VGG-19
``features`` cut after layer 28, parameters left trainable, the ten-fold
style list, Adam with the chapter's step decay), the framework's floor (the
same layers frozen, forward and input gradient only, bare: ``floor.py``),
and multistyle on the same synthetic weights, images and settings, in this
process and as a fresh ``multistyle run`` process (its ``--log``).  It prints
multistyle / floor (1 is the floor itself) and chapter / multistyle (how many
times faster than the chapter multistyle is).  The three alternate for a few
rounds, and medians exclude warm-up iterations.  The chapter's loop and the
floor read the loss back every iteration; multistyle's epoch seconds are the
wall time of each batch of reads shared out, so asynchronous MXNet is timed
fairly either way.  The chapter has no JAX or TensorFlow variant: their
chapter column is nan, and their multistyle runs the ``d2l`` preset (conv
outputs, as the MXNet and Paddle chapters).

    python benchmarks/chapter_vs_multistyle.py --sizes 150x225,300x450 --epochs 12
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import warnings
from typing import Dict, Tuple

# Before any framework is imported: Paddle sets OMP_NUM_THREADS=1 at import
# when it is unset, which would slow every loop in this process to one core.
os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))

from multistyle.backend.devices import mkl_avx2_on_amd  # noqa: E402

mkl_avx2_on_amd()  # the chapter's Paddle loop runs on the MKL that multistyle's Paddle runs on (AMD: AVX2)

from multistyle.references import d2l_chapter, floor  # noqa: E402
import multistyle  # noqa: E402
from multistyle import images  # noqa: E402
from multistyle.vgg import random_weights  # noqa: E402

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples")
# The preset that computes what each framework's chapter code computes.
PRESET = {"torch": "d2l-pytorch", "mxnet": "d2l-mxnet", "paddle": "d2l", "jax": "d2l", "tensorflow": "d2l"}


def cli_seconds(name: str, size: Tuple[int, int], epochs: int, warmup: int) -> float:
    """Median s/it of a fresh ``multistyle run`` process, as a user runs it (from its ``--log``)."""
    with tempfile.TemporaryDirectory() as folder:
        log = os.path.join(folder, "log.json")
        subprocess.run([sys.executable, "-m", "multistyle", "run", "--backend", name, "--device", "cpu",
                        "--content", os.path.join(EXAMPLES, "content.jpg"), "--style",
                        os.path.join(EXAMPLES, "style.jpg"), "--output", os.path.join(folder, "out.png"),
                        "--size", f"{size[0]}x{size[1]}", "--epochs", str(epochs), "--preset", PRESET[name],
                        "--weights", "random:0", "--quiet", "--log", log],
                       cwd=folder, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(log) as handle:
            return statistics.median(row["seconds"] for row in json.load(handle)["epochs"][warmup:])


def measure(name: str, size: Tuple[int, int], epochs: int = 12, warmup: int = 2, rounds: int = 2) -> Dict[str, float]:
    """Median s/it of the chapter's loop, the floor, multistyle in this process and a fresh CLI process."""
    content_image = images.load_image(os.path.join(EXAMPLES, "content.jpg"))
    style_image = images.load_image(os.path.join(EXAMPLES, "style.jpg"))
    content = images.preprocess(content_image, size)
    style = images.preprocess(style_image, size)
    weights = random_weights(0, last=28)
    chapter_times, floor_times, our_times, cli_times = [], [], [], []
    for _ in range(rounds):  # alternate, so drift in machine load hits all alike
        if name in d2l_chapter.LOOPS:  # the chapter has no JAX or TensorFlow variant
            _, _, times = d2l_chapter.LOOPS[name](content, style, weights, epochs)
            chapter_times += times[warmup:]
        floor_times += floor.FLOORS[name](content, weights, epochs)[warmup:]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", multistyle.UntrainedWeightsWarning)
            result = multistyle.transfer(content_image, style_image, backend=name, device="cpu",
                                         weights="random:0", size=size, epochs=epochs, preset=PRESET[name])
        our_times += [record["seconds"] for record in result.history[warmup:]]
        cli_times.append(cli_seconds(name, size, epochs, warmup))
    chapter, bare, ours, cli = (statistics.median(t) if t else math.nan
                                for t in (chapter_times, floor_times, our_times, cli_times))
    return {"chapter": chapter, "floor": bare, "multistyle": ours, "cli": cli}


HEADER = (f"{'backend':10} {'size':>8} {'chapter s/it':>13} {'floor s/it':>11} {'multistyle s/it':>16} "
          f"{'fresh CLI s/it':>15} {'ms/floor':>9} {'chapter/ms':>11}")


def line(name: str, size: Tuple[int, int], row: Dict[str, float]) -> str:
    """One table row; the ratios use the slower of multistyle in-process and the fresh CLI."""
    ours = max(row["multistyle"], row["cli"])
    over = ours / row["floor"]  # a floor slower than the step it bounds is a measurement fault, not a ratio
    over_text = f"{over:9.2f}" if over >= 1 else f"{'fault':>9}"
    return (f"{name:10} {size[0]:>3}x{size[1]:<4} {row['chapter']:13.4f} {row['floor']:11.4f} "
            f"{row['multistyle']:16.4f} {row['cli']:15.4f} {over_text} {row['chapter'] / ours:11.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="torch,mxnet,paddle,jax,tensorflow")
    parser.add_argument("--sizes", default="150x225,300x450", help="HxW,...")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of chapter and multistyle")
    args = parser.parse_args()
    print(f"{args.rounds} rounds of {args.epochs} iterations each, median after {args.warmup} warm-up per round; "
          f"{os.cpu_count()} CPUs")
    print(HEADER)
    for name in floor.installed(args.backends):
        for text in args.sizes.split(","):
            size = tuple(int(v) for v in text.split("x"))
            print(line(name, size, measure(name, size, args.epochs, args.warmup, args.rounds)), flush=True)


if __name__ == "__main__":
    main()
