"""The ``multistyle`` command line: ``run``, ``backends`` and ``weights``.

User mistakes surface as :class:`~multistyle.errors.MultistyleError`; they
are printed as one line, ``multistyle: error: ...``, with exit status 2 and
no traceback.  Outputs are written atomically, so a failed run leaves no
partial file.  Importing this module imports no framework.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO

import numpy as np

from . import __version__, images
from .backend import backend_names, describe_backends
from .errors import MultistyleError
from .transfer import DEFAULT_SIZE, PRESETS, Settings, UntrainedWeightsWarning, settings_dict, transfer, write_log
from .vgg import parse_weights_spec

LOG_EXTENSIONS = (".csv", ".json")


def _layers(text: str) -> List[str]:
    return [part.strip() for part in text.split(",")]


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    defaults = Settings()
    job = parser.add_argument_group("images")
    job.add_argument("--content", required=True, metavar="FILE", help="content image")
    job.add_argument("--style", required=True, metavar="FILE", help="style image")
    job.add_argument("--output", required=True, metavar="FILE",
                     help="result image; the format follows the extension (.png .jpg .webp .tif .bmp)")
    job.add_argument("--size", default=f"{DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}", metavar="HxW|N",
                     help="working size as HEIGHTxWIDTH, or one number for the long edge keeping the "
                          "content's aspect ratio (default: %(default)s)")
    job.add_argument("--max-pixels", type=int, default=images.DEFAULT_MAX_PIXELS, metavar="N",
                     help="refuse input images with more pixels than this (default: %(default)s)")
    model = parser.add_argument_group("backend and network")
    model.add_argument("--backend", default="torch", help=f"one of {', '.join(backend_names())} (default: %(default)s)")
    model.add_argument("--device", default="auto", help="auto, cpu, gpu or gpu:N (default: %(default)s)")
    model.add_argument("--weights", default="imagenet", metavar="SPEC",
                       help="imagenet (the framework's model zoo), random[:SEED] (untrained, for tests), "
                            "or a file: .npz, .pth, .params, .pdparams (default: %(default)s)")
    algo = parser.add_argument_group("algorithm")
    algo.add_argument("--preset", default=defaults.preset, choices=list(PRESETS),
                      help="d2l: the chapter's MXNet/Paddle layers; d2l-pytorch: what its PyTorch code computes "
                           "(ReLU outputs); d2l-mxnet: its lr 0.9 (default: %(default)s)")
    algo.add_argument("--epochs", type=int, default=defaults.epochs, help="default: %(default)s")
    algo.add_argument("--lr", type=float, default=None, help="learning rate (default: the preset's, 0.3)")
    algo.add_argument("--lr-decay", type=float, default=defaults.lr_decay, help="default: %(default)s")
    algo.add_argument("--lr-decay-every", type=int, default=defaults.lr_decay_every, metavar="EPOCHS",
                      help="default: %(default)s")
    algo.add_argument("--content-weight", type=float, default=defaults.content_weight, help="default: %(default)s")
    algo.add_argument("--style-weight", type=float, default=defaults.style_weight,
                      help="default: %(default)s, the chapter's effective weight (it writes 1e3 but sums "
                           "the style terms ten times)")
    algo.add_argument("--tv-weight", type=float, default=defaults.tv_weight, help="default: %(default)s")
    algo.add_argument("--content-layers", type=_layers, default=None, metavar="NAMES",
                      help="comma-separated VGG-19 layers (default: the preset's, conv4_4)")
    algo.add_argument("--style-layers", type=_layers, default=None, metavar="NAMES",
                      help="comma-separated VGG-19 layers (default: the preset's, conv1_1,...,conv5_1)")
    algo.add_argument("--optimizer", default=defaults.optimizer, help="default: %(default)s (see `multistyle backends`)")
    algo.add_argument("--init", default=defaults.init, choices=["content", "noise"], help="default: %(default)s")
    algo.add_argument("--seed", type=int, default=defaults.seed, help="default: %(default)s")
    algo.add_argument("--deterministic", action="store_true",
                      help="turn on the framework's deterministic switches (GPU convolutions); slower")
    out = parser.add_argument_group("reporting")
    out.add_argument("--log", metavar="FILE", help="per-epoch losses and timings, .csv or .json")
    out.add_argument("--save-every", type=int, default=0, metavar="N",
                     help="also save the image every N epochs, as OUTPUT-stem.epochNNNNN.ext")
    out.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multistyle",
        description="Neural style transfer (Gatys et al.) on PyTorch, MXNet Gluon and PaddlePaddle.")
    parser.add_argument("--version", action="version", version=f"multistyle {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    run = commands.add_parser("run", help="stylise one image",
                              description="Stylise the content image with the style image.")
    _add_run_options(run)
    commands.add_parser("backends", help="list backends, their versions and devices",
                        description="Show each backend, whether it is usable, its framework version and devices.")
    weights = commands.add_parser("weights", help="inspect and convert VGG-19 weight files",
                                  description="Inspect and convert VGG-19 weight files: portable .npz, "
                                              "torchvision .pth, Gluon .params, Paddle .pdparams.")
    actions = weights.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    convert = actions.add_parser("convert", help="convert between formats (the format follows each extension)",
                                 description="Convert the 16 VGG-19 convolutions between formats; "
                                             "the format of each file follows its extension.")
    convert.add_argument("source", metavar="SRC")
    convert.add_argument("destination", metavar="DST")
    info = actions.add_parser("info", help="format, layers, shapes, dtype and checksum of a file")
    info.add_argument("file", metavar="FILE")
    return parser


class ProgressBar:
    """A one-line progress display on a terminal; silent elsewhere."""

    def __init__(self, total: int, stream: TextIO, enabled: bool) -> None:
        self.total = total
        self.stream = stream
        self.enabled = enabled
        self.started = time.perf_counter()
        self.last_draw = 0.0

    def update(self, record: Dict[str, float]) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        done = int(record["epoch"])
        if done < self.total and now - self.last_draw < 0.1:
            return
        self.last_draw = now
        width = 24
        filled = width * done // self.total
        rate = (now - self.started) / done
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
            f"total {record['total']:.4g}  content {record['content']:.3g}  style {record['style']:.3g}  "
            f"tv {record['tv']:.3g}  {rate:.3f}s/it ")
        if done == self.total:
            self.stream.write("\n")
        self.stream.flush()


def _intermediate_path(output: str, epoch: int) -> str:
    stem, extension = os.path.splitext(output)
    return f"{stem}.epoch{epoch:05d}{extension}"


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)
    except OSError:
        return False


def cmd_run(args: argparse.Namespace) -> int:
    images.check_output_path(args.output)
    for option, source in (("--content", args.content), ("--style", args.style)):
        if _same_file(args.output, source) or os.path.abspath(args.output) == os.path.abspath(source):
            raise MultistyleError(f"--output: {args.output!r} is the {option[2:]} image; refusing to overwrite an input")
    if args.log and os.path.splitext(args.log)[1].lower() not in LOG_EXTENSIONS:
        raise MultistyleError(f"--log: expected a .csv or .json file name, got {args.log!r}")
    if args.save_every < 0:
        raise MultistyleError(f"--save-every: expected 0 (off) or a positive number of epochs, got {args.save_every}")
    kind, _ = parse_weights_spec(args.weights)
    if kind == "random":
        print("multistyle: warning: VGG-19 has random weights (untrained); the result will not look stylised. "
              "Use --weights imagenet or a weight file for real work.", file=sys.stderr)

    settings = Settings(preset=args.preset, content_layers=args.content_layers, style_layers=args.style_layers,
                        lr=args.lr, lr_decay=args.lr_decay, lr_decay_every=args.lr_decay_every, epochs=args.epochs,
                        content_weight=args.content_weight, style_weight=args.style_weight,
                        tv_weight=args.tv_weight, init=args.init, seed=args.seed,
                        optimizer=args.optimizer)
    bar = ProgressBar(args.epochs, sys.stderr, enabled=not args.quiet and sys.stderr.isatty())

    def on_epoch(record: Dict[str, float], current: Callable[[], np.ndarray]) -> None:
        bar.update(record)
        if args.save_every and record["epoch"] % args.save_every == 0 and record["epoch"] < args.epochs:
            images.save_image(current(), _intermediate_path(args.output, int(record["epoch"])))

    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)
        result = transfer(args.content, args.style, backend=args.backend, device=args.device, weights=args.weights,
                          size=args.size, max_pixels=args.max_pixels, callback=on_epoch, settings=settings,
                          deterministic=args.deterministic)
    elapsed = time.perf_counter() - started
    result.save(args.output)
    if args.log:
        meta = {"backend": result.backend, "device": result.device, "framework": result.framework_version,
                "weights": result.weights, "size": list(result.size), "settings": settings_dict(result.settings),
                "seconds": elapsed}
        write_log(result.history, args.log, meta)
    final = result.history[-1]
    print(f"wrote {args.output} ({result.size[0]}x{result.size[1]}, {result.backend} on {result.device}, "
          f"{len(result.history)} epochs in {elapsed:.1f} s, final loss {final['total']:.4g})")
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from . import weightfiles

    if args.action == "info":
        print("\n".join(weightfiles.describe(args.file)))
        return 0
    weights, kind = weightfiles.convert(args.source, args.destination)
    print(f"wrote {args.destination}: {len(weights)} convolutions from {args.source} ({kind}), "
          f"sha256 {weightfiles.checksum(weights)[:16]}")
    return 0


def cmd_backends(args: argparse.Namespace) -> int:
    for row in describe_backends():
        if row["usable"]:
            print(f"{row['name']:8} usable    {row['version']}; devices: {', '.join(row['devices'])}; "
                  f"optimizers: {', '.join(row['optimizers'])}")
        else:
            print(f"{row['name']:8} unusable  {row['reason']}")
    return 0


COMMANDS = {"run": cmd_run, "backends": cmd_backends, "weights": cmd_weights}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``multistyle`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except MultistyleError as exc:
        print(f"multistyle: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("multistyle: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
