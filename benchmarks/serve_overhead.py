"""What watching costs: s/it of a backend run from the live page (``multistyle serve``) against the same job
as a fresh ``multistyle run`` process, alternating, with medians; and how long the server takes to answer.

    python benchmarks/serve_overhead.py --backends torch,mxnet --size 150 --epochs 30 --rounds 3

Each round starts one ``multistyle serve`` process, runs the job on each backend from its API (one after
another, as the page does by default) and reads each pane's median s/it, then runs the same job in a fresh
``multistyle run`` process per backend and reads its ``--log``.  The server also reports how long it took to
print its URL (it checks the installed backends in a child process first) and its own peak memory (it
imports no framework).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def served_round(backends, size, epochs, weights):
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "multistyle", "serve", "--port", "0", "--weights", weights,
                                "--backends", ",".join(backends)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, cwd=tempfile.gettempdir())  # not the repository: its ./multistyle
                                                                        # lacks the installed backends
    url = re.search(r"http://\S+/", process.stdout.readline()).group(0)
    ready = time.perf_counter() - started
    try:
        request = urllib.request.Request(url + "api/run", json.dumps(
            {"backends": backends, "size": size, "epochs": epochs, "preset": "d2l"}).encode(),
            {"Content-Type": "application/json"})
        urllib.request.urlopen(request).read()
        while True:
            state = json.load(urllib.request.urlopen(url + "api/state"))
            if state["run"]["status"] != "running":
                break
            time.sleep(0.2)
        with open(f"/proc/{process.pid}/status") as status:
            rss = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
        panes = state["run"]["panes"]
        bad = {name: pane["error"] for name, pane in panes.items() if pane["status"] != "done"}
        if bad:
            raise SystemExit(f"serve_overhead: a run failed: {bad}")
        return {name: _median(pane["history"]) for name, pane in panes.items()}, ready, rss
    finally:
        process.terminate()
        process.wait(timeout=60)


def _median(history):
    return statistics.median(row["seconds"] for row in history[1:])


def run_seconds(backend, size, epochs, weights):
    with tempfile.TemporaryDirectory() as folder:
        log = os.path.join(folder, "log.json")
        subprocess.run([sys.executable, "-m", "multistyle", "run", "--backend", backend, "--weights", weights,
                        "--content", os.path.join(EXAMPLES, "content.jpg"), "--style",
                        os.path.join(EXAMPLES, "style.jpg"), "--size", str(size), "--epochs", str(epochs),
                        "--preset", "d2l", "--output", os.path.join(folder, "out.png"), "--quiet", "--log", log],
                       check=True, capture_output=True, timeout=1800, cwd=folder)
        with open(log) as handle:
            return _median(json.load(handle)["epochs"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="torch,mxnet")
    parser.add_argument("--size", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--weights", default="random:0")
    args = parser.parse_args()
    backends = args.backends.split(",")
    served, alone, ready, rss = {b: [] for b in backends}, {b: [] for b in backends}, [], []
    for index in range(args.rounds):
        times, seconds, peak = served_round(backends, args.size, args.epochs, args.weights)
        ready.append(seconds)
        rss.append(peak)
        for backend in backends:
            served[backend].append(times[backend])
            alone[backend].append(run_seconds(backend, args.size, args.epochs, args.weights))
        print(f"round {index + 1}: " + ", ".join(f"{b} serve {served[b][-1]:.4f} / run {alone[b][-1]:.4f} s/it"
                                                  for b in backends), flush=True)
    print(f"\nsize {args.size} (long edge), {args.epochs} epochs, {args.rounds} rounds, medians (min-max)")
    print(f"{'backend':10} {'serve s/it':>22} {'run s/it':>22} {'serve / run':>12}")
    for backend in backends:
        s, r = statistics.median(served[backend]), statistics.median(alone[backend])
        print(f"{backend:10} {s:10.4f} ({min(served[backend]):.4f}-{max(served[backend]):.4f}) "
              f"{r:10.4f} ({min(alone[backend]):.4f}-{max(alone[backend]):.4f}) {s / r:12.3f}")
    print(f"server: URL printed after {statistics.median(ready):.1f} s (median), peak RSS of the server process "
          f"{statistics.median(rss) / 2 ** 20:.0f} MiB")


if __name__ == "__main__":
    main()
