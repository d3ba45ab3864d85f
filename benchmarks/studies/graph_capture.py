"""What graph capture gives each framework's floor: eager against captured, same process, alternating.

The floor (``floor.py``: VGG-19 to ``conv5_1``, frozen, forward and input
gradient) runs eager and through the framework's own capture:
``torch.compile`` (Inductor, on the CPU through the C++ compiler),
Gluon ``hybridize(static_alloc=True, static_shape=True)`` and
``paddle.jit.to_static``.  Rounds alternate; the first iterations of every
round (compilation, warm-up) are left out of the medians and reported apart.

    python benchmarks/studies/graph_capture.py --size 150x225
"""

from __future__ import annotations

import argparse
import os
import statistics

os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))

from multistyle.references import floor  # noqa: E402
from multistyle import images  # noqa: E402
from multistyle.vgg import random_weights  # noqa: E402

NAMES = {"torch": "torch.compile", "mxnet": "hybridize(static)", "paddle": "jit.to_static"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="torch,mxnet,paddle")
    parser.add_argument("--size", default="150x225")
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    examples = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "examples")
    x = images.preprocess(images.load_image(os.path.join(examples, "content.jpg")), (height, width))
    weights = random_weights(0, last=floor.LAST)
    print(f"floor at {height}x{width}: {args.rounds} alternating rounds of {args.iterations} iterations, "
          f"median after {args.warmup} warm-up; {os.cpu_count()} CPUs")
    print(f"{'backend':8} {'capture':18} {'eager s/it':>11} {'captured s/it':>14} {'captured/eager':>15} "
          f"{'first captured it':>18}")
    for name in floor.installed(args.backends):
        eager, captured, first = [], [], []
        try:
            for _ in range(args.rounds):
                eager += floor.FLOORS[name](x, weights, args.iterations)[args.warmup:]
                times = floor.FLOORS[name](x, weights, args.iterations, capture=True)
                first.append(times[0])
                captured += times[args.warmup:]
        except Exception as exc:  # report a capture that fails, as a result
            print(f"{name:8} {NAMES[name]:18} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
            continue
        a, b = statistics.median(eager), statistics.median(captured)
        print(f"{name:8} {NAMES[name]:18} {a:11.4f} {b:14.4f} {b / a:15.2f} {max(first):17.1f}s")


if __name__ == "__main__":
    main()
