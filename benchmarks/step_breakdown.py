"""Where one iteration's time goes, on every backend: the step taken apart by subtraction.

For each installed backend, in a fresh process of its own, this times a ladder
of objectives that each add one part of multistyle's step to the one before,
all differentiated with respect to the image as the run does (through the
backend's ``compile_objective``, so JAX is jitted as in a run):

1. **network**: VGG-19 up to the deepest layer the job uses, frozen, forward
   and input gradient (the floor);
2. **+ content**: the content loss at its layer;
3. **+ Grams**: the style losses, a Gram matrix per style layer;
4. **+ TV**: the total-variation term, which makes the job's whole objective;
5. **+ optimizer**: the objective inside the run's optimizer (Adam), with the
   loop's closure, its ``keep`` and the epoch's schedule;
6. **+ host read**: the four loss values packed and read back, as the loop
   does each epoch on the CPU (rung 5 instead waits for the image itself);
7. **run**: ``multistyle.transfer``'s own epochs (the loop with its records
   and callback), for what the ladder does not account for.

Each rung's share is its median minus the median of the rung below it.  The
rungs alternate within each round (every rung's iterations, then the next
rung's, round after round), so a busy spell on the machine hits all alike;
medians exclude each round's warm-up.  The job is each framework's chapter
preset (``chapter_vs_multistyle.PRESET``) on the bundled example images with
``random:0`` weights (speed does not depend on the weights' values).

A difference of two medians is noisy when the part is small next to the step:
a rung can measure a few milliseconds faster than the one below it.  Such
parts are printed as measured (negative), not hidden; the p10-p90 spread of
each rung is printed beside it so a reader can judge.

    python benchmarks/step_breakdown.py --sizes 150x225,300x450 --output breakdown.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from typing import Any, Callable, Dict, List, Tuple

os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))

from chapter_vs_multistyle import EXAMPLES, PRESET  # noqa: E402

from multistyle import images  # noqa: E402
from multistyle.losses import content_loss, style_loss, tv_loss  # noqa: E402
from multistyle.measure import call_isolated  # noqa: E402
from multistyle.objective import StyleLoss, sum_terms  # noqa: E402

RUNGS = ("network", "+ content", "+ Grams", "+ TV", "+ optimizer", "+ host read", "run")
PARTS = ("network forward and backward", "content loss", "Grams and style losses", "total variation",
         "optimizer and closure", "host read", "loop bookkeeping")


def _objectives(B: Any, objective: StyleLoss) -> List[Callable[[Any], Dict[str, Any]]]:
    """Rungs 1-4: each a ``terms``-like function whose ``total`` adds one part to the rung below."""
    settings = objective.settings

    def features(x: Any) -> Tuple[Dict[str, Any], Any]:
        out = objective.features(x)  # the deepest layer named is the network's last
        return out, B.mean(out[objective.extract.wanted[max(objective.extract.wanted)]])

    def content(x: Any, out: Dict[str, Any]) -> Any:
        return settings.content_weight * sum_terms([weight * content_loss(B, out[name], target) for (name, weight), target
                                                    in zip(objective.content, objective.content_targets)])

    def style(x: Any, out: Dict[str, Any]) -> Any:
        return settings.style_weight * sum_terms([weight * style_loss(B, out[name], target, B.features_channels_last)
                                                  for (name, weight), target
                                                  in zip(objective.style, objective.style_targets)])

    def network(x: Any) -> Dict[str, Any]:
        _, last = features(x)
        return {"total": last}

    def plus_content(x: Any) -> Dict[str, Any]:
        out, last = features(x)
        return {"total": last + content(x, out)}

    def plus_grams(x: Any) -> Dict[str, Any]:
        out, last = features(x)
        return {"total": last + content(x, out) + style(x, out)}

    def plus_tv(x: Any) -> Dict[str, Any]:
        out, last = features(x)
        return {"total": last + content(x, out) + style(x, out) + settings.tv_weight * tv_loss(B, x)}

    return [network, plus_content, plus_grams, plus_tv]


class Job:
    """One backend's chapter job (``chapter_vs_multistyle.PRESET``) on the bundled examples, ``random:0`` weights."""

    def __init__(self, name: str) -> None:
        from multistyle.backend import get_backend
        from multistyle.settings import Settings
        from multistyle.vgg import deepest_index
        from multistyle.weightfiles import load_weights

        self.backend = B = get_backend(name, "cpu")
        self.settings = Settings(preset=PRESET[name]).resolved()
        self.weights = load_weights("random:0", B, deepest_index(self.settings.layers)).arrays
        self.content_image = images.load_image(os.path.join(EXAMPLES, "content.jpg"))
        self.style_image = images.load_image(os.path.join(EXAMPLES, "style.jpg"))

    def objective(self, size: Tuple[int, int]) -> Tuple[StyleLoss, Any]:
        """The job's objective at ``size``, and the preprocessed content image (the run's start)."""
        content_x = images.preprocess(self.content_image, size)
        style_x = images.preprocess(self.style_image, size)
        return StyleLoss(self.backend, self.weights, self.settings, content_x, style_x), content_x


def optimizer_iterations(B: Any, settings: Any, full: Callable[[Any], Dict[str, Any]], start: Any,
                         read: bool) -> Callable[[], None]:
    """A function that takes one iteration of the run's optimizer on ``full`` (the compiled objective) per call.

    The loop's closure, ``keep`` and epoch schedule as the run has them; with ``read`` the four loss values
    are packed and read back as the loop does each epoch, without it only the image is waited for.
    """
    optimizer = B.optimizer(settings.optimizer, start, settings.lr, settings.lr_decay, settings.lr_decay_every)
    kept: List[Dict[str, Any]] = []

    def closure(t: Any) -> Any:
        kept.append(B.keep(full(t)))
        return kept[-1]["total"]

    def iteration() -> None:
        kept.clear()
        optimizer.step(closure)
        optimizer.epoch_end()
        first = kept[0]
        packed = B.pack([first["content"], first["style"], first["total"], first["tv"]])
        if read:
            B.to_numpy(packed)
        else:  # waits for the step alone (MXNet's engine is asynchronous): the image, not the losses
            B.to_numpy(optimizer.image)

    return iteration


def _measure_backend(name: str, sizes: List[Tuple[int, int]], iterations: int, warmup: int,
                     rounds: int) -> Dict[str, Any]:
    """Every rung of the ladder on one backend at every size, in this (fresh) process."""
    import multistyle

    job = Job(name)
    B, settings = job.backend, job.settings
    results: Dict[str, Any] = {"framework": B.framework_version(), "sizes": {}}
    for size in sizes:
        objective, content_x = job.objective(size)
        compiled = [B.compile_objective(fn) for fn in _objectives(B, objective)]
        full = B.compile_objective(objective.terms)
        x = B.asarray(content_x)
        times: Dict[str, List[float]] = {rung: [] for rung in RUNGS}

        def gradient(fn: Callable[[Any], Dict[str, Any]]) -> None:
            loss, grad = B.loss_and_grad(lambda t: fn(t)["total"], x)
            B.to_numpy(B.pack([loss, B.mean(grad)]))  # waits for both

        def optimizer_epochs(read: bool) -> List[float]:
            iteration = optimizer_iterations(B, settings, full, content_x, read)
            seconds = []
            for _ in range(iterations):
                started = time.perf_counter()
                iteration()
                seconds.append(time.perf_counter() - started)
            return seconds

        for _ in range(rounds):
            for rung, fn in zip(RUNGS[:4], compiled):
                for k in range(iterations):
                    started = time.perf_counter()
                    gradient(fn)
                    if k >= warmup:
                        times[rung].append(time.perf_counter() - started)
            times["+ optimizer"] += optimizer_epochs(read=False)[warmup:]
            times["+ host read"] += optimizer_epochs(read=True)[warmup:]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", multistyle.UntrainedWeightsWarning)
                result = multistyle.transfer(job.content_image, job.style_image, backend=B, weights="random:0",
                                             size=size, epochs=iterations, preset=PRESET[name])
            times["run"] += [record["seconds"] for record in result.history[warmup:]]
        results["sizes"][f"{size[0]}x{size[1]}"] = {rung: _stats(values) for rung, values in times.items()}
    return results


def _stats(values: List[float]) -> Dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"median": statistics.median(ordered), "p10": pick(0.1), "p90": pick(0.9), "n": len(ordered)}


def table(name: str, framework: str, size: str, rungs: Dict[str, Dict[str, float]]) -> List[str]:
    """The markdown rows of one backend at one size: each part's milliseconds and share of the run's step."""
    step = rungs["run"]["median"]
    lines = [f"\n**{name}** ({framework}), {size}: the run's step {step * 1000:.0f} ms, "
             f"{step / rungs['network']['median']:.2f} × the network alone\n",
             "| part | rung median (p10–p90), ms | part, ms | share of the step |", "|---|---|---|---|"]
    below = 0.0
    for rung, part in zip(RUNGS, PARTS):
        r = rungs[rung]
        ms = (r["median"] - below) * 1000
        lines.append(f"| {part} | {r['median'] * 1000:.1f} ({r['p10'] * 1000:.1f}–{r['p90'] * 1000:.1f}) | "
                     f"{ms:.1f} | {ms / (step * 1000):.0%} |")
        below = r["median"]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="torch,mxnet,paddle,jax,tensorflow")
    parser.add_argument("--sizes", default="150x225,300x450", help="HxW,...")
    parser.add_argument("--iterations", type=int, default=8, help="per rung and round")
    parser.add_argument("--warmup", type=int, default=2, help="iterations left out of each rung's round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", default="", help="also write the figures as JSON")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in text.split("x")) for text in args.sizes.split(",")]
    print(f"{args.rounds} rounds of {args.iterations} iterations per rung, median after {args.warmup} warm-up "
          f"per round; {os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    everything = {}
    for name in args.backends.split(","):
        try:
            found = call_isolated(_measure_backend, name, sizes, args.iterations, args.warmup, args.rounds)
        except Exception as exc:  # a framework that is not installed, or failed: say so, go on
            print(f"\n{name}: not measured: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        everything[name] = found
        for size, rungs in found["sizes"].items():
            print("\n".join(table(name, found["framework"], size, rungs)), flush=True)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump(everything, handle, indent=2)


if __name__ == "__main__":
    main()
