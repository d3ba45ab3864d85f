"""What a fresh ``multistyle run --backend jax`` spends before its steps: compiling, or reading JAX's persistent
compilation cache, and how much of it the scale's targets (the content's features, the style's Gram matrices)
and the small programs cost.

Four forms, each run as a user runs it (a new process, its ``--log`` giving every epoch's seconds), alternating
in every round:

* **before, compiling**: an empty cache folder; the targets computed eagerly (``compile_forward`` the
  identity, as before), every operation compiled on its own;
* **now, compiling**: an empty cache folder; the targets one compiled program per scale;
* **before, cached**: the targets eagerly, and JAX's own rule for what it keeps (programs that took a second
  or more to compile: ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=1``), in a folder a run of this form
  filled before the rounds;
* **now, cached**: multistyle's rule (every program kept), in a folder a run of this form filled.

The backend keeps its cache in ``$XDG_CACHE_HOME/multistyle/jax``.  Reported per size, medians: the start-up
(the process's wall time less its epochs: imports, weights, the targets), the first epoch of each scale
(where the objective is traced and compiled or read), the wall time, and each form's wall time against the
first's.

    python benchmarks/studies/jax_cache.py --sizes 96x144,150x225 --preset fast --epochs 8 --rounds 5
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
from typing import Dict, List, Sequence, Tuple

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "examples")
#: A run whose targets are computed eagerly, as before ``compile_forward``.
EAGER_TARGETS = ("import sys; from multistyle.backends.jax_backend import JaxBackend; "
                 "JaxBackend.compile_forward = lambda self, fn: fn; "
                 "from multistyle.cli import main; sys.exit(main(sys.argv[1:]))")
FORMS = ("before, compiling", "now, compiling", "before, cached", "now, cached")


def run(form: str, cache: str, size: Tuple[int, int], arguments: Sequence[str]) -> Dict[str, float]:
    """Start-up, first epoch of each scale and wall seconds of one fresh process of ``form``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("JAX_")}
    env["XDG_CACHE_HOME"] = cache
    if form == "before, cached":
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "1"
    program = ["-c", EAGER_TARGETS] if form.startswith("before") else ["-m", "multistyle"]
    with tempfile.TemporaryDirectory() as folder:
        log = os.path.join(folder, "log.json")
        started = time.perf_counter()
        subprocess.run([sys.executable, *program, "run", "--backend", "jax", "--device", "cpu",
                        "--content", os.path.join(EXAMPLES, "content.jpg"), "--style",
                        os.path.join(EXAMPLES, "style.jpg"), "--output", os.path.join(folder, "out.png"),
                        "--size", f"{size[0]}x{size[1]}", "--weights", "random:0", "--quiet", "--log", log,
                        *arguments], cwd=folder, env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        with open(log) as handle:
            epochs = json.load(handle)["epochs"]
    firsts: Dict[int, float] = {}
    for epoch in epochs:
        firsts.setdefault(epoch.get("scale", 0), epoch["seconds"])
    found = {"start-up": wall - sum(epoch["seconds"] for epoch in epochs), "wall": wall}
    found.update({f"first epoch, scale {scale}": seconds for scale, seconds in sorted(firsts.items())})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="96x144,150x225")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    arguments = ["--preset", args.preset, "--epochs", str(args.epochs)]
    print(f"{args.rounds} alternating rounds of fresh processes, --preset {args.preset} --epochs {args.epochs}, "
          f"medians; {len(os.sched_getaffinity(0))} usable CPUs")
    for text in args.sizes.split(","):
        size = (int(text.split("x")[0]), int(text.split("x")[1]))
        with tempfile.TemporaryDirectory() as before, tempfile.TemporaryDirectory() as now:
            warm = {"before, cached": before, "now, cached": now}
            for form, folder in warm.items():  # fills each form's own cache at this size
                run(form, folder, size, arguments)
            found: Dict[str, Dict[str, List[float]]] = {form: {} for form in FORMS}
            for _ in range(args.rounds):
                for form in FORMS:
                    with tempfile.TemporaryDirectory() as empty:
                        for key, value in run(form, warm.get(form, empty), size, arguments).items():
                            found[form].setdefault(key, []).append(value)
            medians = {form: {key: statistics.median(values) for key, values in found[form].items()}
                       for form in FORMS}
            keys = list(medians[FORMS[0]])
            print(f"\n{text}: seconds " + " | ".join(keys) + f" | {FORMS[0]} / this (wall)")
            for form in FORMS:
                cells = " | ".join(f"{medians[form][key]:.2f}" for key in keys)
                print(f"  {form:>18}: {cells} | {medians[FORMS[0]]['wall'] / medians[form]['wall']:.2f}",
                      flush=True)


if __name__ == "__main__":
    main()
