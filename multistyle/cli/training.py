"""``multistyle train`` (a style network for one style) and ``multistyle export`` (that network as ONNX)."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from dataclasses import replace
from typing import Dict, List

from .. import memory
from ..backend import backend_names, parse_device
from ..errors import MultistyleError
from ..progress import ProgressBar
from ..training import Photos, TrainOptions, check_memory, checkpoint_path, train
from ..transfer import UntrainedWeightsWarning
from ..vgg import parse_weights_spec
from .common import Interrupted
from .options import settings_from


def cmd_train(args: argparse.Namespace) -> int:
    options = TrainOptions(size=args.size, batch_size=args.batch_size, iterations=args.iterations, lr=args.lr,
                           width=args.width, checkpoint_every=args.checkpoint_every)
    options.check()
    # --lr is Adam's over the network (TrainOptions), not the image optimisation's rate of the settings.
    settings = replace(settings_from(args), lr=None).resolved()
    if args.backend not in backend_names():
        raise MultistyleError(f"--backend: unknown backend {args.backend!r}; choose from {', '.join(backend_names())}")
    kind, number = parse_device(args.device)
    device = f"gpu:{number or 0}" if kind == "gpu" else "cpu"
    predicted = memory.predict_training(args.backend, device, options.size, options.batch_size, options.width,
                                        settings.layers)
    limit = None if args.max_memory is None else memory.parse_bytes(args.max_memory)
    if args.plan:
        photos = Photos(args.contents, options.size, args.max_pixels)
        print(f"plan: train a style network of width {options.width} on {args.backend} ({device}) for "
              f"{options.iterations} iterations of {options.batch_size} crops of {options.size}x{options.size}, "
              f"from {len(photos)} photos; Adam lr {options.lr:g}, preset {settings.preset}")
        print(f"predicted peak memory: {predicted.describe()}")
    check_memory(limit, args.backend, device, options, settings.layers)
    if args.plan:
        if limit is not None:
            print(f"fits in --max-memory {args.max_memory} ({memory.format_bytes(limit)})")
        return 0
    kind, _ = parse_weights_spec(args.weights)
    if kind == "random":
        print("multistyle: warning: VGG-19 has random weights (untrained): the network will not learn a style. "
              "Use --weights imagenet or a weight file for real work.", file=sys.stderr)
    bar = ProgressBar(options.iterations, sys.stderr, enabled=not args.quiet and sys.stderr.isatty(), unit="it")
    done: Dict[str, float] = {"iteration": 0}
    history: List[Dict[str, float]] = []

    def on_iteration(record: Dict[str, float]) -> None:
        bar.update(record)
        done["iteration"] = record["iteration"]
        history.append(record)

    started = time.perf_counter()
    ckpt = checkpoint_path(args.output)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UntrainedWeightsWarning)
            network = train(args.style, args.contents, output=args.output, backend=args.backend, device=args.device,
                            weights=args.weights, options=options, settings=settings, resume=args.resume,
                            callback=on_iteration, max_pixels=args.max_pixels, max_memory=limit)
    except KeyboardInterrupt:
        bar.close()
        kept = (f"the last checkpoint is {ckpt}; continue with --resume" if os.path.exists(ckpt)
                else "no checkpoint was written yet")
        raise Interrupted(f"after iteration {int(done['iteration'])} of {options.iterations}; {kept}; "
                          f"{args.output} was not written") from None
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    steps = len(history)
    last = history[-1]["total"] if history else float("nan")
    print(f"wrote {args.output} ({network.describe()}; {steps} iterations on {args.backend} in {seconds:.1f} s, "
          f"last loss {last:.4g}); checkpoint {ckpt}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..nets.files import StyleNetwork
    from ..nets.onnx_export import export_onnx

    network = StyleNetwork.load(args.model, "MODEL")
    export_onnx(network, args.onnx)
    print(f"wrote {args.onnx} ({network.describe()}; input 'image' and output 'stylized': 1x3xHxW RGB in [0, 1])")
    return 0


def add_export_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="a style network: .safetensors, or a PyTorch examples .pth")
    parser.add_argument("--onnx", required=True, metavar="FILE",
                        help="write the network as an ONNX graph (input 'image', output 'stylized', 1x3xHxW in "
                             "[0, 1], H and W dynamic); needs pip install 'multistyle[onnx]'")
