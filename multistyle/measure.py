"""Measurement in child processes, in one place: a job run and timed in a fresh process, its backend's floor,
peak memory, and the statistics of seconds per iteration.

Each backend runs in its own child process (``spawn``), so that its peak
memory is its own, a framework's import-time settings cannot leak into
another's, and a crash in one framework does not take the others down.
``compare``, ``bench`` and ``explain`` all measure through here.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import images
from .backend import describe_backends, get_backend
from .errors import MultistyleError, first_line
from .progress import ProgressBar
from .settings import ResolvedSettings, Settings
from .transfer import UntrainedWeightsWarning, transfer
from .vgg import deepest_index
from .weightfiles import load_weights


def run_job(job: Dict[str, Any]) -> Dict[str, Any]:
    """Run one backend's job in this process and measure it.  Runs in a child process.

    With ``job["floor"] = N``, N iterations of the backend's floor are timed too,
    alternated with the run's: one after each of the first N epochs (the rest, if
    the run stops sooner, after it).  Both then see the same machine at the same
    moments, so a busy spell slows both rather than only one; the epoch clock does
    not count the floor's time.  The floor's network is built before the run, so
    the peak memory then includes it.
    """
    settings = Settings(**job["settings"])
    every = max(1, int(job.get("snapshot_every", 1)))
    snapshots: Dict[int, np.ndarray] = {}
    label = job.get("label", job["backend"])
    bar = ProgressBar(settings.epochs, sys.stderr, enabled=sys.stderr.isatty(), label=label)
    floor = Floor(job, settings.resolved()) if job.get("floor") else None
    wanted = int(job.get("floor") or 0)

    def on_epoch(record: Dict[str, float], current: Any) -> None:
        bar.update(record)
        epoch = int(record["epoch"])
        if job.get("snapshots") and (epoch % every == 0 or epoch == settings.epochs):
            snapshots[epoch] = current()
        if floor is not None and len(floor.times) < wanted:
            floor.step(after_epoch=epoch)

    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UntrainedWeightsWarning)
            result = transfer(job["content"], job["style"], backend=job["backend"], device=job["device"],
                              weights=job["weights"], size=tuple(job["size"]), settings=settings,
                              max_pixels=job.get("max_pixels", images.DEFAULT_MAX_PIXELS), callback=on_epoch,
                              deterministic=job.get("deterministic", False),
                              snapshot_every=every if job.get("snapshots") else 0)
    finally:
        bar.close()
    seconds = time.perf_counter() - started - (sum(floor.times) if floor else 0.0)
    while floor is not None and len(floor.times) < wanted:  # a run that stopped before N epochs
        floor.step(after_epoch=len(result.history))
    return {"backend": result.backend, "label": label, "optimizer": settings.optimizer,
            "floor": floor.times if floor else None, "floor_after_epoch": floor.after if floor else None,
            "device": result.device, "framework": result.framework_version,
            "weights": result.weights, "untrained": result.untrained, "size": list(result.size),
            "history": result.history, "image": result.image, "snapshots": snapshots, "seconds": seconds,
            "peak_rss_bytes": peak_rss(),
            "device_memory_bytes": result.peak_device_memory}


class Floor:
    """The backend's bare floor for a job: its VGG-19 up to the deepest layer in use, frozen, forward and the
    gradient with respect to the input only; no losses, no optimizer.  :meth:`step` times one iteration."""

    def __init__(self, job: Dict[str, Any], settings: ResolvedSettings) -> None:
        B = self.backend = get_backend(job["backend"], job["device"])
        layers = list(settings.layers)
        weights, _, _ = load_weights(job["weights"], B, deepest_index(layers))
        net = B.vgg19_layers(weights, deepest_index(layers))
        height, width = job["size"]
        self.x = B.asarray(np.random.default_rng(0).standard_normal((1, 3, height, width), dtype=np.float32))

        def forward(t: Any) -> Dict[str, Any]:
            t = B.into_layers(t)
            for layer in net:
                t = layer(t)
            return {"total": B.mean(t)}

        self.compiled = B.compile_objective(forward)  # as a run's objective is: JAX's jitted, the others' as is
        self.times: List[float] = []
        self.after: List[int] = []  # the run's epoch after which each iteration ran

    def step(self, after_epoch: int = 0) -> float:
        B = self.backend
        started = time.perf_counter()
        loss, grad = B.loss_and_grad(lambda t: self.compiled(t)["total"], self.x)
        B.to_numpy(B.pack([loss, B.mean(grad)]))  # waits for both, on an asynchronous device too
        self.times.append(time.perf_counter() - started)
        self.after.append(after_epoch)
        return self.times[-1]


def peak_rss() -> int:
    """Peak resident memory of this process, in bytes.

    ``VmHWM`` where Linux has it: ``ru_maxrss`` would also count the parent's
    peak, which Linux carries across ``exec`` into a spawned child.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def call_isolated(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a fresh child process (``spawn``); its exceptions are raised here."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()


def alternate(forms: Dict[str, Callable[[], Any]], rounds: int) -> Dict[str, List[float]]:
    """Seconds of each form (a call with no arguments that waits for its result), ``rounds`` times each,
    the forms alternating within each round: a drift of the machine falls on all of them alike."""
    times: Dict[str, List[float]] = {label: [] for label in forms}
    for _ in range(rounds):
        for label, form in forms.items():
            started = time.perf_counter()
            form()
            times[label].append(time.perf_counter() - started)
    return times


def median_lines(prefix: str, times: Dict[str, List[float]], width: int) -> List[str]:
    """One line per form: its median in ms, p10-p90, and the first form's median ÷ its own."""
    base = statistics.median(next(iter(times.values())))
    lines = []
    for label, values in times.items():
        median = statistics.median(values)
        lines.append(f"  {prefix}  {label:{width}} {median * 1000:7.1f} ms  (p10-p90 "
                     f"{np.percentile(values, 10) * 1000:.1f}-{np.percentile(values, 90) * 1000:.1f}; "
                     f"first / this {base / median:.2f})")
    return lines


def run_isolated(job: Dict[str, Any]) -> Dict[str, Any]:
    """:func:`run_job` in a fresh child process; any failure comes back as ``{"error": "one line"}``."""
    failed = {"backend": job["backend"], "label": job.get("label", job["backend"])}
    try:
        return call_isolated(run_job, job)
    except MultistyleError as exc:
        return dict(failed, error=str(exc))
    except concurrent.futures.process.BrokenProcessPool:
        return dict(failed, error="the worker process died (out of memory, or a crash in the framework)")
    except Exception as exc:  # anything else in the worker (CUDA out of memory, a framework bug): this run failed
        return dict(failed, error=f"{type(exc).__name__}: {first_line(exc)}".rstrip(": "))


def usable_backends(names: Sequence[str]) -> Tuple[List[str], Dict[str, str]]:
    """Split ``names`` into usable backends and ``{name: reason}`` for the others."""
    rows = {row["name"]: row for row in describe_backends(list(names))}
    usable = [name for name in names if rows[name]["usable"]]
    return usable, {name: rows[name]["reason"] for name in names if not rows[name]["usable"]}


def median_step(history: Sequence[Dict[str, float]]) -> Tuple[float, float, float]:
    """Median, and 10th/90th percentile, of seconds per iteration, warm-up excluded.

    Warm-up: the first 10 % of iterations, at least one and never all of them.
    """
    times = [row["seconds"] for row in history]
    warmup = min(max(1, len(times) // 10), len(times) - 1)
    steady = sorted(times[warmup:])
    pick = lambda q: steady[min(len(steady) - 1, int(q * len(steady)))]  # noqa: E731
    return statistics.median(steady), pick(0.1), pick(0.9)


def cli_seconds(job: Dict[str, Any], threads: Optional[str], epochs: int = 6) -> float:
    """Median s/it of a fresh ``multistyle run`` process on ``job`` (its backend, on the CPU), read from its
    ``--log``, with ``OMP_NUM_THREADS`` set to ``threads`` (None: unset): what a user sees from the command line."""
    environment = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if threads:
        environment["OMP_NUM_THREADS"] = threads
    style = job["style"][0] if isinstance(job["style"], (list, tuple)) else job["style"]
    weights = os.path.abspath(job["weights"]) if os.path.exists(job["weights"]) else job["weights"]
    with tempfile.TemporaryDirectory() as folder:
        log = os.path.join(folder, "log.json")
        argv = [sys.executable, "-m", "multistyle", "run", "--backend", job["backend"], "--device", "cpu",
                "--content", os.path.abspath(job["content"]), "--style", os.path.abspath(style),
                "--output", os.path.join(folder, "out.png"), "--size", f"{job['size'][0]}x{job['size'][1]}",
                "--epochs", str(epochs), "--preset", job["settings"]["preset"], "--quiet", "--log", log,
                "--weights", weights]
        subprocess.run(argv, cwd=folder, env=environment, check=True, capture_output=True, timeout=600)
        with open(log, encoding="utf-8") as handle:
            return statistics.median(row["seconds"] for row in json.load(handle)["epochs"][1:])
