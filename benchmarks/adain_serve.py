"""How long a class waits on ``multistyle serve --model adain.safetensors``: a new painting dropped in, every
framework's picture, run after run.

One ``multistyle serve`` process with an AdaIN network (synthetic encoder, fresh decoder: a pass costs the same
whatever the weights).  Each round uploads a new painting (a random texture, as a user's upload reaches the
server) and asks for the network's pass on every backend, one after another as the page does by default
(``--parallel`` for all at once); the state is polled every 20 ms.  Per backend it prints the seconds from the
request to the backend's picture, for the first round (the backend's worker starts: the framework's import,
the network read and placed) and the median of the later ones (the worker is warm: the picture's pass, the
style's encoding included), and the pass alone as the worker timed it.

    python benchmarks/adain_serve.py --size 384 --rounds 4
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any, Dict, List

import numpy as np
from PIL import Image

from multistyle.backend import BUILTIN_BACKENDS
from multistyle.measure import usable_backends
from multistyle.nets import adain
from multistyle.nets.arbitrary import ArbitraryNetwork


def _call(url: str, data: Any = None, headers: Dict[str, str] = None) -> Any:
    request = urllib.request.Request(url, data, headers or {})
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())


def _painting(seed: int, size: int) -> bytes:
    """A random painting: smooth colour blobs over strokes, as PNG bytes."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (8, 8, 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC), np.float32)
    strokes = rng.normal(0, 40, (size, size, 3)).cumsum(axis=1 if seed % 2 else 0) / np.sqrt(size)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(base + strokes, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(sorted(BUILTIN_BACKENDS)))
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--parallel", action="store_true")
    args = parser.parse_args()
    backends, unusable = usable_backends(args.backends.split(","))
    for name, reason in unusable.items():
        print(f"{name}: skipped ({reason})")
    with tempfile.TemporaryDirectory() as folder:
        model = os.path.join(folder, "adain.safetensors")
        ArbitraryNetwork.fresh(adain.random_encoder(0), "random:0").save(model)
        process = subprocess.Popen([sys.executable, "-m", "multistyle", "serve", "--port", "0", "--weights", "random:0",
                                    "--model", model, "--backends", ",".join(backends)], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True, cwd=folder)
        url = re.search(r"http://\S+/", process.stdout.readline()).group(0)  # type: ignore[union-attr]
        arrived: Dict[str, List[float]] = {name: [] for name in backends}
        passes: Dict[str, List[float]] = {name: [] for name in backends}
        totals: List[float] = []
        try:
            for round_ in range(args.rounds):
                token = _call(url + "api/upload/style", _painting(round_, args.size),
                              {"X-Filename": f"painting{round_}.png"})["token"]
                body = {"backends": backends, "size": args.size, "epochs": 1, "network": True, "alpha": 1.0,
                        "style": token, "parallel": args.parallel}
                started = time.perf_counter()
                _call(url + "api/run", json.dumps(body).encode(), {"Content-Type": "application/json"})
                seen: Dict[str, float] = {}
                while True:
                    state = _call(url + "api/state")
                    now = time.perf_counter() - started
                    for name, pane in state["run"]["panes"].items():
                        if pane["status"] in ("done", "failed") and name not in seen:
                            seen[name] = now
                            if pane["status"] == "failed":
                                raise SystemExit(f"{name}: {pane['error']}")
                            passes[name].append(pane["summary"]["pass_seconds"])
                    if state["run"]["status"] != "running":
                        break
                    time.sleep(0.02)
                totals.append(time.perf_counter() - started)
                for name in backends:
                    arrived[name].append(seen[name] if args.parallel or name == backends[0] else
                                         seen[name] - seen[backends[backends.index(name) - 1]])
        finally:
            process.terminate()
            process.wait(timeout=60)
    mode = "all at once" if args.parallel else "one after another (its own wait, from the previous picture)"
    print(f"multistyle serve with an AdaIN network, {args.size} px, a new painting each round, backends {mode}; "
          f"{args.rounds} rounds")
    print(f"{'backend':<11} {'first round':>11} {'warm':>8} {'pass':>8}")
    for name in backends:
        print(f"{name:<11} {arrived[name][0]:>10.2f}s {statistics.median(arrived[name][1:]):>7.2f}s "
              f"{statistics.median(passes[name][1:]):>7.2f}s")
    print(f"every picture: first round {totals[0]:.2f} s, warm {statistics.median(totals[1:]):.2f} s (median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
