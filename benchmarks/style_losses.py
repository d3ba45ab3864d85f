"""Issue 42's figures: seconds per step of each ``--style-loss`` against Gram's, on every backend, in one run.

For each backend and size, the losses alternate round by round (so a drift of the machine touches each
alike); each run's step time is the median of its epoch-to-epoch times after the first two (a compiling
backend compiles there).  The ratio is each loss's median over Gram's, measured in the same run.  With
``--fresh``, the same again as wall-clock seconds of a fresh ``multistyle run`` process per loss (start-up,
weights and compilation included), as a user meets them.  With ``--memory``, each loss's peak resident memory
in a fresh process against Gram's on the same style layers (``mrf`` reads its own), beside what ``--plan``
predicts it adds (``memory.style_loss_bytes``), and the whole peak ``--plan`` predicts against the measured one.
``--losses`` picks some of the losses (Gram's always runs: it is the baseline).

    python benchmarks/style_losses.py --sizes 150x225,300x450 --epochs 8 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Dict, List, Tuple

import memory_report
import multistyle
from multistyle.loop import plan_memory
from multistyle.losses import STYLE_LOSSES
from multistyle.memory import format_bytes
from multistyle.references import floor
from multistyle.settings import Settings

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, os.pardir, "examples")
CONTENT, STYLE = os.path.join(EXAMPLES, "content.jpg"), os.path.join(EXAMPLES, "style.jpg")


def step_seconds(backend: str, size: Tuple[int, int], loss: str, epochs: int) -> float:
    """The median seconds of one optimizer step of an in-process run (the first two steps left out), as the
    run's own records give them (an asynchronous backend's are its batches' wall times shared out)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", multistyle.UntrainedWeightsWarning)
        history = multistyle.transfer(CONTENT, STYLE, backend=backend, device="cpu", weights="random:0", size=size,
                                      epochs=epochs, style_loss=loss).history
    return statistics.median(record["seconds"] for record in history[2:])


def cpu_name() -> str:
    """The processor's model name (Linux), or the machine's architecture."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fresh_seconds(backend: str, size: Tuple[int, int], loss: str, epochs: int) -> float:
    """Wall-clock seconds of a fresh ``multistyle run`` process."""
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "multistyle", "run", "--backend", backend, "--device", "cpu",
                        "--content", CONTENT, "--style", STYLE, "--weights", "random:0", "--size", f"{size[0]}x{size[1]}",
                        "--epochs", str(epochs), "--style-loss", loss, "--output", os.path.join(folder, "out.png"),
                        "--quiet"], check=True, cwd=folder, capture_output=True)
        return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="torch,mxnet,paddle,jax,tensorflow")
    parser.add_argument("--sizes", default="150x225,300x450")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--fresh", action="store_true", help="also time fresh `multistyle run` processes")
    parser.add_argument("--memory", action="store_true", help="also measure each loss's peak memory")
    parser.add_argument("--losses", default=",".join(STYLE_LOSSES), help="the losses to measure, with gram")
    args = parser.parse_args()
    losses = ["gram"] + [loss for loss in args.losses.split(",") if loss in STYLE_LOSSES and loss != "gram"]
    sizes = [tuple(int(v) for v in text.split("x")) for text in args.sizes.split(",")]
    backends = floor.installed(args.backends)
    print(f"# {cpu_name()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print("| backend | size | " + " | ".join(f"{loss} s/step" for loss in losses) + " | "
          + " | ".join(f"{loss} / gram" for loss in losses[1:]) + " |")
    print("|---" * (2 + 2 * len(losses) - 1) + "|")
    for backend in backends:
        for size in sizes:
            times: Dict[str, List[float]] = {loss: [] for loss in losses}
            for _ in range(args.rounds):
                for loss in losses:
                    times[loss].append(step_seconds(backend, size, loss, args.epochs))
            median = {loss: statistics.median(values) for loss, values in times.items()}
            print(f"| {backend} | {size[0]}x{size[1]} | " + " | ".join(f"{median[l]:.3f}" for l in losses)
                  + " | " + " | ".join(f"{median[l] / median['gram']:.2f}" for l in losses[1:]) + " |",
                  flush=True)
            if args.fresh:
                wall: Dict[str, List[float]] = {loss: [] for loss in losses}
                for _ in range(args.rounds):
                    for loss in losses:
                        wall[loss].append(fresh_seconds(backend, size, loss, args.epochs))
                median = {loss: statistics.median(values) for loss, values in wall.items()}
                print(f"| {backend} (fresh run, s) | {size[0]}x{size[1]} | "
                      + " | ".join(f"{median[l]:.2f}" for l in losses) + " | "
                      + " | ".join(f"{median[l] / median['gram']:.2f}" for l in losses[1:]) + " |", flush=True)
    if args.memory:
        print("\n| backend | size | loss | peak RSS | measured - gram's | predicted - gram's | predicted / measured "
              "| whole peak predicted / measured |")
        print("|---" * 8 + "|")
        for backend in backends:
            for size in sizes:
                for loss in losses[1:]:
                    settings = Settings(style_loss=loss).resolved()
                    layers = ["--style-layers", ",".join(settings.style_layers)]
                    gram = memory_report.measure(backend, size, "adam", 3, ["--style-loss", "gram", *layers])
                    peak = memory_report.measure(backend, size, "adam", 3, ["--style-loss", loss])
                    baseline = Settings(style_layers=list(settings.style_layers)).resolved()
                    plan = plan_memory(backend, "cpu", size, settings).host
                    measured, predicted = peak - gram, plan - plan_memory(backend, "cpu", size, baseline).host
                    ratio = f"{predicted / measured:.2f}" if measured > 0 else "-"
                    print(f"| {backend} | {size[0]}x{size[1]} | {loss} | {format_bytes(peak)} | "
                          f"{measured / 2 ** 20:+.0f} MiB | {predicted / 2 ** 20:+.0f} MiB | {ratio} | "
                          f"{plan / peak:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
