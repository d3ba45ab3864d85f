"""Predicted against measured peak memory: ``multistyle.memory`` vs the peak RSS of a fresh ``multistyle run``.

For each backend and size, a fresh ``multistyle run`` process (a few epochs
on synthetic weights, on the CPU) reports its own peak resident set size.  The prediction is what
``multistyle run --plan`` prints for the same job.  ``--fit`` also fits the
per-backend constants of each backend's spec (``memory=MemoryModel(...)`` in ``multistyle/backend/spec.py``) (least squares on the
relative error) from the same measurements, to paste there.

    python benchmarks/memory_report.py --sizes 150x225,300x450,600x900
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from typing import Dict, List, Sequence, Tuple

import numpy as np

from multistyle import memory
from multistyle.loop import plan_memory
from multistyle.settings import Settings
from multistyle.vgg import LAYER_BY_NAME

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples")


#: A fresh ``multistyle run`` that reports its own peak RSS (``VmHWM`` of its address space) on its last line.
#: Not ``wait4``'s ``ru_maxrss``: Linux carries the parent's high-water mark into a child across ``exec``, so a
#: child of a big process (this one, once it has imported a framework) would seem as big as its parent.
RUN_AND_REPORT = ("import sys\nfrom multistyle.cli import main\nfrom multistyle.measure import peak_rss\n"
                  "code = main(sys.argv[1:])\nprint('peak_rss_bytes', peak_rss(), file=sys.stderr)\nsys.exit(code)")


def measure(backend: str, size: Tuple[int, int], optimizer: str, epochs: int, extra: Sequence[str] = ()) -> int:
    """Peak RSS in bytes of a fresh ``multistyle run`` of this job (``extra``: more of its options)."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-c", RUN_AND_REPORT, "run", "--backend", backend, "--device", "cpu",
                   "--content", os.path.join(EXAMPLES, "content.jpg"), "--style", os.path.join(EXAMPLES, "style.jpg"),
                   "--output", os.path.join(folder, "out.png"), "--size", f"{size[0]}x{size[1]}",
                   "--epochs", str(epochs), "--optimizer", optimizer, "--weights", "random:0", "--quiet", *extra]
        done = subprocess.run(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lines = done.stderr.strip().splitlines()
        if done.returncode != 0 or not lines or not lines[-1].startswith("peak_rss_bytes "):
            raise RuntimeError(f"{backend} {size}: {lines[-1] if lines else done.returncode}")
        return int(lines[-1].split()[1])


def fit(rows: List[Dict[str, float]]) -> memory.Model:
    """Constants minimising the relative error of ``base + 2 x weights + k x activations + state``."""
    settings = Settings().resolved()
    layers = list(settings.content_layers) + list(settings.style_layers)
    last = max(LAYER_BY_NAME[name].index for name in layers)
    weights = memory.weight_bytes(last)
    activations = np.array([memory.activation_bytes(row["size"], last) for row in rows], dtype=float)
    state = np.array([row["predicted"] - row["model_parts"] for row in rows], dtype=float)
    measured = np.array([row["measured"] for row in rows], dtype=float)
    target = measured - state - 2.0 * weights
    design = np.stack([np.ones_like(activations), activations], axis=1) / measured[:, None]
    (base, factor), *_ = np.linalg.lstsq(design, target / measured, rcond=None)
    return memory.Model(base=float(base), weights=2.0, activations=float(factor))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="torch,mxnet,paddle,jax,tensorflow")
    parser.add_argument("--sizes", default="150x225,300x450,600x900")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--fit", action="store_true", help="also print fitted constants for each backend spec's memory model")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in text.split("x")) for text in args.sizes.split(",")]
    settings = Settings(optimizer=args.optimizer, epochs=args.epochs).resolved()
    print(f"peak memory of a fresh `multistyle run` ({args.optimizer}, {args.epochs} epochs, CPU), "
          f"predicted vs measured; {os.cpu_count()} CPUs", flush=True)
    print(f"{'backend':8} {'size':>8} {'predicted':>11} {'measured':>11} {'pred/meas':>9}", flush=True)
    worst = 0.0
    for backend in args.backends.split(","):
        rows = []
        for size in sizes:
            predicted = plan_memory(backend, "cpu", size, settings)  # type: ignore[arg-type]
            try:
                measured = measure(backend, size, args.optimizer, args.epochs)  # type: ignore[arg-type]
            except RuntimeError as exc:
                print(f"{backend:8} failed: {exc}", flush=True)
                break
            ratio = predicted.host / measured
            worst = max(worst, abs(ratio - 1))
            rows.append({"size": size, "predicted": predicted.host, "measured": measured,
                         "model_parts": predicted.parts["framework"] + predicted.parts["weights"]
                         + predicted.parts["activations"]})
            print(f"{backend:8} {size[0]:>3}x{size[1]:<4} {memory.format_bytes(predicted.host):>11} "
                  f"{memory.format_bytes(measured):>11} {ratio:9.2f}", flush=True)
        if args.fit and len(rows) >= 2:
            model = fit(rows)
            print(f"{backend:8} fitted: Model(base={model.base:.3g}, weights={model.weights:g}, "
                  f"activations={model.activations:.3g})", flush=True)
    print(f"largest prediction error: {worst:.0%}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
