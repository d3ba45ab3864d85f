"""Seconds per picture of an AdaIN network (``multistyle run --model`` with any style) on every backend, against
onnxruntime on the exported graph, with a new style each time (its encoding included).

Three parts, each measured in this run:

1. **Warm**: in one child process per backend, the backend's stylisation (:class:`ArbitraryRunner`: the
   content's and the style's encodings, the transform, the decoder) and onnxruntime's run of the same network
   (``multistyle export --onnx``: inputs content, style, alpha) alternate, ``--rounds`` times each per size,
   after two warm-ups each; each call draws a new style picture.  Medians, the backend ÷ onnxruntime ratio,
   and the FLOP rate (:func:`multistyle.nets.adain.flops`: the encoder twice, the decoder once).
2. **The peer's size**: the same at 384x384, the size of the peer figure (a distilled network of this family
   on onnxruntime: 0.11 s a picture with a new style each time, measured on this machine by the issue).
3. **Fresh process**: the wall time of ``multistyle run --model ... --style ...`` (imports, file, one
   stylisation, PNG) per backend at the example picture's size, alternated across rounds; medians.

The network's weights are freshly drawn (a random encoder, torch's default init for the decoder): a pass costs
the same whatever they are.  The style is as large as the content.

    python benchmarks/adain_inference.py --sizes 256,512,1024 --rounds 5
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

import numpy as np

from multistyle.backend import BUILTIN_BACKENDS
from multistyle.measure import alternate, call_isolated, usable_backends
from multistyle.nets import ArbitraryNetwork, adain
from multistyle.nets.onnx_export import export_onnx

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples")
PEER_SIZE, PEER_SECONDS = 384, 0.11


def _styles(size: int) -> Any:
    """An endless supply of new style pictures, ``(size, size, 3)`` in [0, 1]."""
    for seed in itertools.count():
        yield np.random.default_rng(seed).uniform(0, 1, (size, size, 3)).astype(np.float32)


def warm(backend: str, model: str, graph: str, sizes: List[int], rounds: int) -> Dict[int, Dict[str, List[float]]]:
    """In a child process: the backend's and onnxruntime's seconds per picture, alternated, per size."""
    import onnxruntime

    from multistyle.backend import get_backend
    from multistyle.nets.arbitrary import ArbitraryRunner
    from multistyle.nets.stylize import load_model

    run = ArbitraryRunner(get_backend(backend, "cpu"), load_model(model))
    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    alpha = np.array(1.0, np.float32)
    out = {}
    for size in sizes:
        content = np.random.default_rng(size).uniform(0, 1, (size, size, 3)).astype(np.float32)
        x = content.transpose(2, 0, 1)[None]
        styles = _styles(size)
        forms = {backend: lambda: run(content, [next(styles)]),
                 "onnxruntime": lambda: session.run(["stylized"], {"content": x, "alpha": alpha,
                                                                   "style": next(styles).transpose(2, 0, 1)[None]})}
        alternate(forms, 2)  # warm-up: the eager first call, the compilation on the second, first allocations
        out[size] = alternate(forms, rounds)
    return out


def fresh(backends: List[str], model: str, rounds: int) -> Dict[str, List[float]]:
    """Wall seconds of fresh ``multistyle run --model --style`` processes per backend, alternated."""
    content, style = (os.path.join(EXAMPLES, f"{kind}.jpg") for kind in ("content", "style"))
    times: Dict[str, List[float]] = {name: [] for name in backends}
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "out.png")
        for _ in range(rounds):
            for name in backends:
                started = time.perf_counter()
                subprocess.run([sys.executable, "-m", "multistyle", "run", "--model", model, "--content", content,
                                "--style", style, "--output", out, "--backend", name, "--device", "cpu"],
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                times[name].append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(sorted(BUILTIN_BACKENDS)))
    parser.add_argument("--sizes", default="256,512,1024")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fresh-rounds", type=int, default=3)
    args = parser.parse_args()
    backends, unusable = usable_backends(args.backends.split(","))
    for name, reason in unusable.items():
        print(f"{name}: skipped ({reason})")
    sizes = sorted(set(int(s) for s in args.sizes.split(",")) | {PEER_SIZE})
    with tempfile.TemporaryDirectory() as folder:
        model, graph = os.path.join(folder, "adain.safetensors"), os.path.join(folder, "adain.onnx")
        network = ArbitraryNetwork.fresh(adain.random_encoder(0), "random:0", seed=0)
        network.save(model)
        export_onnx(network, graph)
        print(f"1. warm: seconds per picture with a new style each time (style encoding included), median of "
              f"{args.rounds}, each backend alternated with onnxruntime on the same graph, in its own process")
        print(f"{'backend':<11} {'size':>5} {'backend s':>10} {'ort s':>8} {'ratio':>6} {'GFLOP/s':>8}")
        best: Dict[int, tuple] = {}
        for name in backends:
            result = call_isolated(warm, name, model, graph, sizes, args.rounds)
            for size in sizes:
                ours, theirs = statistics.median(result[size][name]), statistics.median(result[size]["onnxruntime"])
                rate = adain.flops(size, size) / ours / 1e9
                print(f"{name:<11} {size:>5} {ours:>10.3f} {theirs:>8.3f} {ours / theirs:>6.2f} {rate:>8.1f}",
                      flush=True)
                if size not in best or ours < best[size][1]:
                    best[size] = (name, ours)
        name, seconds = best[PEER_SIZE]
        print(f"\n2. at {PEER_SIZE}x{PEER_SIZE}: the fastest backend, {name}, {seconds:.3f} s a picture, against the "
              f"peer's {PEER_SECONDS} s (a distilled network of this family on onnxruntime): "
              f"{seconds / PEER_SECONDS:.2f}x")
        print(f"\n3. fresh processes at the example picture's size, with the example style, median of "
              f"{args.fresh_rounds}, alternated")
        for name, values in fresh(backends, model, args.fresh_rounds).items():
            print(f"multistyle run --model --style --backend {name:<11} {statistics.median(values):6.2f} s",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
