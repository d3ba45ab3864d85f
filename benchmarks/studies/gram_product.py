"""The Gram product X·Xᵀ in MXNet, three ways, forward and backward, at the style layers' shapes.

``nd.dot(x, x.T)`` (what the protocol's ``matmul`` and ``transpose`` compose to: the transpose is a
copy), ``nd.dot(x, x, transpose_b=True)`` (no copy), and ``nd.linalg.syrk(x)`` (the symmetric rank-k
product, half the multiplications).  Each is timed on the feature matrices of the five style layers
of a 150×225 and a 300×450 image, the loss ``mean(G²)`` differentiated with respect to X, the three
alternating in each round; medians of the rounds.

    python benchmarks/studies/gram_product.py --rounds 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))

import numpy as np  # noqa: E402
from mxnet import autograd, nd  # noqa: E402

# (channels, downsampling) of conv1_1, conv2_1, conv3_1, conv4_1, conv5_1
LAYERS = ((64, 1), (128, 2), (256, 4), (512, 8), (512, 16))
WAYS = {
    "dot(x, x.T)": lambda x: nd.dot(x, x.T),
    "dot(x, x, transpose_b)": lambda x: nd.dot(x, x, transpose_b=True),
    "linalg.syrk(x)": lambda x: nd.linalg.syrk(x),
}


def once(way, matrices) -> float:
    started = time.perf_counter()
    for x in matrices:
        with autograd.record():
            g = WAYS[way](x)
            loss = (g * g).mean()
        loss.backward()
    for x in matrices:
        x.grad.wait_to_read()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}; ms per step's five Grams, "
          f"forward and backward (median of {args.rounds} rounds)")
    for height, width in ((150, 225), (300, 450)):
        matrices = []
        for channels, down in LAYERS:
            x = nd.array(rng.standard_normal((channels, (height // down) * (width // down)), dtype=np.float32))
            x.attach_grad()
            matrices.append(x)
        times = {way: [] for way in WAYS}
        for way in WAYS:  # warm-up
            once(way, matrices)
        for _ in range(args.rounds):
            for way in WAYS:
                times[way].append(once(way, matrices))
        base = statistics.median(times["dot(x, x.T)"])
        for way, values in times.items():
            median = statistics.median(values)
            print(f"{height}x{width}  {way:24} {median * 1000:7.1f} ms  ({base / median:.2f}× the first)")


if __name__ == "__main__":
    main()
