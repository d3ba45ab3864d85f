"""Issue 9's figures in one run: per-iteration speed, time to a finished image, and memory, per backend.

1. Seconds per iteration of the chapter's loop, the framework's floor,
   multistyle in-process and in a fresh ``multistyle run`` process, with
   ms/floor and chapter/ms (``chapter_vs_multistyle.py``).
2. Predicted against measured peak memory (``memory.py``).
3. Fresh-process time to within 1 % of the chapter's loss after 300 and 500
   epochs: the chapter's own script, multistyle's ``d2l`` and ``--preset fast``
   (``time_to_loss.py``).

    python benchmarks/speed_report.py --sizes 150x225,300x450
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

import chapter_vs_multistyle
from multistyle.references import floor
import memory_report as memory_benchmark
import time_to_loss
from multistyle.memory import format_bytes
from multistyle.loop import plan_memory
from multistyle.settings import Settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="torch,mxnet,paddle,jax,tensorflow")
    parser.add_argument("--sizes", default="150x225,300x450")
    parser.add_argument("--memory-sizes", default="150x225,300x450,600x900")
    parser.add_argument("--time-sizes", default=None, help="sizes of part 3 (default: --sizes)")
    parser.add_argument("--parts", default="speed,time,memory")
    args = parser.parse_args()
    parts = args.parts.split(",")
    sizes = [tuple(int(v) for v in text.split("x")) for text in args.sizes.split(",")]
    backends = floor.installed(args.backends)
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, {platform.system()}, "
          f"Python {platform.python_version()}; synthetic weights (random:0), CPU device", flush=True)
    if "speed" in parts:
        print("\n## 1. Seconds per iteration (median; 2 alternating rounds of 12, 2 warm-up each)", flush=True)
        print(chapter_vs_multistyle.HEADER, flush=True)
        for name in backends:
            for size in sizes:
                row = chapter_vs_multistyle.measure(name, size)
                print(chapter_vs_multistyle.line(name, size, row), flush=True)
    if "memory" in parts:
        print("\n## 2. Peak memory of a fresh `multistyle run` (Adam, 3 epochs): predicted vs measured", flush=True)
        print(f"{'backend':8} {'size':>8} {'predicted':>11} {'measured':>11} {'pred/meas':>9}", flush=True)
        settings = Settings(epochs=3).resolved()
        for name in backends:
            for text in args.memory_sizes.split(","):
                size = tuple(int(v) for v in text.split("x"))
                predicted = plan_memory(name, "cpu", size, settings).host
                measured = memory_benchmark.measure(name, size, "adam", 3)
                print(f"{name:8} {size[0]:>3}x{size[1]:<4} {format_bytes(predicted):>11} "
                      f"{format_bytes(measured):>11} {predicted / measured:9.2f}", flush=True)
    if "time" in parts:
        print("\n## 3. Time to the chapter's loss (fresh processes)", flush=True)
        time_sizes = sizes if args.time_sizes is None else [tuple(int(v) for v in text.split("x"))
                                                            for text in args.time_sizes.split(",")]
        for size in time_sizes:  # the smaller size first, for every backend
            for name in backends:
                print("\n".join(time_to_loss.table(time_to_loss.measure(name, list(size)))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
