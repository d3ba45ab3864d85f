"""Loss reached per second by Adam, L-BFGS and RMSprop on one job, on each backend.

Every (backend, optimizer) runs in a fresh process (as ``multistyle compare``
runs them), on the same images, synthetic weights and objective (the d2l
preset's by default).  Each optimizer uses its own default rate.  Printed per
run: median seconds per iteration, the loss after the iterations, the total
time, and the wall-clock time to reach the loss Adam reaches in the same
number of iterations on that backend (the baseline, measured in the same run),
with the ratio to Adam's time (below 1: faster than Adam).

    python benchmarks/studies/optimizers.py --size 150x225 --epochs 50
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from typing import Dict, List, Optional

from multistyle.measure import median_step, run_isolated
from multistyle.settings import Settings, settings_dict

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "examples")
VARIANTS = {"adam": {"optimizer": "adam"}, "lbfgs": {"optimizer": "lbfgs"},
            "lbfgs+wolfe": {"optimizer": "lbfgs", "line_search": True}, "rmsprop": {"optimizer": "rmsprop"}}


def time_to(history: List[Dict[str, float]], target: float) -> Optional[float]:
    """Seconds until the total loss first reaches ``target`` (``None`` if never)."""
    for seconds, row in zip(itertools.accumulate(r["seconds"] for r in history), history):
        if row["total"] <= target:
            return seconds
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="torch,mxnet,paddle")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="default: %(default)s")
    parser.add_argument("--size", default="150x225")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--preset", default="d2l")
    parser.add_argument("--weights", default="random:0")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    print(f"{args.preset} objective at {args.size}, {args.epochs} iterations, weights {args.weights}; "
          f"{os.cpu_count()} CPUs", flush=True)
    print(f"{'backend':8} {'optimizer':12} {'s/it':>7} {'evals':>6} {'final loss':>11} {'seconds':>8} "
          f"{'t to Adam final':>15} {'ratio':>6}", flush=True)
    for backend in [n.strip() for n in args.backends.split(",") if n.strip()]:
        runs = {}
        for name in [v.strip() for v in args.variants.split(",") if v.strip()]:
            settings = Settings(preset=args.preset, epochs=args.epochs, **VARIANTS[name]).resolved()
            job = {"content": os.path.join(EXAMPLES, "content.jpg"), "style": os.path.join(EXAMPLES, "style.jpg"),
                   "weights": args.weights, "device": "cpu", "size": [height, width],
                   "settings": settings_dict(settings), "backend": backend, "label": f"{backend} {name}"}
            result = run_isolated(job)
            if "error" in result:
                print(f"{backend:8} {name:12} failed: {result['error']}", flush=True)
                continue
            runs[name] = result["history"]
        baseline = runs.get("adam")
        target = baseline[-1]["total"] if baseline else None
        adam_time = time_to(baseline, target) if baseline else None
        for name, history in runs.items():
            reached = time_to(history, target) if target is not None else None
            ratio = f"{reached / adam_time:6.2f}" if reached and adam_time else "     -"
            print(f"{backend:8} {name:12} {median_step(history)[0]:7.3f} {sum(r['evaluations'] for r in history):6d} "
                  f"{history[-1]['total']:11.5g} {sum(r['seconds'] for r in history):8.1f} "
                  f"{'never' if reached is None else f'{reached:.1f} s':>15} {ratio}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
