"""Which operations the run's step adds to the framework's floor: each framework's own profiler, per operator.

``step_breakdown.py`` takes the step apart by subtracting medians of whole
iterations; on two cores a part of 5 % drowns in the spread.  This script
asks the framework instead.  For each backend, in a fresh process of its own,
it alternates, round after round, iterations of

- the **floor**: VGG-19 up to the deepest layer the job uses, frozen, forward
  and input gradient (``step_breakdown``'s network rung), and
- the **step**: the job's whole objective inside the run's optimizer, with the
  loop's closure and the epoch's host read (``step_breakdown``'s host-read
  rung),

all under the framework's profiler, and adds up each operator's time (forward
and backward operators separately, as the framework names them).  It prints,
per operator, the milliseconds per iteration in the floor and in the step and
their difference, largest difference first: the operations that keep the step
above its floor, by name.  The iterations' wall time is measured too, with the
profiler on (its own overhead is in both sides alike).

Profilers used (each the framework's documented one):

- torch: ``torch.profiler.profile`` on the CPU; self CPU time per operator;
- MXNet: ``mx.profiler`` with ``aggregate_stats`` (operators on the engine's
  threads, so its asynchronous execution is counted where it runs);
- Paddle: ``paddle.profiler.Profiler`` on the CPU, one per process (it cannot
  be started twice), each side's iterations a ``RecordEvent`` range; its Chrome
  trace's operator events (forward operators, backward grad nodes) summed per
  name within each range.

JAX and TensorFlow compile the objective into one program (XLA, ``tf.function``)
whose operations their profilers do not attribute to the source's operators on
the CPU; they are skipped with a line saying so.

    python benchmarks/profile_step.py --backends mxnet,torch --sizes 150x225,300x450
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import glob
import json
import os
import re
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List, Tuple

os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))

from step_breakdown import Job, _objectives, optimizer_iterations  # noqa: E402

from multistyle.measure import call_isolated  # noqa: E402

SIDES = ("floor", "step")


class _Profiler:
    """Profiles windows of iterations, each under a key; :meth:`finish` gives ``{key: {operator: ms}}``, summed."""

    def __init__(self) -> None:
        self.found: Dict[Any, collections.Counter] = collections.defaultdict(collections.Counter)

    @contextlib.contextmanager
    def window(self, key: Any) -> Iterator[None]:
        raise NotImplementedError

    def finish(self) -> Dict[Any, collections.Counter]:
        return self.found


class _TorchProfiler(_Profiler):
    @contextlib.contextmanager
    def window(self, key: Any) -> Iterator[None]:
        import torch.profiler

        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
            yield
        # Self time: each operator's own, without the operators it calls (aten::conv2d calls aten::mkldnn_...).
        self.found[key].update({event.key: event.self_cpu_time_total / 1000.0 for event in profile.key_averages()})


class _MXNetProfiler(_Profiler):
    def __init__(self) -> None:
        super().__init__()
        import mxnet as mx

        self._mx = mx
        mx.profiler.set_config(profile_imperative=True, aggregate_stats=True,
                               filename=os.path.join(tempfile.mkdtemp(prefix="mxprofile"), "profile.json"))

    @contextlib.contextmanager
    def window(self, key: Any) -> Iterator[None]:
        mx = self._mx
        mx.nd.waitall()
        mx.profiler.dumps(reset=True)  # forget the window before
        mx.profiler.set_state("run")
        yield
        mx.nd.waitall()
        mx.profiler.set_state("stop")
        # The "operator" domain only: the other ("MXNET_C_API") times the Python thread's calls, whose
        # longest is its wait for the engine (MXNDArraySyncCopyToCPU), not work of its own.
        stats = json.loads(mx.profiler.dumps(format="json"))
        self.found[key].update({name: float(figures["Total"])
                                for name, figures in stats.get("Time", {}).get("operator", {}).items()})


class _PaddleProfiler(_Profiler):
    """One profiler for the whole process (Paddle's cannot be started twice); windows are ``RecordEvent`` ranges."""

    def __init__(self) -> None:
        super().__init__()
        import paddle.profiler

        self._module = paddle.profiler
        self._folder = tempfile.mkdtemp(prefix="paddleprofile")
        self._keys: List[Any] = []
        self._profile = paddle.profiler.Profiler(targets=[paddle.profiler.ProfilerTarget.CPU],
                                                 on_trace_ready=paddle.profiler.export_chrome_tracing(self._folder))
        self._profile.start()

    @contextlib.contextmanager
    def window(self, key: Any) -> Iterator[None]:
        self._keys.append(key)
        with self._module.RecordEvent(f"multistyle-window-{len(self._keys) - 1}"):
            yield

    def finish(self) -> Dict[Any, collections.Counter]:
        self._profile.stop()
        (path,) = glob.glob(os.path.join(self._folder, "*.json"))
        with open(path, encoding="utf-8") as handle:
            events = [e for e in json.load(handle)["traceEvents"] if e.get("ph") == "X"]
        windows = [(float(e["ts"]), float(e["ts"]) + float(e["dur"]), self._keys[int(match.group(1))])
                   for e in events for match in [re.match(r"multistyle-window-(\d+)", e["name"])] if match]
        for event in events:  # forward operators ("matmul dygraph[...]") and backward nodes ("Global_MatmulGradNode")
            if event.get("cat") == "Operator":
                ts = float(event["ts"])
                for low, high, key in windows:
                    if low <= ts <= high:
                        self.found[key][event["name"].split(" ")[0].split("[")[0]] += float(event["dur"]) / 1000.0
        return self.found


PROFILERS = {"torch": _TorchProfiler, "mxnet": _MXNetProfiler, "paddle": _PaddleProfiler}


def _profile_backend(name: str, sizes: List[Tuple[int, int]], iterations: int, rounds: int) -> Dict[str, Any]:
    """Both sides at every size, in this (fresh) process: per operator milliseconds per iteration, and wall time."""
    job = Job(name)
    B, settings = job.backend, job.settings
    profiler = PROFILERS[name]()
    results: Dict[str, Any] = {"framework": B.framework_version(), "sizes": {}}
    for size in sizes:
        objective, content_x = job.objective(size)
        network = B.compile_objective(_objectives(B, objective)[0])
        x = B.asarray(content_x)

        def floor() -> None:
            loss, grad = B.loss_and_grad(lambda t: network(t)["total"], x)
            B.to_numpy(B.pack([loss, B.mean(grad)]))

        step = optimizer_iterations(B, settings, B.compile_objective(objective.terms), content_x, read=True)
        sides: Dict[str, Callable[[], None]] = {"floor": floor, "step": step}
        for fn in sides.values():  # warm-up, unprofiled: first calls allocate and select kernels
            fn()
            fn()
        seconds: Dict[str, List[float]] = {side: [] for side in SIDES}
        for _ in range(rounds):
            for side, fn in sides.items():
                with profiler.window((size, side)):
                    started = time.perf_counter()
                    for _ in range(iterations):
                        fn()
                    seconds[side].append((time.perf_counter() - started) / iterations)
        for side in SIDES:
            results["sizes"].setdefault(f"{size[0]}x{size[1]}", {})[side] = {
                "seconds": sorted(seconds[side])[len(seconds[side]) // 2]}
    for (size, side), totals in profiler.finish().items():
        results["sizes"][f"{size[0]}x{size[1]}"][side]["operators"] = {
            op: ms / (iterations * rounds) for op, ms in totals.items()}
    return results


def table(name: str, framework: str, size: str, found: Dict[str, Any], rows: int) -> List[str]:
    """Markdown: the step's and floor's wall time, then the operators whose time differs most, per iteration."""
    floor, step = found["floor"], found["step"]
    ops = sorted(set(floor["operators"]) | set(step["operators"]),
                 key=lambda op: step["operators"].get(op, 0.0) - floor["operators"].get(op, 0.0), reverse=True)
    profiled = {side: sum(found[side]["operators"].values()) for side in SIDES}
    lines = [f"\n**{name}** ({framework}), {size}, profiler on: step {step['seconds'] * 1000:.0f} ms, floor "
             f"{floor['seconds'] * 1000:.0f} ms ({step['seconds'] / floor['seconds']:.2f} ×); operators' own time "
             f"{profiled['step']:.0f} and {profiled['floor']:.0f} ms\n",
             "| operator | floor, ms/it | step, ms/it | step − floor, ms/it | share of the difference |",
             "|---|---|---|---|---|"]
    difference = profiled["step"] - profiled["floor"]
    for op in ops[:rows]:
        a, b = floor["operators"].get(op, 0.0), step["operators"].get(op, 0.0)
        share = f"{(b - a) / difference:.0%}" if difference > 0 else ""
        lines.append(f"| `{op}` | {a:.1f} | {b:.1f} | {b - a:+.1f} | {share} |")
    rest = sum(step["operators"].get(op, 0.0) - floor["operators"].get(op, 0.0) for op in ops[rows:])
    lines.append(f"| (the other {max(0, len(ops) - rows)} operators) | | | {rest:+.1f} | |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(PROFILERS))
    parser.add_argument("--sizes", default="150x225,300x450", help="HxW,...")
    parser.add_argument("--iterations", type=int, default=5, help="per side and round, profiled")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=12, help="operators shown per table")
    parser.add_argument("--output", default="", help="also write the figures as JSON")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in text.split("x")) for text in args.sizes.split(",")]
    print(f"{args.rounds} rounds of {args.iterations} profiled iterations per side, alternated, after 2 warm-up; "
          f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    everything = {}
    for name in args.backends.split(","):
        if name not in PROFILERS:
            print(f"\n{name}: not profiled: its objective runs as one compiled program, which its profiler does not "
                  "attribute to operators on the CPU (see benchmarks/step_breakdown.py for its ladder)")
            continue
        try:
            found = call_isolated(_profile_backend, name, sizes, args.iterations, args.rounds)
        except Exception as exc:  # a framework that is not installed, or failed: say so, go on
            print(f"\n{name}: not profiled: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        everything[name] = found
        for size, sides in found["sizes"].items():
            print("\n".join(table(name, found["framework"], size, sides, args.rows)), flush=True)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump(everything, handle, indent=2)


if __name__ == "__main__":
    main()
