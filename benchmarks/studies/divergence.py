"""How two or three backends drift apart, step by step, on the same job.

All backends get the same weight file, images and starting image, and step
in lockstep.  For each pair this prints, at every logged step: the largest
pixel difference (normalised units), how many values differ by more than
0.01, the PSNR between the two images (dB, on RGB in [0, 1]), and the
relative difference of the total loss.  Gradients agree to float32 rounding
at step 0, yet ReLU, max-pool and |x| have kinks and Adam moves every pixel
by about the learning rate whatever the gradient's size, so rounding turns
into whole-step differences: pixels drift apart while the losses agree.

    python benchmarks/studies/divergence.py --size 64x96 --steps 100 --every 10
"""

from __future__ import annotations

import argparse
import itertools
import os
import warnings

os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))  # see the Paddle backend

import numpy as np  # noqa: E402

from multistyle import get_backend, images  # noqa: E402
from multistyle.backend import BackendUnavailable  # noqa: E402
from multistyle.objective import StyleLoss  # noqa: E402
from multistyle.settings import Settings  # noqa: E402
from multistyle.transfer import initial_image  # noqa: E402
from multistyle.vgg import random_weights  # noqa: E402
from multistyle.weightfiles import read_weights  # noqa: E402


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    rgb = [x[0].transpose(1, 2, 0) * images.RGB_STD + images.RGB_MEAN for x in (a, b)]
    mse = float(np.mean((rgb[0] - rgb[1]) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="torch,mxnet,paddle")
    parser.add_argument("--size", default="64x96", help="HxW")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--every", type=int, default=10, help="print every N steps (and steps 1 to 3)")
    parser.add_argument("--weights", default="random:0", help="random:SEED or a weight file")
    parser.add_argument("--preset", default="d2l")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    examples = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "examples")
    content_x = images.preprocess(images.load_image(os.path.join(examples, "content.jpg")), size)
    style_x = images.preprocess(images.load_image(os.path.join(examples, "style.jpg")), size)
    settings = Settings(preset=args.preset).resolved()
    if args.weights.startswith("random"):
        weights = random_weights(int(args.weights.partition(":")[2] or 0))
    else:
        weights, _ = read_weights(args.weights)

    runs = {}
    for name in args.backends.split(","):
        try:
            B = get_backend(name, "cpu")
        except BackendUnavailable as exc:
            print(f"{name}: skipped ({exc})")
            continue
        objective = StyleLoss(B, weights, settings, content_x, style_x)
        optimizer = B.optimizer("adam", initial_image(settings, content_x), settings.lr, settings.lr_decay,
                                settings.lr_decay_every)
        runs[name] = (B, objective, optimizer)
    pairs = list(itertools.combinations(runs, 2))
    if not pairs:
        raise SystemExit("need at least two usable backends")
    print(f"size {size[0]}x{size[1]}, preset {args.preset}, weights {args.weights}")
    print(f"{'step':>5} {'pair':14} {'max |dx|':>10} {'n > 0.01':>9} {'PSNR dB':>8} {'rel d loss':>11}")
    for step in range(1, args.steps + 1):
        losses, pixels = {}, {}
        for name, (B, objective, optimizer) in runs.items():
            losses[name] = B.item(optimizer.step(lambda x, o=objective: o.terms(x)["total"]))
            optimizer.epoch_end()
            pixels[name] = B.to_numpy(optimizer.image)
        if step <= 3 or step % args.every == 0 or step == args.steps:
            for a, b in pairs:
                diff = np.abs(pixels[a] - pixels[b])
                rel = abs(losses[a] - losses[b]) / abs(losses[b])
                print(f"{step:5d} {a + '-' + b:14} {diff.max():10.3g} {int((diff > 0.01).sum()):9d} "
                      f"{psnr(pixels[a], pixels[b]):8.1f} {rel:11.2e}")


if __name__ == "__main__":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main()
