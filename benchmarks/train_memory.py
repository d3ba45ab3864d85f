"""Predicted against measured peak memory of training: ``multistyle.memory.predict_training`` vs the peak RSS of
a fresh ``multistyle train`` process (two iterations, synthetic VGG-19 weights, the CPU).

The photos are the example pictures (their shorter sides are 300 pixels).  ``--fit`` also fits each backend's
training activation factor and fixed part (least squares on the relative error), to paste into its spec (``train_base`` and
``train_activations`` of ``memory=MemoryModel(...)`` in ``multistyle/backend/spec.py``).

    python benchmarks/train_memory.py --jobs 128x4,256x2,256x4
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from typing import List, Tuple

import numpy as np

from multistyle import memory
from multistyle.backend import BUILTIN_BACKENDS
from multistyle.settings import Settings

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples")
RUN_AND_REPORT = ("import sys\nfrom multistyle.cli import main\nfrom multistyle.measure import peak_rss\n"
                  "code = main(sys.argv[1:])\nprint('peak_rss_bytes', peak_rss(), file=sys.stderr)\nsys.exit(code)")


def measure(backend: str, size: int, batch: int, width: int) -> int:
    """Peak RSS in bytes of a fresh ``multistyle train`` of two iterations."""
    with tempfile.TemporaryDirectory() as folder:
        photos = os.path.join(folder, "photos")
        os.mkdir(photos)
        for name in ("content.jpg", "style.jpg"):
            shutil.copy(os.path.join(EXAMPLES, name), photos)
        command = [sys.executable, "-c", RUN_AND_REPORT, "train", "--backend", backend, "--device", "cpu",
                   "--style", os.path.join(EXAMPLES, "style.jpg"), "--contents", photos,
                   "--output", os.path.join(folder, "net.safetensors"), "--size", str(size), "--batch-size", str(batch),
                   "--width", str(width), "--iterations", "2", "--weights", "random:0", "--quiet"]
        done = subprocess.run(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lines = done.stderr.strip().splitlines()
        if done.returncode != 0 or not lines or not lines[-1].startswith("peak_rss_bytes "):
            raise RuntimeError(f"{backend} {size}x{batch}: {lines[-1] if lines else done.returncode}")
        return int(lines[-1].split()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(sorted(BUILTIN_BACKENDS)))
    parser.add_argument("--jobs", default="128x4,256x4", metavar="SIZExBATCH,...")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--fit", action="store_true", help="fit each backend's training activation factor")
    args = parser.parse_args()
    layers = Settings().resolved().layers
    jobs: List[Tuple[int, int]] = [tuple(int(v) for v in job.split("x")) for job in args.jobs.split(",")]  # type: ignore
    print(f"{'backend':<11} {'job':>8} {'predicted':>10} {'measured':>10} {'ratio':>6}")
    for backend in args.backends.split(","):
        rows = []
        for size, batch in jobs:
            measured = measure(backend, size, batch, args.width)
            predicted = memory.predict_training(backend, "cpu", size, batch, args.width, layers)
            rows.append((predicted, measured))
            print(f"{backend:<11} {size:>4}x{batch:<3} {predicted.host / 2**30:>9.2f}G {measured / 2**30:>9.2f}G "
                  f"{predicted.host / measured:>6.2f}", flush=True)
        if args.fit:
            # measured = fixed + factor x activations, least squares on the relative error.
            model = memory.host_model(backend)
            acts = np.array([p.parts["activations"] / model.train_activations for p, _ in rows])
            measured = np.array([m for _, m in rows], float)
            design = np.stack([np.ones_like(acts), acts], axis=1) / measured[:, None]
            fixed, factor = np.linalg.lstsq(design, np.ones_like(measured), rcond=None)[0]
            worst = np.abs((fixed + factor * acts) / measured - 1).max()
            print(f"{backend}: train_base={fixed:.3g}, train_activations={factor:.2f} (worst {worst:.0%} off)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
