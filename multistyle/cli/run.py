"""``multistyle run``: one image, every output location checked before the work; ``--plan`` without it."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from typing import Callable, Dict, Optional

import numpy as np

from .. import animation, images, memory
from ..backend import backend_names, parse_device
from ..errors import MultistyleError
from ..loop import plan_memory, scale_plan, write_log
from ..objective import check_mrf_sizes
from ..progress import ProgressBar
from ..settings import DEFAULT_SIZE, ResolvedSettings, blend_mismatch, settings_dict
from ..transfer import UntrainedWeightsWarning, read_masks, target_size, transfer
from ..vgg import LAYERS, deepest_index, parse_weights_spec
from .common import Interrupted
from .options import settings_from

LOG_EXTENSIONS = (".csv", ".json")


def _intermediate_path(output: str, epoch: int) -> str:
    stem, extension = os.path.splitext(output)
    return f"{stem}.epoch{epoch:05d}{extension}"


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)
    except OSError:
        return False


def _check_outputs(args: argparse.Namespace) -> None:
    """Every output location, checked before weights are loaded and the long optimisation starts: a run must
    not fail after it has done the work."""
    images.check_output_path(args.output)
    for option, source in (("--content", args.content), *(("--style", path) for path in args.style or ())):
        if _same_file(args.output, source) or os.path.abspath(args.output) == os.path.abspath(source):
            raise MultistyleError(f"--output: {args.output!r} is the {option[2:]} image; refusing to overwrite an input")
    if args.log:
        if os.path.splitext(args.log)[1].lower() not in LOG_EXTENSIONS:
            raise MultistyleError(f"--log: expected a .csv or .json file name, got {args.log!r}")
        images.check_writable(args.log, "--log")
    if args.animate:
        animation.check_animation_path(args.animate)
        if args.animate_every < 0:
            raise MultistyleError(f"--animate-every: expected a positive number of epochs, got {args.animate_every}")
    if args.save_every < 0:
        raise MultistyleError(f"--save-every: expected 0 (off) or a positive number of epochs, got {args.save_every}")
    # Snapshots go beside the output, so the output's check covers their folder.


def cmd_run(args: argparse.Namespace) -> int:
    if args.model:
        return _run_model(args)
    if not args.style:
        raise MultistyleError("--style: required (a style image), unless --model names a trained network")
    if args.size is None:
        args.size = f"{DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}"
    _check_outputs(args)
    kind, _ = parse_weights_spec(args.weights)
    settings = settings_from(args).resolved()
    if settings.style_blend is not None and len(settings.style_blend) != len(args.style):
        raise MultistyleError(blend_mismatch(len(settings.style_blend), len(args.style)))
    read_masks(settings, len(args.style), args.max_pixels)
    if settings.style_loss == "mrf":  # the coarsest scale's picture must hold a patch at each style layer
        content = images.load_image(args.content, "--content", args.max_pixels)
        check_mrf_sizes(settings, scale_plan(target_size(content, args.size), settings.scales, settings.epochs,
                                             settings.final_share)[0][0])
    limit = None if args.max_memory is None else memory.parse_bytes(args.max_memory)
    if args.plan:
        return _print_plan(args, settings, limit)
    if kind == "random":  # after every check of the options, so that a mistake is the only line printed
        print("multistyle: warning: VGG-19 has random weights (untrained); the result will not look stylised. "
              "Use --weights imagenet or a weight file for real work.", file=sys.stderr)
    epochs = settings.epochs
    bar = ProgressBar(epochs, sys.stderr, enabled=not args.quiet and sys.stderr.isatty())

    progress = {"epoch": 0, "snapshot": "", "writing": ""}

    def on_epoch(record: Dict[str, float], current: Callable[[], np.ndarray]) -> None:
        bar.update(record)
        progress["epoch"] = int(record["epoch"])
        if args.save_every and record["epoch"] % args.save_every == 0 and record["epoch"] < epochs:
            snapshot = _intermediate_path(args.output, int(record["epoch"]))
            progress["writing"] = snapshot
            images.save_image(current(), snapshot)
            progress["snapshot"] = snapshot

    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UntrainedWeightsWarning)
            result = transfer(args.content, args.style, backend=args.backend, device=args.device,
                              weights=args.weights, size=args.size, max_pixels=args.max_pixels, callback=on_epoch,
                              settings=settings, deterministic=args.deterministic, snapshot_every=args.save_every,
                              max_memory=limit, animate=args.animate, animate_every=args.animate_every)
    except KeyboardInterrupt:
        bar.close()  # before the message, so that it gets a line of its own
        # Snapshots are written atomically, so the last one named here is complete.  One whose write the
        # Ctrl-C met after its rename, before the line after it, exists complete too: it is the last.
        if progress["writing"] and os.path.exists(progress["writing"]):
            progress["snapshot"] = progress["writing"]
        kept = (f"the last snapshot is {progress['snapshot']}" if progress["snapshot"]
                else "nothing was written")
        raise Interrupted(f"after epoch {progress['epoch']} of {epochs}; {kept}; "
                          f"{args.output} was not written") from None
    finally:
        bar.close()
    elapsed = time.perf_counter() - started
    result.save(args.output)
    if args.log:
        meta = {"backend": result.backend, "device": result.device, "framework": result.framework_version,
                "weights": result.weights, "size": list(result.size), "settings": settings_dict(result.settings),
                "seconds": elapsed, "stopped": result.stopped}
        write_log(result.history, args.log, meta)
    final = result.history[-1]
    print(f"wrote {args.output} ({result.size[0]}x{result.size[1]}, {result.backend} on {result.device}, "
          f"{len(result.history)} epochs in {elapsed:.1f} s, final loss {final['total']:.4g})"
          + (f"; stopped early: {result.stopped}" if result.stopped else ""))
    return 0


def _run_model(args: argparse.Namespace) -> int:
    """``run --model``: one pass of a trained network; VGG-19 is not loaded, except as an AdaIN encoder."""
    from ..nets.adain import check_alpha
    from ..nets.arbitrary import ArbitraryNetwork
    from ..nets.stylize import STYLE_BUILT_IN, check_preserve_color, load_model, stylize

    _check_outputs(args)
    alpha = check_alpha(args.alpha)
    network = load_model(args.model, args.weights)
    if isinstance(network, ArbitraryNetwork):
        if not args.style:
            raise MultistyleError(f"--style: {args.model} is an AdaIN network, which stylises with any style image; "
                                  f"give one with --style")
        if network.untrained:
            print(f"multistyle: warning: the AdaIN encoder has random weights ({network.metadata['encoder']}); the "
                  f"result will not look stylised", file=sys.stderr)
        what = f"{network.describe()}, {len(args.style)} style{'s' if len(args.style) > 1 else ''}, alpha {alpha:g}"
    else:
        if args.style:
            raise MultistyleError(STYLE_BUILT_IN)
        for option, given in (("--alpha", alpha != 1.0), ("--content-masks", args.content_masks is not None),
                              ("--style-blend", args.style_blend is not None)):
            if given:
                raise MultistyleError(f"{option}: {args.model} is a per-style network, trained for one style; "
                                      f"{option} works with an AdaIN network (any style) or without --model")
        check_preserve_color(args.preserve_color)
        if args.weights != "imagenet":  # given on purpose: say that a network's pass runs no VGG-19
            print(f"multistyle: warning: --weights {args.weights} is not used: --model runs no VGG-19 (the network "
                  f"was trained against {network.metadata.get('loss_network', 'an unknown VGG-19')})", file=sys.stderr)
        what = f"{network.describe()}, one pass"
    if args.plan:
        print(f"plan: {what} on {args.backend} ({args.device})")
        return 0
    started = time.perf_counter()
    result = stylize(network, args.content, style=args.style or None, backend=args.backend, device=args.device,
                     size=args.size, preserve_color=args.preserve_color, max_pixels=args.max_pixels, alpha=alpha,
                     style_blend=args.style_blend, content_masks=args.content_masks, style_scale=args.style_scale)
    result.save(args.output)
    print(f"wrote {args.output} ({result.size[0]}x{result.size[1]}, {result.backend} on {result.device}, "
          f"one pass in {result.seconds:.2f} s, {time.perf_counter() - started:.2f} s with loading)")
    return 0


def _print_plan(args: argparse.Namespace, settings: ResolvedSettings, limit: Optional[int]) -> int:
    """``run --plan``: what the job would do and need, from the options and image headers alone."""
    if args.backend not in backend_names():
        raise MultistyleError(f"--backend: unknown backend {args.backend!r}; choose from {', '.join(backend_names())}")
    kind, number = parse_device(args.device)
    device = f"gpu:{number or 0}" if kind == "gpu" else "cpu"
    content = images.load_image(args.content, "--content", args.max_pixels)
    for path in args.style:
        images.load_image(path, "--style", args.max_pixels)
    shape = target_size(content, args.size)
    steps = scale_plan(shape, settings.scales, settings.epochs, settings.final_share)
    layers = list(dict.fromkeys(settings.layers))
    predicted = plan_memory(args.backend, device, shape, settings)
    assumed = " (--device auto: planned for the CPU; give --device gpu to plan for a GPU)" if kind == "auto" else ""
    print(f"plan: {args.backend} on {device}{assumed}, {shape[0]}x{shape[1]}, preset {settings.preset}, "
          f"{settings.optimizer} lr {settings.lr:g}, {settings.epochs} epochs")
    print("scales: " + ", ".join(f"{h}x{w} for {n} epochs" for (h, w), n in steps))
    print(f"layers: {', '.join(layers)} (VGG-19 cut after {LAYERS[deepest_index(layers)].name})")
    print(f"predicted peak memory: {predicted.describe()}")
    memory.check_limit(limit, predicted, args.backend,
                       lambda at: plan_memory(args.backend, device, at, settings), shape)
    if limit is not None:
        print(f"fits in --max-memory {args.max_memory} ({memory.format_bytes(limit)})")
    return 0


