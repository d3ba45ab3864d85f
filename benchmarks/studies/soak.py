"""Soak: does memory grow over a long run?  2,000 epochs at 64x96 on each backend.

Each backend runs ``multistyle.transfer`` in a fresh process (as a user's run
would), with synthetic weights.  Every 100 epochs the process's resident
memory (``VmRSS``) and its peak (``VmHWM``) are sampled.  The first 100
epochs are warm-up (allocator pools, kernel caches); after them memory must
stay flat: the script prints, per backend, the least-squares slope of RSS over
the remaining samples (MB per 1,000 epochs) and the growth of the peak, and
exits non-zero when the peak grows by more than ``--allow`` MB.

    python benchmarks/studies/soak.py --backends torch,mxnet,paddle --epochs 2000 --size 64x96
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from typing import Dict, List

import numpy as np


def status_bytes(field: str) -> int:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in bytes (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} is not in /proc/self/status (this benchmark needs Linux)")


def worker(backend: str, epochs: int, size: str, every: int) -> None:
    """Run one soak in this process and print its samples as one JSON line."""
    from multistyle import transfer
    from multistyle.cli import _synthetic_images  # the same synthetic pictures `multistyle bench` uses
    import tempfile

    samples: List[Dict[str, float]] = []
    started = time.perf_counter()

    def on_epoch(record: Dict[str, float], current) -> None:
        if record["epoch"] % every == 0:
            samples.append({"epoch": record["epoch"], "rss": status_bytes("VmRSS"), "peak": status_bytes("VmHWM"),
                            "seconds": time.perf_counter() - started, "total": record["total"]})

    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        content, style = _synthetic_images(folder)
        result = transfer(content, style, backend=backend, device="cpu", weights="random:0", size=size,
                          epochs=epochs, callback=on_epoch)
    print(json.dumps({"backend": backend, "framework": result.framework_version, "samples": samples}))


def summarise(run: Dict, warmup: int) -> Dict[str, float]:
    steady = [s for s in run["samples"] if s["epoch"] >= warmup]
    epochs = np.array([s["epoch"] for s in steady], dtype=float)
    rss = np.array([s["rss"] for s in steady], dtype=float) / 2 ** 20
    slope = float(np.polyfit(epochs, rss, 1)[0] * 1000) if len(steady) > 1 else 0.0
    return {"rss_first": rss[0], "rss_last": rss[-1], "slope_mb_per_1000": slope,
            "peak_first": steady[0]["peak"] / 2 ** 20, "peak_last": steady[-1]["peak"] / 2 ** 20,
            "seconds": run["samples"][-1]["seconds"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="torch,mxnet,paddle")
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--size", default="64x96")
    parser.add_argument("--every", type=int, default=100, help="sample memory every N epochs (default: 100)")
    parser.add_argument("--allow", type=float, default=8.0,
                        help="peak growth after warm-up that still counts as flat, MB (default: 8)")
    parser.add_argument("--output", help="also write the samples as JSON")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.epochs, args.size, args.every)
        return 0
    runs, failed = [], False
    print(f"soak: {args.epochs} epochs at {args.size}, memory sampled every {args.every} epochs, "
          f"warm-up {args.every} epochs; {os.cpu_count()} CPUs", flush=True)
    print(f"{'backend':8} {'RSS@warm MB':>11} {'RSS@end MB':>10} {'slope MB/1k ep':>14} {'peak@warm':>9} "
          f"{'peak@end':>8} {'s':>6}  verdict", flush=True)
    for name in [n.strip() for n in args.backends.split(",") if n.strip()]:
        out = subprocess.run([sys.executable, __file__, "--worker", name, "--epochs", str(args.epochs),
                              "--size", args.size, "--every", str(args.every)], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{name:8} did not run: {(out.stderr.strip().splitlines() or ['?'])[-1]}", flush=True)
            failed = True
            continue
        run = json.loads(out.stdout.strip().splitlines()[-1])
        runs.append(run)
        s = summarise(run, args.every)
        flat = s["peak_last"] - s["peak_first"] <= args.allow
        failed |= not flat
        print(f"{name:8} {s['rss_first']:11.1f} {s['rss_last']:10.1f} {s['slope_mb_per_1000']:14.2f} "
              f"{s['peak_first']:9.1f} {s['peak_last']:8.1f} {s['seconds']:6.0f}  "
              f"{'flat' if flat else 'GROWS'}", flush=True)
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(runs, handle, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
