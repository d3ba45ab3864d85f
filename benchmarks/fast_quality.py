"""How good a network trained for a fixed time on this machine is, in the loss the optimisation minimises.

A network is trained for ``--minutes`` on photos that packages ship (scikit-learn's ``load_sample_images``, and
scikit-image's ``data`` pictures where it is installed), at ``--size``; on a held-out photo (the bundled
example) its picture's loss, under the objective of ``multistyle run`` at the same working size, is set beside
the loss the optimisation reaches after 50, 100 and 300 epochs.  Johnson et al. report their network
matching roughly 50 to 80 L-BFGS iterations (with pretrained weights, on a GPU, after 40,000 iterations).

The loss network is synthetic VGG-19 weights unless ``--weights`` names a file: the comparison is of losses
under one objective, which holds for any weights, but the pictures are not stylised ones.

    pip install scikit-learn scikit-image
    python benchmarks/fast_quality.py --backend torch --minutes 5 --size 128
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from typing import Dict, List

import numpy as np
from PIL import Image

from multistyle import images
from multistyle.nets import StyleNetwork
from multistyle.nets.stylize import stylize
from multistyle.objective import StyleLoss
from multistyle.settings import Settings
from multistyle.training import checkpoint_path, train
from multistyle.transfer import target_size, transfer
from multistyle.vgg import deepest_index
from multistyle.weightfiles import load_weights

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples")


class TimeUp(Exception):
    """The training's time is spent: its last checkpoint is the network."""


def shipped_photos(folder: str) -> List[str]:
    """The photos scikit-learn (and scikit-image) ship, written into ``folder``."""
    paths = []
    try:
        from sklearn.datasets import load_sample_images

        for i, pixels in enumerate(load_sample_images().images):
            paths.append(os.path.join(folder, f"sklearn{i}.png"))
            Image.fromarray(pixels).save(paths[-1])
    except ImportError:
        pass
    try:
        from skimage import data

        for name in ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry"):
            pixels = getattr(data, name)()
            if pixels.ndim == 3 and min(pixels.shape[:2]) >= 256:
                paths.append(os.path.join(folder, f"skimage-{name}.png"))
                Image.fromarray(pixels[..., :3]).save(paths[-1])
    except ImportError:
        pass
    if not paths:
        raise SystemExit("no shipped photos: pip install scikit-learn (and scikit-image for more)")
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weights", default="random:0")
    args = parser.parse_args()
    settings = Settings().resolved()
    style, held_out = os.path.join(EXAMPLES, "style.jpg"), os.path.join(EXAMPLES, "content.jpg")
    from multistyle.backend import get_backend

    B = get_backend(args.backend, "cpu")
    loaded = load_weights(args.weights, B, deepest_index(settings.layers))
    with tempfile.TemporaryDirectory() as folder:
        photos = os.path.join(folder, "photos")
        os.mkdir(photos)
        count = len(shipped_photos(photos))
        output = os.path.join(folder, "net.safetensors")
        started, iterations = time.perf_counter(), [0]

        def stop_when_spent(record: Dict[str, float]) -> None:
            iterations[0] = int(record["iteration"])
            if time.perf_counter() - started > 60 * args.minutes:
                raise TimeUp

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                train(style, photos, output=output, backend=B, weights=loaded,
                      size=args.size, batch_size=args.batch_size, width=args.width, lr=args.lr,
                      iterations=10 ** 6, checkpoint_every=1, callback=stop_when_spent)
            except TimeUp:
                pass
        network = StyleNetwork.load(checkpoint_path(output))
        trained = time.perf_counter() - started
        content = images.load_image(held_out)
        shape = target_size(content, args.size)
        pixel = settings.pixel_domain
        content_x = images.preprocess(content, shape, normalize=not pixel)
        style_x = images.preprocess(images.load_image(style), shape, normalize=not pixel)
        objective = StyleLoss(B, loaded.arrays, settings, content_x, style_x)
        picture = stylize(network, held_out, backend=B, size=shape).image
        x = images.to_input(picture.astype(np.float32) / 255.0, normalize=not pixel)
        network_loss = B.item(objective.terms(B.asarray(x))["total"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            history = transfer(held_out, style, backend=B, weights=loaded, size=shape, settings=settings,
                               epochs=300).history
    print(f"{args.backend}, width {args.width}: trained {network.iterations} iterations of {args.batch_size} crops of "
          f"{args.size}x{args.size} from {count} shipped photos in {trained:.0f} s; loss network {loaded.label}")
    print(f"held-out photo at {shape[0]}x{shape[1]}, the d2l objective:")
    print(f"  the network's picture          total loss {network_loss:.4g}")
    for epoch in (50, 100, 300):
        print(f"  optimisation after {epoch:3} epochs  total loss {history[epoch - 1]['total']:.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
