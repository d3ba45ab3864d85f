"""Where the clamp goes: the PyTorch tutorial's L-BFGS with the clamp inside the closure vs after each step.

The tutorial clamps the image to [0, 1] at the start of every loss
evaluation.  L-BFGS measures curvature from the change of the gradient
between iterates; the clamp moves the point after that measurement, so the
curvature pairs describe steps that were not taken, and the loss can blow up
on long runs (pytorch/tutorials issues 143, 183, 3732).  ``--clamp step``
clamps after each completed step instead -- which, with one evaluation per
iteration, visits exactly the same points: both clamp x_k before evaluating
it, and both leave L-BFGS's curvature pair ``s = t d`` describing the step
before the clamp.  The two differ only when a line search evaluates trial
points (the closure clamps those too).  This runs the ``pytorch-tutorial``
preset with every ``--clamp`` (and the first two with the strong-Wolfe line
search) for many iterations on the bundled examples with synthetic weights,
prints the loss at checkpoints, the best loss and how often the loss jumped
above ten times the best so far, and can plot the curves.

    python benchmarks/studies/clamp.py --backend torch --epochs 1000 --size 64x96 --plot clamp.png
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np

from multistyle import transfer

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "examples")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--size", default="64x96")
    parser.add_argument("--weights", default="random:0")
    parser.add_argument("--plot", help="write the two loss curves to this PNG (needs matplotlib)")
    args = parser.parse_args()
    curves, evaluations = {}, {}
    for clamp, line_search in (("closure", False), ("step", False), ("end", False), ("none", False),
                               ("closure", True), ("step", True)):
        label = f"{clamp}{' +wolfe' if line_search else ''}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = transfer(os.path.join(EXAMPLES, "content.jpg"), os.path.join(EXAMPLES, "style.jpg"),
                              backend=args.backend, device="cpu", weights=args.weights, size=args.size,
                              preset="pytorch-tutorial", clamp=clamp, line_search=line_search, epochs=args.epochs)
        curves[label] = np.array([row["total"] for row in result.history])
        evaluations[label] = sum(row["evaluations"] for row in result.history)
    checkpoints = [c for c in (1, 10, 50, 100, 200, 300, 500, 1000, 2000) if c <= args.epochs]
    print(f"pytorch-tutorial preset on {args.backend}, {args.size}, weights {args.weights}: total loss at iteration")
    print(f"{'clamp':14} " + " ".join(f"{c:>9}" for c in checkpoints) + f" {'best':>9} {'blow-ups':>8} {'evals':>6}")
    for label, losses in curves.items():
        best = np.minimum.accumulate(losses)
        blowups = int(np.sum(losses[1:] > 10 * best[:-1]))
        print(f"{label:14} " + " ".join(f"{losses[c - 1]:9.4g}" for c in checkpoints)
              + f" {losses.min():9.4g} {blowups:8d} {evaluations[label]:6d}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

        figure, axes = plt.subplots(figsize=(6.4, 3.6), dpi=100)
        for label, losses in curves.items():
            axes.plot(np.arange(1, len(losses) + 1), losses, label=f"--clamp {label}", linewidth=1.0,
                      linestyle="--" if label == "step" else "-")
        axes.set_yscale("log")
        axes.set_xlabel("L-BFGS iteration")
        axes.set_ylabel("total loss")
        axes.set_title(f"pytorch-tutorial preset ({args.backend}, {args.size}, synthetic weights)")
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        figure.savefig(args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
