"""What keeping freed buffers in the heap (``multistyle.heap``) gives a fresh ``multistyle run``, per backend.

Each round runs, for every backend and size, two fresh ``python -m multistyle run``
processes one after the other: one as multistyle runs by default (glibc's mmap
and trim thresholds raised by ``get_backend``), one with glibc's defaults kept
(``GLIBC_TUNABLES=glibc.malloc.perturb=0``: a malloc setting at its default
value, which ``multistyle.heap`` leaves alone).  From each process: the median
s/it of its epochs (the first left out, from ``--log``), its wall time, and
from the kernel (``wait4``) its minor page faults and peak resident memory.
Medians over the rounds; the ratio is glibc's defaults over kept.

    python benchmarks/studies/heap.py --backends torch,mxnet,jax,tensorflow --sizes 300x450 --epochs 6 --rounds 2
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
from typing import Dict, List

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "examples")
MODES = {"kept": {}, "glibc defaults": {"GLIBC_TUNABLES": "glibc.malloc.perturb=0"}}


def run(backend: str, size: str, epochs: int, environment: Dict[str, str]) -> Dict[str, float]:
    """One fresh ``multistyle run``: its median s/it, wall seconds, minor page faults and peak RSS (MB)."""
    with tempfile.TemporaryDirectory() as folder:
        log = os.path.join(folder, "log.json")
        argv = [sys.executable, "-m", "multistyle", "run", "--backend", backend, "--device", "cpu",
                "--content", os.path.join(EXAMPLES, "content.jpg"), "--style", os.path.join(EXAMPLES, "style.jpg"),
                "--output", os.path.join(folder, "out.png"), "--size", size, "--epochs", str(epochs),
                "--weights", "random:0", "--log", log]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
        started = time.perf_counter()
        process = subprocess.Popen(argv, env=dict(env, **environment), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise SystemExit(f"{backend} {size}: exit {process.returncode}: {process.stderr.read().decode()[-500:]}")
        with open(log, encoding="utf-8") as handle:
            seconds = [epoch["seconds"] for epoch in json.load(handle)["epochs"]][1:]
    return {"s/it": statistics.median(seconds), "wall": wall, "faults": usage.ru_minflt,
            "rss_mb": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="torch,mxnet,paddle,jax,tensorflow")
    parser.add_argument("--sizes", default="150x225,300x450")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; {args.rounds} rounds, fresh processes alternated; {args.epochs} epochs each; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}", flush=True)
    print("| backend, size | s/it: glibc defaults → kept | ratio | wall s | page faults | peak RSS, MB |")
    print("|---|---|---|---|---|---|")
    for backend in args.backends.split(","):
        for size in args.sizes.split(","):
            found: Dict[str, List[Dict[str, float]]] = {mode: [] for mode in MODES}
            for _ in range(args.rounds):
                for mode, environment in MODES.items():
                    found[mode].append(run(backend, size, args.epochs, environment))
            med = {mode: {key: statistics.median(r[key] for r in rows) for key in rows[0]}
                   for mode, rows in found.items()}
            d, k = med["glibc defaults"], med["kept"]
            print(f"| {backend} {size} | {d['s/it']:.3f} → {k['s/it']:.3f} | {d['s/it'] / k['s/it']:.2f} | "
                  f"{d['wall']:.1f} → {k['wall']:.1f} | {d['faults'] / 1e6:.2f}M → {k['faults'] / 1e6:.2f}M | "
                  f"{d['rss_mb']:.0f} → {k['rss_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
