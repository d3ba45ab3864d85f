"""The ``multistyle`` command line: the parser, built from :mod:`.options`, and the commands' dispatch.

Each command lives in its own module (:mod:`.run`, :mod:`.reports`,
:mod:`.batching`, :mod:`.info`); the options of the job commands come from
one table (:data:`.options.OPTIONS`).  A user mistake is one line on stderr
and exit status 2; Ctrl-C is one line and 130.
"""

from __future__ import annotations

import argparse
import gc
import sys
from typing import Callable, Dict, NoReturn, Optional, Sequence

from .. import __version__
from ..errors import MultistyleError
from .batching import cmd_batch
from .common import Interrupted
from .info import cmd_backends, cmd_presets, cmd_weights, presets_table
from .options import BATCH, BENCH, COMPARE, RUN, TRAIN, VIDEO, add_options
from .reports import _synthetic_images, cmd_bench, cmd_compare, cmd_explain
from .run import cmd_run
from .serving import add_serve_options, cmd_serve
from .training import add_export_options, cmd_export, cmd_train
from .video import add_video_arguments, cmd_video

__all__ = ["build_parser", "main", "presets_table", "_synthetic_images"]


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``multistyle: error: ...; see 'multistyle run --help'``.

    argparse prints the whole usage block before its error; every other user
    mistake is one line, so option errors are too.  Sub-parsers inherit this
    class through ``add_subparsers``.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"multistyle: error: {message}; see '{self.prog} --help'\n")


#: name: (help, description) of each command, in the order ``--help`` lists them.
DESCRIPTIONS = {
    RUN: ("stylise one image", "Stylise the content image with the style image (optimising it), or with a trained "
                               "style network in one pass (--model)."),
    TRAIN: ("train a style network for one style (Johnson et al.)",
            "Train a feed-forward style network (Johnson et al. 2016) for the style image on a folder of photos, "
            "against the VGG-19 loss of the preset; it then stylises a photo in one pass (run --model). "
            "Checkpoints beside --output; --resume continues from the last one."),
    VIDEO: ("stylise a clip, frame-coherently",
            "Stylise every frame of a clip (a video file or a folder of frames) and write a video or frames, keeping "
            "the frame rate, the size and the audio: by optimisation, each frame started from the previous output "
            "carried by the optical flow and held to it where the flow is reliable (Ruder et al. 2016), or by a "
            "trained network (--model), optionally blended along the flow (--temporal). Every finished frame is "
            "kept, so a rerun continues from the first missing one."),
    "export": ("write a style network as an ONNX graph",
               "Write a style network (.safetensors or a PyTorch examples .pth) as an ONNX graph for onnxruntime "
               "and other runtimes: input 'image' and output 'stylized', 1x3xHxW RGB in [0, 1]."),
    "presets": ("print the presets' settings, one column each",
                "Print the value of every setting in every preset (an option given on the command line replaces "
                "the preset's)."),
    "backends": ("list backends, their versions and devices",
                 "Show each backend, whether it is usable, its framework version and devices."),
    COMPARE: ("run one job on several backends; write an HTML report",
              "Run the same job on each usable backend and write an offline report: results side by side, "
              "difference images, loss curves, timings and memory."),
    BATCH: ("run many jobs: a grid of contents x styles, or a jobs file",
            "Run every content x style pair (--contents, --styles), or the jobs of a JOBS.csv/JOBS.json file (each "
            "a content, a style and any run option as an override, backend included), on this machine or a Ray "
            "cluster. A rerun skips the jobs already done; the exit status is 1 when a job failed."),
    BENCH: ("time backends at several sizes",
            "Seconds per iteration (median and p10-p90 after a warm-up), iterations per second and peak memory, "
            "per backend and size."),
    "explain": ("write a page: each backend's code side by side, and where the frameworks' maths differ",
                "Write an offline page: for each operation of the backend protocol, each backend's own code side "
                "by side (read from the installed backend modules, highlighted by Pygments), and the \"same name, "
                "different maths\" table (measured by multistyle compare)."),
    "serve": ("start a live page: every framework optimises the same picture, side by side",
              "Start a local web server with a live page: pick or upload two pictures, choose backends and press "
              "Run; each backend's image, losses and s/it update as it runs, beside each framework's code."),
    "weights": ("inspect and convert VGG-19 weight files",
                "Inspect and convert VGG-19 weight files: portable .npz, torchvision .pth, Gluon .params, "
                "Paddle .pdparams."),
}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="multistyle",
        description="Neural style transfer (Gatys et al.) on PyTorch, MXNet Gluon, PaddlePaddle, JAX and TensorFlow.")
    parser.add_argument("--version", action="version", version=f"multistyle {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    sub = {name: commands.add_parser(name, help=short, description=long)
           for name, (short, long) in DESCRIPTIONS.items()}
    sub[BATCH].add_argument("jobs", nargs="?", metavar="JOBS", help="a .csv or .json list of jobs (instead of a grid)")
    add_video_arguments(sub[VIDEO])
    for name in (RUN, COMPARE, BATCH, BENCH, TRAIN, VIDEO):
        add_options(sub[name], name)
    add_export_options(sub["export"])
    sub["presets"].add_argument("--json", action="store_true", help="print JSON instead of a table")
    sub[COMPARE].add_argument("--no-maths", action="store_true",
                              help="leave out the measured \"same name, different maths\" table (its measurements "
                                   "run a few short jobs in child processes)")
    sub[COMPARE].add_argument("--optimizers", metavar="NAMES",
                              help="comma-separated optimizers to run on every backend (adam,lbfgs,rmsprop), each "
                                   "with its own default rate unless --lr is given; replaces --optimizer")
    sub["explain"].add_argument("--output", required=True, metavar="DIR", help="folder for index.html")
    sub["explain"].add_argument("--backends", default=None, metavar="NAMES",
                                help="comma-separated backends, installed or not: the code is read, not imported "
                                     "(default: every registered one)")
    add_serve_options(sub["serve"])
    _add_weights_actions(sub["weights"])
    return parser


def _add_weights_actions(weights: argparse.ArgumentParser) -> None:
    actions = weights.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    convert = actions.add_parser("convert", help="convert between formats (the format follows each extension)",
                                 description="Convert the 16 VGG-19 convolutions between formats; "
                                             "the format of each file follows its extension.")
    convert.add_argument("source", metavar="SRC")
    convert.add_argument("destination", metavar="DST")
    info = actions.add_parser("info", help="format, layers, shapes, dtype and checksum of a file")
    info.add_argument("file", metavar="FILE")


COMMANDS: Dict[str, Callable[[argparse.Namespace], int]] = {
    RUN: cmd_run, "presets": cmd_presets, "backends": cmd_backends, "weights": cmd_weights, COMPARE: cmd_compare,
    BENCH: cmd_bench, BATCH: cmd_batch, "explain": cmd_explain, "serve": cmd_serve, TRAIN: cmd_train,
    "export": cmd_export, VIDEO: cmd_video}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``multistyle`` console script.  Without ``argv`` (the program itself: the console
    script, ``python -m multistyle``), the process exits next: see :func:`_before_exit`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = None if argv is None else list(argv)
    try:
        return _command(args)
    finally:
        if argv is None:
            _before_exit()


def _before_exit() -> None:
    """Leave the objects alive now out of Python's garbage collection at exit.

    The interpreter's last act is a full collection over every object alive, and a framework's import leaves
    millions: measured on this project's CPU machine, it added 0.25 s to a torch process's exit, 0.3 s to
    MXNet's, 0.4 s to TensorFlow's and 0.5 s to Paddle's.  The process is about to end, which frees its
    memory whole, so nothing alive needs collecting; :func:`gc.freeze` moves them out of that collection.
    Files are still closed and flushed, ``atexit`` handlers still run; only cycles alive now are not
    collected.  A program that calls :func:`main` with its own ``argv`` and goes on is not affected."""
    gc.freeze()


def _command(args: argparse.Namespace) -> int:
    """Run the parsed command: a user mistake as one line on stderr and status 2, Ctrl-C as 130."""
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
