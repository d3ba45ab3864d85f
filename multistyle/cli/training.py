"""``multistyle train`` (a style network for one style) and ``multistyle export`` (that network as ONNX)."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from dataclasses import replace
from typing import Any, Callable, Dict, List

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
    if args.arbitrary:
        return _train_arbitrary(args)
    if not args.style:
        raise MultistyleError("--style: required (the style image the network learns), unless --arbitrary trains a "
                              "network for any style from --styles")
    if args.styles:
        raise MultistyleError("--styles: a per-style network learns one --style; --styles is for --arbitrary")
    options = TrainOptions(size=args.size, batch_size=args.batch_size, iterations=args.iterations,
                           lr=1e-3 if args.lr is None else args.lr, width=args.width,
                           checkpoint_every=args.checkpoint_every)
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
    return _training_run(args, options, lambda callback: train(
        args.style, args.contents, output=args.output, backend=args.backend, device=args.device, weights=args.weights,
        options=options, settings=settings, resume=args.resume, callback=callback, max_pixels=args.max_pixels,
        max_memory=limit))


def _train_arbitrary(args: argparse.Namespace) -> int:
    """``train --arbitrary``: AdaIN's decoder, from --contents and --styles."""
    from ..nets.adain_training import CONTENT_WEIGHT, LR, STYLE_WEIGHT, check_memory, check_options, train_arbitrary

    if not args.styles:
        raise MultistyleError("--styles: required with --arbitrary (a folder or glob of style images to learn from)")
    for option, given in (("--style", args.style), ("--style-layers", args.style_layers),
                          ("--content-layers", args.content_layers), ("--tv-weight", args.tv_weight),
                          ("--style-blend", args.style_blend), ("--style-scale", args.style_scale)):
        if given is not None:
            raise MultistyleError(f"{option}: does not apply to --arbitrary, whose loss is AdaIN's (content at "
                                  f"relu4_1, mean and standard deviation at relu1_1..relu4_1); leave it out")
    options = TrainOptions(size=args.size, batch_size=args.batch_size, iterations=args.iterations,
                           lr=LR if args.lr is None else args.lr, checkpoint_every=args.checkpoint_every)
    check_options(options)
    if args.backend not in backend_names():
        raise MultistyleError(f"--backend: unknown backend {args.backend!r}; choose from {', '.join(backend_names())}")
    kind, number = parse_device(args.device)
    device = f"gpu:{number or 0}" if kind == "gpu" else "cpu"
    limit = None if args.max_memory is None else memory.parse_bytes(args.max_memory)
    content_weight = CONTENT_WEIGHT if args.content_weight is None else args.content_weight
    style_weight = STYLE_WEIGHT if args.style_weight is None else args.style_weight
    if args.plan:
        photos = Photos(args.contents, options.size, args.max_pixels)
        paintings = Photos(args.styles, options.size, args.max_pixels, option="--styles", what="style images")
        print(f"plan: train an AdaIN decoder on {args.backend} ({device}) for {options.iterations} iterations of "
              f"{options.batch_size} content and {options.batch_size} style crops of {options.size}x{options.size}, "
              f"from {len(photos)} photos and {len(paintings)} style images; Adam lr {options.lr:g}, content weight "
              f"{content_weight:g}, style weight {style_weight:g}")
    predicted = check_memory(None if args.plan else limit, args.backend, device, options)
    if args.plan:
        print(f"predicted peak memory: {predicted.describe()}")
        check_memory(limit, args.backend, device, options)
        if limit is not None:
            print(f"fits in --max-memory {args.max_memory} ({memory.format_bytes(limit)})")
        return 0
    return _training_run(args, options, lambda callback: train_arbitrary(
        args.contents, args.styles, output=args.output, backend=args.backend, device=args.device,
        weights=args.weights, options=options, content_weight=content_weight, style_weight=style_weight,
        seed=args.seed, resume=args.resume, callback=callback, max_pixels=args.max_pixels, max_memory=limit))


def _training_run(args: argparse.Namespace, options: TrainOptions, run: Callable[[Callable[[Dict[str, float]], None]],
                  Any]) -> int:
    """A training run as ``train`` shows it: a warning for random weights, progress, Ctrl-C, the last line."""
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
            network = run(on_iteration)
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
    from ..nets.arbitrary import ArbitraryNetwork
    from ..nets.onnx_export import export_onnx
    from ..nets.stylize import load_model

    network = load_model(args.model, args.weights, "MODEL")
    export_onnx(network, args.onnx)
    if isinstance(network, ArbitraryNetwork):
        signature = ("inputs 'content' and 'style' (1x3xHxW RGB in [0, 1], sizes dynamic) and 'alpha' (a scalar), "
                     "output 'stylized' (the content's size)")
    else:
        signature = "input 'image' and output 'stylized': 1x3xHxW RGB in [0, 1]"
    print(f"wrote {args.onnx} ({network.describe()}; {signature})")
    return 0


def add_export_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="a trained network: .safetensors, a PyTorch examples .pth, "
                                                       "or an AdaIN decoder.pth (with --weights)")
    parser.add_argument("--onnx", required=True, metavar="FILE",
                        help="write the network as an ONNX graph (input 'image', output 'stylized', 1x3xHxW in "
                             "[0, 1], H and W dynamic; an AdaIN network's inputs are 'content', 'style' and "
                             "'alpha'); needs pip install 'multistyle[onnx]'")
    parser.add_argument("--weights", default="imagenet", metavar="FILE",
                        help="an AdaIN decoder.pth's encoder: the normalised VGG-19 it was trained with "
                             "(vgg_normalised.pth)")
