"""Seconds per iteration: the d2l chapter's own loop, the framework's floor, and ``multistyle.transfer``.

For each installed framework, in the same process and run, this times a
loop written the way the chapter writes it (the framework's zoo VGG-19
``features`` cut after layer 28, parameters left trainable, the ten-fold
style list, Adam with the chapter's step decay), the framework's floor (the
same layers frozen, forward and input gradient only, bare: ``floor.py``),
and multistyle on the same synthetic weights, images and settings.  It prints
multistyle / floor (1 is the floor itself) and chapter / multistyle (how many
times faster than the chapter multistyle is).  The three alternate for a few
rounds, and medians exclude warm-up iterations.  Every iteration reads the
loss back as a Python float in every loop, so asynchronous MXNet is timed
fairly.

    python benchmarks/chapter_vs_multistyle.py --size 150x225 --epochs 12
"""

from __future__ import annotations

import argparse
import os
import statistics
import warnings

# Before any framework is imported: Paddle sets OMP_NUM_THREADS=1 at import
# when it is unset, which would slow every loop in this process to one core.
os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))

import d2l_chapter  # noqa: E402
import floor  # noqa: E402
import multistyle  # noqa: E402
from multistyle import images  # noqa: E402
from multistyle.backend import BackendUnavailable, load_backend_class  # noqa: E402
from multistyle.vgg import random_weights  # noqa: E402

# The preset that computes what each framework's chapter code computes.
PRESET = {"torch": "d2l-pytorch", "mxnet": "d2l-mxnet", "paddle": "d2l"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="torch,mxnet,paddle")
    parser.add_argument("--size", default="150x225", help="HxW")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of chapter and multistyle")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    examples = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples")
    content_image = images.load_image(os.path.join(examples, "content.jpg"))
    style_image = images.load_image(os.path.join(examples, "style.jpg"))
    content = images.preprocess(content_image, (height, width))
    style = images.preprocess(style_image, (height, width))
    weights = random_weights(0, last=28)
    print(f"size {height}x{width}, {args.rounds} rounds of {args.epochs} iterations each, "
          f"median after {args.warmup} warm-up per round")
    print(f"{'backend':8} {'chapter s/it':>13} {'floor s/it':>11} {'multistyle s/it':>16} {'ms/floor':>9} "
          f"{'chapter/ms':>11}")
    for name in args.backends.split(","):
        try:
            load_backend_class(name)
        except BackendUnavailable as exc:
            print(f"{name:8} skipped: {exc}")
            continue
        chapter_times, floor_times, our_times = [], [], []
        for _ in range(args.rounds):  # alternate, so drift in machine load hits all alike
            _, _, times = d2l_chapter.LOOPS[name](content, style, weights, args.epochs)
            chapter_times += times[args.warmup:]
            floor_times += floor.FLOORS[name](content, weights, args.epochs)[args.warmup:]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", multistyle.UntrainedWeightsWarning)
                result = multistyle.transfer(
                    content_image, style_image, backend=name, device="cpu", weights="random:0",
                    size=(height, width), epochs=args.epochs, preset=PRESET[name])
            our_times += [record["seconds"] for record in result.history[args.warmup:]]
        chapter, bare, ours = (statistics.median(t) for t in (chapter_times, floor_times, our_times))
        print(f"{name:8} {chapter:13.4f} {bare:11.4f} {ours:16.4f} {ours / bare:9.2f} {chapter / ours:11.2f}")


if __name__ == "__main__":
    main()
