"""What JAX's persistent compilation cache gives a user: a fresh ``multistyle run --backend jax`` whose compiled
programs are in the cache (a run at that size before) against one that compiles them, alternating.

The backend keeps the cache in ``$XDG_CACHE_HOME/multistyle/jax``.  Here "compile" runs with an empty cache
folder each time, "cached" with one folder that a run before the rounds filled.  Each run is a new process,
as a user runs it; its ``--log`` gives the seconds of every epoch.  Reported per size: the median first epoch
(where the objective compiles), the whole process's wall time, and compile / cached ratios.

    python benchmarks/studies/jax_cache.py --sizes 150x225,300x450 --epochs 3 --rounds 5
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


def run(cache: str, size: Tuple[int, int], epochs: int) -> Tuple[float, float]:
    """First-epoch seconds and wall seconds of one fresh process whose cache folder is ``cache``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("JAX_")}
    env["XDG_CACHE_HOME"] = cache
    with tempfile.TemporaryDirectory() as folder:
        log = os.path.join(folder, "log.json")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "multistyle", "run", "--backend", "jax", "--device", "cpu",
                        "--content", os.path.join(EXAMPLES, "content.jpg"), "--style",
                        os.path.join(EXAMPLES, "style.jpg"), "--output", os.path.join(folder, "out.png"),
                        "--size", f"{size[0]}x{size[1]}", "--epochs", str(epochs), "--weights", "random:0",
                        "--quiet", "--log", log], cwd=folder, env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        with open(log) as handle:
            return json.load(handle)["epochs"][0]["seconds"], wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="150x225,300x450")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"{args.rounds} alternating rounds of fresh processes, {args.epochs} epochs each, medians; "
          f"{len(os.sched_getaffinity(0))} usable CPUs")
    print(f"{'size':>8} {'mode':>8} {'first epoch s':>14} {'wall s':>8}")
    with tempfile.TemporaryDirectory() as warm:
        for text in args.sizes.split(","):
            size = (int(text.split("x")[0]), int(text.split("x")[1]))
            run(warm, size, args.epochs)  # fills the shared cache at this size
            found: Dict[str, Dict[str, List[float]]] = {m: {"first": [], "wall": []} for m in ("compile", "cached")}
            for _ in range(args.rounds):
                for mode in ("compile", "cached"):
                    with tempfile.TemporaryDirectory() as empty:
                        first, wall = run(empty if mode == "compile" else warm, size, args.epochs)
                    found[mode]["first"].append(first)
                    found[mode]["wall"].append(wall)
            medians = {m: {k: statistics.median(v) for k, v in found[m].items()} for m in found}
            for mode in ("compile", "cached"):
                print(f"{text:>8} {mode:>8} {medians[mode]['first']:14.2f} {medians[mode]['wall']:8.1f}")
            print(f"{text:>8} compile/cached: first epoch {medians['compile']['first'] / medians['cached']['first']:.2f}, "
                  f"wall {medians['compile']['wall'] / medians['cached']['wall']:.2f}", flush=True)


if __name__ == "__main__":
    main()
