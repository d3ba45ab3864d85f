"""Jobs per minute of ``multistyle batch``: the local engine against Ray, and Ray's overhead per job.

Eight small jobs (2 contents x 4 styles made from the bundled examples,
synthetic weights), each configuration a fresh ``multistyle batch`` process
into a fresh folder, exactly as a user runs it, so the wall time includes
starting Python, the workers, the framework imports and (for a Ray the
command starts itself) Ray.  Configurations alternate over the rounds; the
table gives medians.

- ``local``: the default, one worker using every core;
- ``local x2``: ``--workers 2``, the cores shared, one thread each;
- ``ray (own)``: ``--engine ray`` starting its own local Ray, ``--num-cpus``
  all cores (one job at a time, like ``local``), and ``--num-cpus 1`` (two at
  a time, like ``local x2``);
- ``ray (cluster)``: the same on a Ray already running (``ray start --head``,
  reached with ``--ray-address``): the per-job cost without Ray's start-up.

Ray's overhead per job = (Ray's wall time - the matching local wall time) / jobs.

    python benchmarks/batch_engines.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

import numpy as np
from PIL import Image

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples")
RAY_PORT = 6391


def make_inputs(folder: str) -> None:
    """Two contents and four styles from the examples (flips and crops), so all eight jobs differ."""
    content = Image.open(os.path.join(EXAMPLES, "content.jpg")).convert("RGB")
    style = Image.open(os.path.join(EXAMPLES, "style.jpg")).convert("RGB")
    os.makedirs(os.path.join(folder, "contents"))
    os.makedirs(os.path.join(folder, "styles"))
    content.save(os.path.join(folder, "contents", "a.png"))
    content.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(os.path.join(folder, "contents", "b.png"))
    width, height = style.size
    variants = [style, style.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
                style.crop((0, 0, width // 2, height // 2)), style.crop((width // 2, height // 2, width, height))]
    for k, picture in enumerate(variants):
        picture.save(os.path.join(folder, "styles", f"s{k}.png"))


def run_batch(folder: str, output: str, options: List[str], args: argparse.Namespace) -> Dict[str, float]:
    argv = [sys.executable, "-m", "multistyle", "batch", "--contents", os.path.join(folder, "contents"),
            "--styles", os.path.join(folder, "styles"), "--output", output, "--backend", args.backend,
            "--weights", "random:0", "--size", args.size, "--epochs", str(args.epochs), "--device", "cpu",
            "--quiet", *options]
    # A cluster started with `ray start` uses token authentication; a driver given its address must say so.
    environment = dict(os.environ, RAY_AUTH_MODE="token") if "--ray-address" in options else None
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=folder, capture_output=True, text=True, env=environment)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(options)} failed: {done.stderr.strip()[-500:]}")
    with open(os.path.join(output, "results.json")) as handle:
        rows = json.load(handle)["jobs"]
    assert all(row["status"] == "done" for row in rows), rows
    return {"wall": wall, "job_seconds": sum(row["seconds"] for row in rows), "jobs": len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--size", default="96x144")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    ray = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
    address = f"127.0.0.1:{RAY_PORT}"
    configs = {
        "local": ["--engine", "local"],
        "local x2": ["--engine", "local", "--workers", "2"],
        f"ray (own), {cores} CPU/job": ["--engine", "ray", "--num-cpus", str(cores)],
        "ray (own), 1 CPU/job": ["--engine", "ray", "--num-cpus", "1"],
        f"ray (cluster), {cores} CPU/job": ["--engine", "ray", "--ray-address", address, "--num-cpus", str(cores)],
        "ray (cluster), 1 CPU/job": ["--engine", "ray", "--ray-address", address, "--num-cpus", "1"],
    }
    walls: Dict[str, List[float]] = {name: [] for name in configs}
    job_seconds: Dict[str, List[float]] = {name: [] for name in configs}
    subprocess.run([ray, "start", "--head", f"--port={RAY_PORT}", f"--num-cpus={cores}", "--include-dashboard=false",
                    "--disable-usage-stats"], check=True, capture_output=True)
    try:
        with tempfile.TemporaryDirectory() as folder:
            make_inputs(folder)
            names = list(configs)
            for round_number in range(args.rounds):
                order = names[round_number % len(names):] + names[:round_number % len(names)]  # alternate
                for name in order:
                    output = os.path.join(folder, f"out-{round_number}-{names.index(name)}")
                    figures = run_batch(folder, output, configs[name], args)
                    walls[name].append(figures["wall"])
                    job_seconds[name].append(figures["job_seconds"])
                    print(f"round {round_number + 1}: {name:26} {figures['wall']:6.1f} s", file=sys.stderr, flush=True)
                    shutil.rmtree(output)
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True)
    jobs = 8
    median = {name: statistics.median(values) for name, values in walls.items()}
    print(f"{jobs} jobs ({args.backend}, {args.size}, {args.epochs} epochs, synthetic weights), {cores} cores, "
          f"{args.rounds} rounds, medians of fresh `multistyle batch` processes")
    print(f"{'engine':28} {'wall s':>7} {'jobs/min':>8} {'job s (sum)':>11} {'vs local':>8}")
    for name in configs:
        baseline = median["local"] if "1 CPU" not in name and "x2" not in name else median["local x2"]
        print(f"{name:28} {median[name]:7.1f} {jobs * 60 / median[name]:8.1f} "
              f"{statistics.median(job_seconds[name]):11.1f} {median[name] / baseline:8.2f}")
    print("Ray's overhead per job (s), against the local engine with the same parallelism:")
    for kind, local_name in ((f"{cores} CPU/job", "local"), ("1 CPU/job", "local x2")):
        own = (median[f"ray (own), {kind}"] - median[local_name]) / jobs
        cluster = (median[f"ray (cluster), {kind}"] - median[local_name]) / jobs
        print(f"  {kind:12} starting its own Ray {own:+6.2f}   on a running cluster {cluster:+6.2f}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
