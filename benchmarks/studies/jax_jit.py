"""What jit gives the JAX backend: a fresh ``multistyle run --backend jax`` with the objective jitted per scale
(``JaxBackend.jit``, the default) against the same run eager, alternating, as a user runs it.

Each run is a new process (imports, tracing and XLA compilation included in its first epoch); its
``--log`` gives the seconds of every epoch.  Reported per size: the median s/it after the warm-up
epochs, the first epoch (where jit compiles), the whole run's wall time, and eager / jit ratios.

    python benchmarks/studies/jax_jit.py --sizes 150x225,300x450 --epochs 12 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Tuple

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "examples")
RUN = ("import sys\nfrom multistyle.backends.jax_backend import JaxBackend\nJaxBackend.jit = sys.argv[1] == 'jit'\n"
       "from multistyle.cli import main\nsys.exit(main(sys.argv[2:]))")


def run(mode: str, size: Tuple[int, int], epochs: int) -> Tuple[List[float], float]:
    """Epoch seconds and wall seconds of one fresh process."""
    with tempfile.TemporaryDirectory() as folder:
        log = os.path.join(folder, "log.json")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", RUN, mode, "run", "--backend", "jax", "--device", "cpu",
                        "--content", os.path.join(EXAMPLES, "content.jpg"), "--style",
                        os.path.join(EXAMPLES, "style.jpg"), "--output", os.path.join(folder, "out.png"),
                        "--size", f"{size[0]}x{size[1]}", "--epochs", str(epochs), "--weights", "random:0",
                        "--quiet", "--log", log], cwd=folder, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        with open(log) as handle:
            return [row["seconds"] for row in json.load(handle)["epochs"]], wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="150x225,300x450")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.rounds} alternating rounds of fresh processes, {args.epochs} epochs each, median after "
          f"{args.warmup} warm-up epochs; {os.cpu_count()} CPUs")
    print(f"{'size':>8} {'mode':>6} {'s/it':>8} {'first epoch s':>14} {'wall s':>8}")
    for text in args.sizes.split(","):
        size = (int(text.split("x")[0]), int(text.split("x")[1]))
        found: Dict[str, Dict[str, List[float]]] = {m: {"steady": [], "first": [], "wall": []} for m in ("eager", "jit")}
        for _ in range(args.rounds):
            for mode in ("eager", "jit"):
                seconds, wall = run(mode, size, args.epochs)
                found[mode]["steady"] += seconds[args.warmup:]
                found[mode]["first"].append(seconds[0])
                found[mode]["wall"].append(wall)
        medians = {m: {k: statistics.median(v) for k, v in found[m].items()} for m in found}
        for mode in ("eager", "jit"):
            row = medians[mode]
            print(f"{text:>8} {mode:>6} {row['steady']:8.4f} {row['first']:14.2f} {row['wall']:8.1f}")
        print(f"{text:>8} eager/jit: s/it {medians['eager']['steady'] / medians['jit']['steady']:.2f}, "
              f"wall {medians['eager']['wall'] / medians['jit']['wall']:.2f}", flush=True)


if __name__ == "__main__":
    main()
