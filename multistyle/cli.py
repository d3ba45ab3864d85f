"""The ``multistyle`` command line: ``run``, ``batch``, ``backends``, ``weights``, ``compare`` and ``bench``.

User mistakes surface as :class:`~multistyle.errors.MultistyleError`; they
are printed as one line, ``multistyle: error: ...``, with exit status 2 and
no traceback.  Outputs are written atomically, so a failed run leaves no
partial file.  Importing this module imports no framework.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from typing import Any, Callable, Dict, List, NoReturn, Optional, Sequence, Tuple

import numpy as np

from . import __version__, animation, images, memory
from .backend import backend_names, describe_backends, parse_device
from .errors import MultistyleError
from .optim import OPTIMIZERS
from .progress import ProgressBar
from .transfer import (CLAMPS, DEFAULT_SIZE, PRESETS, Settings, UntrainedWeightsWarning, blend_mismatch, plan_memory,
                       scale_plan, settings_dict, target_size, transfer, write_log)
from .vgg import LAYERS, deepest_index, parse_weights_spec

LOG_EXTENSIONS = (".csv", ".json")


def _layers(text: str) -> List[str]:
    return [part.strip() for part in text.split(",")]


def _image_list(text: str) -> List[str]:
    """``a.jpg,b.jpg`` -> two paths; a path that exists as given (commas and all) is one."""
    if os.path.exists(text):
        return [text]
    paths = [part.strip() for part in text.split(",")]
    if not all(paths):
        raise argparse.ArgumentTypeError(f"expected comma-separated image files, got {text!r}")
    return paths


def _numbers(text: str) -> List[float]:
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _add_run_options(parser: argparse.ArgumentParser, mode: str = "run") -> None:
    """The job's options; ``mode`` is ``run``, ``compare``, ``bench`` or ``batch``."""
    defaults = Settings()
    job = parser.add_argument_group("images")
    bench = mode == "bench"
    if mode != "batch":
        job.add_argument("--content", required=not bench, metavar="FILE",
                         help="content image" + (" (default: a synthetic one)" if bench else ""))
        job.add_argument("--style", required=not bench, metavar="FILE[,FILE...]", type=_image_list,
                         help="style image, or several, comma-separated, blended by --style-blend"
                              + (" (default: a synthetic one)" if bench else ""))
    if mode == "batch":
        job.add_argument("--contents", metavar="DIR|GLOB", help="content images: a folder, a glob pattern or a file")
        job.add_argument("--styles", metavar="DIR|GLOB", help="style images: a folder, a glob pattern or a file")
        job.add_argument("--output", required=True, metavar="DIR",
                         help="output folder: one image and one JSON sidecar per job, results.json, "
                              "results.csv and the gallery index.html")
    elif mode == "run":
        job.add_argument("--output", required=True, metavar="FILE",
                         help="result image; the format follows the extension (.png .jpg .webp .tif .bmp)")
    elif mode == "compare":
        job.add_argument("--output", required=True, metavar="DIR",
                         help="report folder: index.html, report.json, the images and plots")
    else:
        job.add_argument("--output", default="bench.json", metavar="FILE", help="JSON results (default: %(default)s)")
    if bench:
        job.add_argument("--sizes", default="150x225,300x450", metavar="HxW,...",
                         help="comma-separated working sizes (default: %(default)s)")
        job.add_argument("--floor", type=int, default=8, metavar="N",
                         help="also time N iterations of the backend's floor (its VGG-19, frozen: forward and input "
                              "gradient only) in the same process, and print s/it ÷ floor; 0: off "
                              "(default: %(default)s)")
    else:
        job.add_argument("--size", default=f"{DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}", metavar="HxW|N",
                         help="working size as HEIGHTxWIDTH, or one number for the long edge keeping the "
                              "content's aspect ratio (default: %(default)s)")
    job.add_argument("--max-pixels", type=int, default=images.DEFAULT_MAX_PIXELS, metavar="N",
                     help="refuse input images with more pixels than this (default: %(default)s)")
    model = parser.add_argument_group("backend and network")
    if mode == "run":
        model.add_argument("--backend", default="torch",
                           help=f"one of {', '.join(backend_names())} (default: %(default)s)")
    elif mode == "batch":
        model.add_argument("--backend", default="torch", metavar="NAME[,NAME...]",
                           help=f"one of {', '.join(backend_names())}, or several, comma-separated: every content x "
                                "style pair runs on each (default: %(default)s)")
    else:
        model.add_argument("--backends", default=",".join(backend_names()), metavar="NAMES",
                           help="comma-separated backends (default: %(default)s)")
    model.add_argument("--device", default="auto", help="auto, cpu, gpu or gpu:N (default: %(default)s)")
    model.add_argument("--weights", default="random:0" if bench else "imagenet", metavar="SPEC",
                       help="imagenet (the framework's model zoo), random[:SEED] (untrained, for tests), "
                            "or a file: .npz, .pth, .params, .pdparams (default: %(default)s)")
    algo = parser.add_argument_group("algorithm", "Options left out take the preset's value: `multistyle presets` "
                                                   "prints them.")
    algo.add_argument("--preset", default=defaults.preset, choices=list(PRESETS),
                      help="d2l: the chapter's MXNet/Paddle layers; d2l-pytorch: what its PyTorch code computes "
                           "(ReLU outputs); d2l-mxnet: its lr 0.9; pytorch-tutorial: the PyTorch tutorial "
                           "(L-BFGS, pixel space); viblo: the same with RMSprop; fast: the d2l objective, coarse to fine "
                           "on a shorter schedule (default: %(default)s)")
    algo.add_argument("--epochs", type=int, default=20 if bench else None,
                      help="optimizer iterations (default: " + ("%(default)s" if bench else "the preset's; see multistyle presets") + ")")
    algo.add_argument("--optimizer", default=None, choices=list(OPTIMIZERS),
                      help="default: the preset's; see multistyle presets; `multistyle backends` lists whose code computes each")
    algo.add_argument("--lr", type=float, default=None,
                      help="learning rate (default: Adam the preset's; see multistyle presets; L-BFGS 1; RMSprop 0.01)")
    algo.add_argument("--lr-decay", type=float, default=None, help="multiply the rate by this every "
                      "--lr-decay-every epochs (default: the preset's; see multistyle presets)")
    algo.add_argument("--lr-decay-every", type=int, default=None, metavar="EPOCHS", help="default: the preset's; see multistyle presets")
    algo.add_argument("--line-search", action="store_true",
                      help="L-BFGS only: strong-Wolfe line search (several loss evaluations per iteration)")
    algo.add_argument("--clamp", default=None, choices=list(CLAMPS),
                      help="where the image is clamped to its valid range: inside every loss evaluation, after "
                           "every step, at the end, never (default: the preset's; see multistyle presets)")
    algo.add_argument("--scales", type=int, default=None, metavar="N",
                      help="coarse to fine: optimise first at 1/2**(N-1) of the size, then double it, starting "
                           "each scale from the last result; the epochs go mostly to the small scales "
                           "(default: the preset's; see multistyle presets)")
    algo.add_argument("--until-loss", type=float, default=None, metavar="VALUE",
                      help="stop once the total loss is at or below VALUE")
    algo.add_argument("--tol", type=float, default=None, metavar="REL",
                      help="stop once the best loss of the last 20 epochs is less than REL (relative) below the "
                           "best before them")
    algo.add_argument("--content-weight", type=float, default=None, help="default: the preset's; see multistyle presets")
    algo.add_argument("--style-weight", type=float, default=None,
                      help="default: the preset's; see multistyle presets; for d2l the chapter's effective weight (README: The d2l defaults)")
    algo.add_argument("--tv-weight", type=float, default=None, help="default: the preset's; see multistyle presets")
    algo.add_argument("--content-layers", type=_layers, default=None, metavar="NAMES",
                      help="comma-separated VGG-19 layers, each optionally NAME:WEIGHT (default: the preset's; see multistyle presets; "
                           "weight 1)")
    algo.add_argument("--style-layers", type=_layers, default=None, metavar="NAMES",
                      help="comma-separated VGG-19 layers, each optionally NAME:WEIGHT, e.g. conv1_1:1,conv2_1:0.5 "
                           "(default: the preset's; see multistyle presets; weight 1)")
    algo.add_argument("--style-blend", type=_numbers, default=None, metavar="W,W,...",
                      help="one weight per style image (>= 0, normalised to sum 1): each style layer's target is "
                           "the weighted sum of the styles' Gram matrices (default: equal)")
    algo.add_argument("--style-scale", type=float, default=None, metavar="S",
                      help="resize each style image to S x the working size's long edge, keeping its aspect "
                           "ratio, before taking its features: the size of the texture (default: the style is "
                           "resized to the working size itself, as the chapter does)")
    algo.add_argument("--preserve-color", default=defaults.preserve_color, choices=["none", "luminance", "histogram"],
                      help="luminance: keep the result's luminance and the content's colours (YUV, after "
                           "optimisation); histogram: match the style's colour mean and covariance to the "
                           "content's (before) (default: %(default)s)")
    algo.add_argument("--pooling", default=defaults.pooling, choices=["max", "avg"],
                      help="VGG-19's pooling layers: max (its own) or avg, often smoother (default: %(default)s)")
    algo.add_argument("--init", default=defaults.init, metavar="content|noise|style|FILE",
                      help="the start image: the content image, seeded noise, the (first) style image or an "
                           "image file, resized to the working size (default: %(default)s)")
    algo.add_argument("--seed", type=int, default=defaults.seed, help="default: %(default)s")
    algo.add_argument("--deterministic", action="store_true",
                      help="turn on the framework's deterministic switches (GPU convolutions); slower")
    if mode == "batch":
        engine = parser.add_argument_group("engine")
        engine.add_argument("--engine", default="local", choices=["local", "ray"],
                            help="local: a pool of worker processes on this machine; ray: each job a Ray task, on "
                                 "--ray-address or a local Ray (pip install 'multistyle[ray]') (default: %(default)s)")
        engine.add_argument("--workers", type=int, default=None, metavar="N",
                            help="local engine: worker processes, each loading its backend and weights once "
                                 "(default: one per GPU; one on a CPU-only machine, as a job uses every core)")
        engine.add_argument("--retries", type=int, default=2, metavar="N",
                            help="run a job whose worker process died (killed, out of memory, a lost Ray node) up "
                                 "to N more times; a job that fails because of its input is not retried "
                                 "(default: %(default)s)")
        engine.add_argument("--ray-address", default=None, metavar="ADDRESS",
                            help="ray engine: the cluster to connect to, e.g. ray://head:10001 or auto "
                                 "(default: start a local Ray)")
        engine.add_argument("--num-cpus", type=float, default=None, metavar="N",
                            help="ray engine: CPUs per job (default: 1)")
        engine.add_argument("--num-gpus", type=float, default=None, metavar="N",
                            help="ray engine: GPUs per job (default: 1 where the cluster has GPUs, else 0)")
        engine.add_argument("--quiet", action="store_true", help="no progress bar")
        return
    if mode != "run":
        return
    out = parser.add_argument_group("reporting")
    out.add_argument("--log", metavar="FILE", help="per-epoch losses and timings, .csv or .json")
    out.add_argument("--save-every", type=int, default=0, metavar="N",
                     help="also save the image every N epochs, as OUTPUT-stem.epochNNNNN.ext")
    out.add_argument("--animate", metavar="FILE",
                     help="also write the optimisation as an animation, .gif or .webp: a frame every "
                          "--animate-every epochs, the result last")
    out.add_argument("--animate-every", type=int, default=0, metavar="N",
                     help="epochs between animation frames (default: about 50 frames in all)")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    plan = parser.add_argument_group("planning")
    plan.add_argument("--plan", action="store_true",
                      help="print the job's plan and predicted peak memory, and stop (loads no framework)")
    plan.add_argument("--max-memory", default=None, metavar="SIZE",
                      help="refuse, before any work, a job predicted to need more memory than SIZE (e.g. 4G, "
                           "1.5GiB); the error names the largest size that fits")


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``multistyle: error: ...; see 'multistyle run --help'``.

    argparse prints the whole usage block before its error; every other user
    mistake is one line, so option errors are too.  Sub-parsers inherit this
    class through ``add_subparsers``.
    """

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        self.exit(2, f"multistyle: error: {message}; see '{self.prog} --help'\n")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="multistyle",
        description="Neural style transfer (Gatys et al.) on PyTorch, MXNet Gluon and PaddlePaddle.")
    parser.add_argument("--version", action="version", version=f"multistyle {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    run = commands.add_parser("run", help="stylise one image",
                              description="Stylise the content image with the style image.")
    _add_run_options(run)
    presets = commands.add_parser("presets", help="print the presets' settings, one column each",
                                  description="Print the value of every setting in every preset "
                                              "(an option given on the command line replaces the preset's).")
    presets.add_argument("--json", action="store_true", help="print JSON instead of a table")
    commands.add_parser("backends", help="list backends, their versions and devices",
                        description="Show each backend, whether it is usable, its framework version and devices.")
    compare = commands.add_parser("compare", help="run one job on several backends; write an HTML report",
                                  description="Run the same job on each usable backend and write an offline "
                                              "report: results side by side, difference images, loss curves, "
                                              "timings and memory.")
    _add_run_options(compare, "compare")
    compare.add_argument("--no-maths", action="store_true",
                         help="leave out the measured \"same name, different maths\" table (its measurements run "
                              "a few short jobs in child processes)")
    compare.add_argument("--optimizers", metavar="NAMES",
                         help="comma-separated optimizers to run on every backend (adam,lbfgs,rmsprop), each with "
                              "its own default rate unless --lr is given; replaces --optimizer")
    batch = commands.add_parser("batch", help="run many jobs: a grid of contents x styles, or a jobs file",
                                description="Run every content x style pair (--contents, --styles), or the jobs of "
                                            "a JOBS.csv/JOBS.json file (each a content, a style and any run option "
                                            "as an override, backend included), on this machine or a Ray cluster. "
                                            "A rerun skips the jobs already done; the exit status is 1 when a job "
                                            "failed.")
    batch.add_argument("jobs", nargs="?", metavar="JOBS", help="a .csv or .json list of jobs (instead of a grid)")
    _add_run_options(batch, "batch")
    batch.set_defaults(parser=batch)
    bench = commands.add_parser("bench", help="time backends at several sizes",
                                description="Seconds per iteration (median and p10-p90 after a warm-up), "
                                            "iterations per second and peak memory, per backend and size.")
    _add_run_options(bench, "bench")
    explain = commands.add_parser("explain", help="write a page: each backend's code side by side, and where "
                                                  "the frameworks' maths differ",
                                  description="Write an offline page: for each operation of the backend protocol, "
                                              "each backend's own code side by side (read from the installed "
                                              "backend modules, highlighted by Pygments), and the \"same name, "
                                              "different maths\" table (measured by multistyle compare).")
    explain.add_argument("--output", required=True, metavar="DIR", help="folder for index.html")
    explain.add_argument("--backends", default=",".join(backend_names()), metavar="NAMES",
                         help="comma-separated backends, installed or not: the code is read, not imported "
                              "(default: %(default)s)")
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


def _intermediate_path(output: str, epoch: int) -> str:
    stem, extension = os.path.splitext(output)
    return f"{stem}.epoch{epoch:05d}{extension}"


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)
    except OSError:
        return False


def cmd_run(args: argparse.Namespace) -> int:
    # Every output location is checked here, before weights are loaded and the
    # long optimisation starts: a run must not fail after it has done the work.
    images.check_output_path(args.output)
    for option, source in (("--content", args.content), *(("--style", path) for path in args.style)):
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
    kind, _ = parse_weights_spec(args.weights)

    settings = _settings(args).resolved()
    if settings.style_blend is not None and len(settings.style_blend) != len(args.style):
        raise MultistyleError(blend_mismatch(len(settings.style_blend), len(args.style)))
    limit = None if args.max_memory is None else memory.parse_bytes(args.max_memory)
    if args.plan:
        return _print_plan(args, settings, limit)
    if kind == "random":  # after every check of the options, so that a mistake is the only line printed
        print("multistyle: warning: VGG-19 has random weights (untrained); the result will not look stylised. "
              "Use --weights imagenet or a weight file for real work.", file=sys.stderr)
    epochs = settings.epochs
    bar = ProgressBar(epochs, sys.stderr, enabled=not args.quiet and sys.stderr.isatty())

    progress = {"epoch": 0, "snapshot": ""}

    def on_epoch(record: Dict[str, float], current: Callable[[], np.ndarray]) -> None:
        bar.update(record)
        progress["epoch"] = int(record["epoch"])
        if args.save_every and record["epoch"] % args.save_every == 0 and record["epoch"] < epochs:
            snapshot = _intermediate_path(args.output, int(record["epoch"]))
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
        # Snapshots are written atomically, so the last one named here is complete.
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


def _print_plan(args: argparse.Namespace, settings: Settings, limit: Optional[int]) -> int:
    """``run --plan``: what the job would do and need, from the options and image headers alone."""
    if args.backend not in backend_names():
        raise MultistyleError(f"--backend: unknown backend {args.backend!r}; choose from {', '.join(backend_names())}")
    kind, number = parse_device(args.device)
    device = f"gpu:{number or 0}" if kind == "gpu" else "cpu"
    content = images.load_image(args.content, "--content", args.max_pixels)
    for path in args.style:
        images.load_image(path, "--style", args.max_pixels)
    shape = target_size(content, args.size)
    steps = scale_plan(shape, settings.scales, settings.epochs)  # type: ignore[arg-type]
    layers = list(dict.fromkeys(list(settings.content_layers) + list(settings.style_layers)))  # type: ignore[arg-type]
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


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what was kept: ``main`` prints it as one line."""


def _settings(args: argparse.Namespace) -> Settings:
    return Settings(preset=args.preset, content_layers=args.content_layers, style_layers=args.style_layers,
                    lr=args.lr, lr_decay=args.lr_decay, lr_decay_every=args.lr_decay_every, epochs=args.epochs,
                    content_weight=args.content_weight, style_weight=args.style_weight,
                    tv_weight=args.tv_weight, init=args.init, seed=args.seed, optimizer=args.optimizer,
                    clamp=args.clamp, line_search=args.line_search, until_loss=args.until_loss, tol=args.tol,
                    scales=args.scales, style_blend=args.style_blend, style_scale=args.style_scale,
                    preserve_color=args.preserve_color, pooling=args.pooling)


def _backend_list(text: str, option: str = "--backends") -> List[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    known = backend_names()
    for name in names:
        if name not in known:
            raise MultistyleError(f"{option}: unknown backend {name!r}; choose from {', '.join(known)}")
    if not names:
        raise MultistyleError(f"{option}: expected a comma-separated list of backends")
    return list(dict.fromkeys(names))


def _job(args: argparse.Namespace, settings: Settings, size: Any) -> Dict[str, Any]:
    parse_device(args.device)
    parse_weights_spec(args.weights)
    return {"content": args.content, "style": args.style, "weights": args.weights, "device": args.device,
            "size": size, "settings": settings_dict(settings), "max_pixels": args.max_pixels,
            "deterministic": args.deterministic}


def cmd_compare(args: argparse.Namespace) -> int:
    from . import compare

    backends = _backend_list(args.backends)
    settings = _settings(args).resolved()
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise MultistyleError(f"--output: {args.output!r} is a file; compare writes a folder")
    content = images.load_image(args.content, "--content", args.max_pixels)
    for path in args.style:
        images.load_image(path, "--style", args.max_pixels)
    size = target_size(content, args.size)
    variants = None
    if args.optimizers:
        names = list(dict.fromkeys(name.strip() for name in args.optimizers.split(",") if name.strip()))
        unknown = [name for name in names if name not in OPTIMIZERS]
        if unknown or not names:
            raise MultistyleError(f"--optimizers: expected a comma-separated list of {', '.join(OPTIMIZERS)}, "
                                  f"got {args.optimizers!r}")
        args.optimizer = None
        variants = {}
        for name in names:
            args.optimizer = name
            variants[name] = settings_dict(_settings(args).resolved())
    data = compare.compare(backends, args.output, _job(args, settings, list(size)),
                           compare.command_line(sys.argv[1:] if args.argv is None else args.argv), variants,
                           explain_maths=not args.no_maths)
    for row in data["backends"]:
        print(f"{row['label']:14} {row['seconds_per_iteration']:.4f} s/it  final loss {row['final']['total']:.5g}")
    for name, reason in {**data["unusable"], **data["failed"]}.items():
        print(f"{name:14} did not run: {reason}")
    print(f"wrote {os.path.join(args.output, 'index.html')}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import json

    from . import compare

    backends = _backend_list(args.backends)
    settings = _settings(args).resolved()
    sizes = []
    for text in args.sizes.split(","):
        pair, _ = images.parse_size(text)
        if pair is None:
            raise MultistyleError(f"--sizes: expected HxW sizes like 150x225,300x450, got {text!r}")
        sizes.append(pair)
    if os.path.splitext(args.output)[1].lower() != ".json":
        raise MultistyleError(f"--output: expected a .json file name, got {args.output!r}")
    images.check_writable(args.output, "--output")
    with tempfile.TemporaryDirectory() as folder:
        if args.content is None or args.style is None:
            synthetic = _synthetic_images(folder)
        job = _job(args, settings, None)
        if args.floor < 0:
            raise MultistyleError(f"--floor: expected 0 (off) or a number of iterations, got {args.floor}")
        job["floor"] = args.floor
        job["content"] = args.content or synthetic[0]
        job["style"] = args.style or [synthetic[1]]
        rows, unusable = compare.bench(backends, sizes, job)
    print("\n".join(compare.bench_table(rows)))
    for name, reason in unusable.items():
        print(f"{name:8} unusable: {reason}")
    with images.atomic_write(args.output) as handle:
        handle.write(json.dumps({"settings": settings_dict(settings), "weights": args.weights,
                                 "results": rows, "unusable": unusable}, indent=2).encode("utf-8"))
    print(f"wrote {args.output}")
    return 0


def _synthetic_images(folder: str) -> Tuple[str, str]:
    """A smooth content and a striped style image, for timing runs that need no real pictures."""
    from PIL import Image

    yy, xx = np.mgrid[0:300, 0:450]
    content = np.stack([yy * 0.8, xx * 0.5, (yy + xx) * 0.3], axis=-1) % 256
    style = (np.sin(xx[..., None] / 7.0 + yy[..., None] / 11.0 + np.arange(3)) * 120 + 128)
    paths = (os.path.join(folder, "content.png"), os.path.join(folder, "style.png"))
    for path, array in zip(paths, (content, style)):
        Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(path)
    return paths


def cmd_explain(args: argparse.Namespace) -> int:
    from . import explain

    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise MultistyleError(f"--output: {args.output!r} is a file; explain writes a folder")
    print(f"wrote {explain.write_page(args.output, _backend_list(args.backends))}")
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
                  f"optimizers: {', '.join(f'{name} ({source})' for name, source in row['optimizers'].items())}")
        else:
            print(f"{row['name']:8} unusable  {row['reason']}")
            if row.get("traceback"):  # a bug of ours: the report needs the traceback
                print(row["traceback"], file=sys.stderr)
    return 0


#: The option groups a job of a batch may override (JOBS file columns or keys).
JOB_OPTION_GROUPS = ("images", "backend and network", "algorithm")


def _job_options(parser: argparse.ArgumentParser) -> Dict[str, argparse.Action]:
    return {action.dest: action for group in parser._action_groups if group.title in JOB_OPTION_GROUPS
            for action in group._group_actions if action.dest not in ("contents", "styles", "output")}


def _override(action: argparse.Action, value: Any, source: str) -> Any:
    """A JOBS file's value for one option, converted and checked as the command line would."""
    flag = action.option_strings[-1]
    if isinstance(action, argparse._StoreTrueAction):
        text = str(value).strip().lower()
        if text not in ("true", "false", "1", "0", "yes", "no"):
            raise MultistyleError(f"{source}: {flag}: expected true or false, got {value!r}")
        return text in ("true", "1", "yes")
    text = ",".join(str(part) for part in value) if isinstance(value, list) else str(value)
    try:
        converted = action.type(text) if callable(action.type) else text
    except (ValueError, argparse.ArgumentTypeError) as exc:
        detail = str(exc) if isinstance(exc, argparse.ArgumentTypeError) else f"invalid value {text!r}"
        raise MultistyleError(f"{source}: {flag}: {detail}") from None
    if action.choices is not None and converted not in action.choices:
        raise MultistyleError(f"{source}: {flag}: expected one of {', '.join(map(str, action.choices))}, "
                              f"got {text!r}")
    return converted


def _batch_job(args: argparse.Namespace, content: str, style: List[str], backend: str, source: str) -> Any:
    """One :class:`~multistyle.batch.BatchJob` from ``run``-style options; mistakes name ``source``."""
    from .batch import BatchJob

    prefix = f"{source}: " if source else ""
    try:
        if backend not in backend_names():
            raise MultistyleError(f"--backend: unknown backend {backend!r}; choose from {', '.join(backend_names())}")
        parse_device(args.device)
        parse_weights_spec(args.weights)
        images.parse_size(str(args.size))
        settings = _settings(args).resolved()
        if settings.style_blend is not None and len(settings.style_blend) != len(style):
            raise MultistyleError(blend_mismatch(len(settings.style_blend), len(style)))
    except MultistyleError as exc:
        raise MultistyleError(prefix + str(exc)) from None
    return BatchJob(content=content, style=style, backend=backend, device=args.device, weights=args.weights,
                    size=str(args.size), max_pixels=args.max_pixels, deterministic=args.deterministic,
                    settings=settings, source=source)


def cmd_batch(args: argparse.Namespace) -> int:
    from . import batch
    from .compare import command_line

    if args.jobs and (args.contents or args.styles):
        raise MultistyleError("give either a JOBS file or --contents and --styles, not both")
    if not args.jobs and not (args.contents and args.styles):
        raise MultistyleError("give --contents and --styles (every pair runs), or a JOBS.csv or JOBS.json file")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise MultistyleError(f"--output: {args.output!r} is a file; batch writes a folder")
    backends = _backend_list(args.backend, "--backend")
    jobs = []
    if args.jobs:
        options = _job_options(args.parser)
        for row in batch.read_jobs_file(args.jobs):
            job_args = argparse.Namespace(**vars(args))
            for key, value in row.items():
                if key in ("content", "style", "source"):
                    continue
                if key not in options:
                    raise MultistyleError(f"{row['source']}: unknown option {key!r}; a job may set content, style "
                                          f"and {', '.join(sorted(options))}")
                setattr(job_args, key, _override(options[key], value, row["source"]))
            names = [job_args.backend] if "backend" in row else backends
            jobs += [_batch_job(job_args, row["content"], row["style"], name, row["source"]) for name in names]
    else:
        contents = batch.expand_images(args.contents, "--contents")
        styles = batch.expand_images(args.styles, "--styles")
        jobs = [_batch_job(args, content, [style], backend, "")
                for content in contents for style in styles for backend in backends]
    untrained = any(parse_weights_spec(job.weights)[0] == "random" for job in jobs)
    try:
        data = batch.run_batch(jobs, args.output, engine=args.engine, workers=args.workers, retries=args.retries,
                               ray_address=args.ray_address, num_cpus=args.num_cpus, num_gpus=args.num_gpus,
                               progress=not args.quiet and sys.stderr.isatty(),
                               command=command_line(sys.argv[1:] if args.argv is None else args.argv),
                               notice="multistyle: warning: VGG-19 has random weights (untrained); the results "
                                      "will not look stylised. Use --weights imagenet or a weight file for real work."
                               if untrained else "")
    except KeyboardInterrupt:
        raise Interrupted(f"before the batch ended; the jobs that finished are kept in {args.output} "
                          f"(results.json lists them): run the same command again to resume") from None
    s = data["summary"]
    print(f"batch: {s['jobs']} jobs: {s['done']} done, {s['skipped']} skipped (done before), {s['failed']} failed "
          f"in {s['seconds']:.1f} s ({s['ran_on'] or 'nothing to run'}); wrote "
          f"{os.path.join(args.output, 'index.html')}, results.json, results.csv")
    return 1 if s["failed"] else 0


def presets_table() -> List[List[str]]:
    """Every preset's settings: a header row of preset names, then one row per setting, in one order."""
    names = list(PRESETS)
    keys = list(dict.fromkeys(key for preset in PRESETS.values() for key in preset))

    def text(value: object) -> str:
        return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else "-" if value is None else f"{value:g}" \
            if isinstance(value, float) else str(value)

    return [["setting"] + names] + [[key] + [text(PRESETS[name].get(key)) for name in names] for key in keys]


def cmd_presets(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(PRESETS, indent=2))
        return 0
    rows = presets_table()
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


COMMANDS = {"run": cmd_run, "presets": cmd_presets, "backends": cmd_backends, "weights": cmd_weights, "compare": cmd_compare,
            "bench": cmd_bench, "batch": cmd_batch, "explain": cmd_explain}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``multistyle`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = None if argv is None else list(argv)
    try:
        return COMMANDS[args.command](args)
    except MultistyleError as exc:
        print(f"multistyle: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"multistyle: interrupted {exc}" if isinstance(exc, Interrupted)
              else "multistyle: interrupted; nothing was written", file=sys.stderr)
        return 130
    except OSError as exc:  # the file system refused something the checks above could not foresee
        where = f" {exc.filename!r}" if exc.filename else ""
        print(f"multistyle: error: cannot access{where} ({exc.strerror or exc})", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
