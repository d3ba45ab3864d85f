"""How good an AdaIN decoder trained for a fixed time on this machine is, in the losses the optimisation minimises.

A decoder is trained (``train_arbitrary``) for ``--minutes`` on pictures that packages ship (scikit-learn's
``load_sample_images`` and scikit-image's ``data`` pictures): the photos as contents, the textures as styles,
at ``--size``.  On held-out pairs (the bundled example photo and the bundled painting, which training never
sees; and a held-out shipped photo with that painting), the AdaIN picture's content and style losses under the
objective of ``multistyle run`` at the same working size, and under AdaIN's own loss (the one its decoder is
trained on: the AdaIN target at ``relu4_1``, the styles' means and standard deviations), are set beside those
of the optimisation's pictures after 50, 100 and 300 epochs.  Huang & Belongie report their network's style loss between those of 100 and 500
iterations of the optimisation, after 160,000 iterations of training on MS-COCO and WikiArt, on a GPU.

The encoder and loss network are synthetic VGG-19 weights unless ``--weights`` names a file: the comparison is
of losses under one objective, which holds for any weights, but the pictures are not stylised ones.

    pip install scikit-learn scikit-image
    python benchmarks/adain_quality.py --backend torch --minutes 5 --size 128
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from typing import Dict, List, Tuple

import numpy as np

from fast_quality import TimeUp, shipped_photos  # type: ignore[import-not-found]  # beside this file
from multistyle import images
from multistyle.nets.adain_training import ArbitraryLoss, train_arbitrary
from multistyle.nets.arbitrary import load_arbitrary
from multistyle.nets.stylize import stylize
from multistyle.objective import StyleLoss
from multistyle.settings import Settings
from multistyle.training import checkpoint_path
from multistyle.transfer import target_size, transfer
from multistyle.vgg import deepest_index
from multistyle.weightfiles import load_weights

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples")
#: Shipped pictures that are textures rather than scenes: the training's styles.
STYLES = ("hubble_deep_field", "immunohistochemistry", "sklearn1")
#: A shipped photo kept out of the training: the second held-out content.
HELD_OUT = "rocket"
EPOCHS = (50, 100, 300)


def _nchw(pixels: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)[None], np.float32)


def split(folder: str) -> Tuple[str, str, List[str]]:
    """The shipped pictures written into ``folder``'s ``contents`` and ``styles``, and the held-out photos."""
    everything = os.path.join(folder, "shipped")
    os.mkdir(everything)
    contents, styles = os.path.join(folder, "contents"), os.path.join(folder, "styles")
    os.mkdir(contents)
    os.mkdir(styles)
    held_out = [os.path.join(EXAMPLES, "content.jpg")]
    for path in shipped_photos(everything):
        name = os.path.basename(path)
        if HELD_OUT in name:
            held_out.append(path)
        else:
            shutil.move(path, styles if any(style in name for style in STYLES) else contents)
    if not os.listdir(styles):
        raise SystemExit("no shipped textures for the styles: pip install scikit-image")
    return contents, styles, held_out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--weights", default="random:0")
    args = parser.parse_args()
    settings = Settings().resolved()
    painting = os.path.join(EXAMPLES, "style.jpg")
    from multistyle.backend import get_backend

    B = get_backend(args.backend, "cpu")
    loaded = load_weights(args.weights, B, deepest_index(settings.layers))
    with tempfile.TemporaryDirectory() as folder:
        contents, styles, held_out = split(folder)
        output = os.path.join(folder, "adain.safetensors")
        started = time.perf_counter()

        def stop_when_spent(record: Dict[str, float]) -> None:
            if time.perf_counter() - started > 60 * args.minutes:
                raise TimeUp

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                train_arbitrary(contents, styles, output=output, backend=B, weights=args.weights, size=args.size,
                                batch_size=args.batch_size, lr=args.lr, iterations=10 ** 6, checkpoint_every=1,
                                callback=stop_when_spent)
            except TimeUp:
                pass
        network = load_arbitrary(checkpoint_path(output))
        trained = time.perf_counter() - started
        print(f"{args.backend}: trained the AdaIN decoder {network.iterations} iterations of {args.batch_size} "
              f"content and {args.batch_size} style crops of {args.size}x{args.size} ({len(os.listdir(contents))} "
              f"shipped photos, {len(os.listdir(styles))} shipped textures) in {trained:.0f} s; encoder and loss "
              f"network {loaded.label}")
        print(f"held-out pairs with the bundled painting at {args.size} px; each picture (uint8, as saved) scored by the "
              f"d2l objective that the optimisation minimises and by AdaIN's loss that the decoder is trained on "
              f"(content, style, total)")
        pixel = settings.pixel_domain
        encoder = B.parameters({k: v for k, v in network.params.items() if k.startswith("encoder.")})
        arbitrary = ArbitraryLoss(B, encoder)
        for photo in held_out:
            content = images.load_image(photo)
            shape = target_size(content, args.size)
            content_x = images.preprocess(content, shape, normalize=not pixel)
            style_pixels = images.resize_pixels(images.load_image(painting), shape)
            objective = StyleLoss(B, loaded.arrays, settings, content_x,
                                  images.preprocess(images.load_image(painting), shape, normalize=not pixel))
            content_pixels = images.resize_pixels(content, shape)
            target, style_features = arbitrary.targets(*(B.asarray(_nchw(p) * np.float32(255))
                                                         for p in (content_pixels, style_pixels)))
            pictures = {"the AdaIN picture": stylize(network, photo, style=painting, backend=B, size=shape).image}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                history = transfer(photo, painting, backend=B, weights=loaded, size=shape, settings=settings,
                         epochs=max(EPOCHS), snapshot_every=min(EPOCHS),
                         callback=lambda record, image: pictures.update(
                             {f"optimisation, {int(record['epoch'])} epochs": image()}
                             if int(record["epoch"]) in EPOCHS else {})).history
            print(f"  {os.path.basename(photo)} at {shape[0]}x{shape[1]}{'':<10} {'d2l objective':^32} "
                  f"{'AdaIN loss':^32}")
            for label, picture in pictures.items():
                x = picture.astype(np.float32) / 255.0
                d2l = objective.terms(B.asarray(images.to_input(x, normalize=not pixel)))
                ours = arbitrary.picture_terms(B.into_layers(B.asarray(_nchw(x))), target, style_features)
                row = [B.item(terms[key]) for terms in (d2l, ours) for key in ("content", "style", "total")]
                print(f"    {label:<26} " + " ".join(f"{value:>10.4g}" for value in row))
            print("    (the optimisation's own record at those epochs, of its unclamped float image: d2l total "
                  + ", ".join(f"{history[e - 1]['total']:.4g}" for e in EPOCHS) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
