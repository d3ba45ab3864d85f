"""The options of the job commands (``run``, ``compare``, ``bench``, ``batch``): one table, three uses.

:data:`OPTIONS` drives argparse (:func:`add_options`), the per-job overrides
of a JOBS file (:func:`job_options`, :func:`override`) and the help text.  An
option's value is checked and converted by the same :class:`Option` in both
places, so a JOBS file cell and a command-line flag cannot disagree.  Preset
values appear in no help text: the help points to ``multistyle presets``.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Tuple

from .. import color, images
from ..backend import backend_names
from ..batch import ENGINES
from ..errors import MultistyleError
from ..optim import OPTIMIZERS
from ..losses import STYLE_LOSSES
from ..settings import CLAMPS, DEFAULT_SIZE, INITS, POOLINGS, PRESETS, SCALE_STARTS, Settings
from ..video.temporal import LONG_TERM

RUN, COMPARE, BENCH, BATCH, TRAIN, VIDEO = "run", "compare", "bench", "batch", "train", "video"
JOB_COMMANDS = (RUN, COMPARE, BENCH, BATCH)
VIDEOS = frozenset((VIDEO,))
CLIPS = frozenset((VIDEO, BATCH))  # the options of a clip's job: a batch's contents may be clips
ALL = frozenset(JOB_COMMANDS) | VIDEOS  # a clip's frames take every option of a picture's job
SINGLE = frozenset((RUN, COMPARE, BENCH))  # one content and one style list
PRESET = "the preset's; see multistyle presets"
TRAINS = frozenset((TRAIN,))

#: The option groups a job of a batch may override (JOBS file columns or keys).
JOB_OPTION_GROUPS = ("images", "backend and network", "algorithm", "video")
GROUP_DESCRIPTIONS = {"algorithm": "Options left out take the preset's value: `multistyle presets` prints them."}
GROUP_DESCRIPTIONS_BY_COMMAND = {(BATCH, "video"): "For the contents that are clips (video files, or folders of frames "
                                                   "in a JOBS file): each clip is one job, its frames in order, as "
                                                   "multistyle video runs it (docs: Video)."}


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


def _gaps(text: str) -> List[int]:
    try:
        gaps = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated frame gaps, such as 1,10,20,40, got {text!r}") \
            from None
    if gaps[0] < 1:
        raise argparse.ArgumentTypeError(f"expected frame gaps of 1 or more, got {text!r}")
    return gaps


def _numbers(text: str) -> List[float]:
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


@dataclass(frozen=True)
class Option:
    """One option: its flag, group, the commands that have it, argparse's keywords, and per-command changes."""

    flag: str
    group: str
    commands: FrozenSet[str]
    kwargs: Dict[str, Any] = field(default_factory=dict)
    per_command: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    @property
    def dest(self) -> str:
        return self.flag[2:].replace("-", "_")

    def keywords(self, command: str) -> Dict[str, Any]:
        """argparse's keywords for ``command`` (``help`` may be a function of the command)."""
        out = dict(self.kwargs, **self.per_command.get(command, {}))
        out.pop("group", None)
        if callable(out.get("help")):
            out["help"] = out["help"]()
        return out

    def group_for(self, command: str) -> str:
        return str(self.per_command.get(command, {}).get("group", self.group))


def _opt(flag: str, group: str, commands: FrozenSet[str] = ALL,
         per_command: Optional[Dict[str, Dict[str, Any]]] = None, **kwargs: Any) -> Option:
    return Option(flag, group, frozenset(commands), kwargs, per_command or {})


_BENCH_SYNTHETIC = " (default: a synthetic one)"
_IMAGES, _NETWORK, _ALGO = "images", "backend and network", "algorithm"

OPTIONS: Tuple[Option, ...] = (
    # -- images ------------------------------------------------------------------------------------------------
    _opt("--content", _IMAGES, SINGLE, {BENCH: {"required": False, "help": "content image" + _BENCH_SYNTHETIC}},
         required=True, metavar="FILE", help="content image"),
    _opt("--style", _IMAGES, SINGLE | TRAINS | VIDEOS, {
        VIDEO: {"required": False, "help": "style image, or several, comma-separated, blended by --style-blend "
                                           "(required, except with a per-style --model)"},
        BENCH: {"required": False, "help": "style image, or several, comma-separated, blended by --style-blend"
                                           + _BENCH_SYNTHETIC},
        RUN: {"required": False, "help": "style image, or several, comma-separated, blended by --style-blend "
                                         "(required, except with --model)"},
        COMPARE: {"required": False, "help": "style image, or several, comma-separated, blended by --style-blend "
                                             "(required, except with --model)"},
        TRAIN: {"required": False, "help": "the style image the network learns, or several, comma-separated, blended "
                                           "by --style-blend (required, except with --arbitrary)"}},
         required=True, metavar="FILE[,FILE...]", type=_image_list,
         help="style image, or several, comma-separated, blended by --style-blend"),
    _opt("--content-masks", _IMAGES, {RUN, COMPARE, BATCH, VIDEO}, default=None, metavar="FILE[,FILE...]", type=_image_list,
         help="one mask per --style, in the same order: white where that style applies, black where not, grey "
              "for a share (any size: resized to the content's); the styles are then not blended "
              "(docs: Style losses and masks)"),
    _opt("--contents", _IMAGES, {BATCH, TRAIN}, {
        TRAIN: {"required": True, "help": "training photos: a folder or a glob pattern (each at least --size "
                                          "pixels on its shorter side)"}},
         metavar="DIR|GLOB", help="content images: a folder, a glob pattern or a file"),
    _opt("--model", _IMAGES, {RUN, COMPARE, BATCH, VIDEO}, {
        VIDEO: {"help": "stylise each frame with a trained style network in one pass (--method network) instead of "
                        "optimising it; an AdaIN network takes --style and --alpha"},
        COMPARE: {"help": "compare a trained style network's pictures and times on every backend instead of an "
                          "optimisation; needs no --style"},
        BATCH: {"help": "stylise every content image with a trained style network, in one pass each, instead of "
                        "optimising; needs no --styles"}},
         metavar="FILE",
         help="stylise with a trained style network (.safetensors from multistyle train, or a PyTorch examples "
              "fast_neural_style .pth) in one pass, instead of optimising; needs no --style and no VGG-19"),
    _opt("--alpha", _IMAGES, {RUN, COMPARE, BATCH, VIDEO}, type=float, default=1.0, metavar="A",
         help="with an AdaIN --model: the content-style trade-off, A x stylised + (1 - A) x the content's own "
              "features, in [0, 1] (default: %(default)s)"),
    _opt("--styles", _IMAGES, {BATCH, TRAIN}, {
        TRAIN: {"help": "with --arbitrary: the style images the decoder learns from, a folder or a glob pattern (each "
                        "at least --size pixels on its shorter side)"}},
         metavar="DIR|GLOB", help="style images: a folder, a glob pattern or a file"),
    _opt("--output", _IMAGES, ALL | TRAINS, {
        TRAIN: {"metavar": "FILE", "help": "the trained network, .safetensors; its checkpoint is kept beside it, "
                                           "as STEM.checkpoint.safetensors"},
        RUN: {"metavar": "FILE", "help": "result image; the format follows the extension (.png .jpg .webp .tif .bmp)"},
        COMPARE: {"help": "report folder: index.html, report.json, the images and plots"},
        BENCH: {"required": False, "default": "bench.json", "metavar": "FILE",
                "help": "JSON results (default: %(default)s)"},
        BATCH: {"help": "output folder: one image and one JSON sidecar per job, results.json, results.csv and the "
                        "gallery index.html"},
        VIDEO: {"metavar": "FILE|DIR", "help": "the stylised clip: a video file (.mp4 .mov .mkv .m4v .avi .webm), or a "
                                               "folder for PNG frames; the finished frames are kept in OUTPUT.frames/ "
                                               "until the video is written, so a rerun continues"}},
         required=True, metavar="DIR"),
    _opt("--sizes", _IMAGES, {BENCH}, default="150x225,300x450", metavar="HxW,...",
         help="comma-separated working sizes (default: %(default)s)"),
    _opt("--floor", _IMAGES, {BENCH}, type=int, default=8, metavar="N",
         help="also time N iterations of the backend's floor (its VGG-19, frozen: forward and input gradient only) "
              "in the same process, alternated with the run's iterations, and print s/it ÷ floor ('fault' where the "
              "floor measured slower than the step); 0: off (default: %(default)s)"),
    _opt("--size", _IMAGES, {RUN, COMPARE, BATCH, TRAIN, VIDEO}, {
        VIDEO: {"default": None, "help": "working size of the optimisation, as HEIGHTxWIDTH, or one number for the "
                                         f"long edge (default: {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}); the output keeps "
                                         "the clip's size; a network runs at the clip's size"},
        BATCH: {"default": None, "help": "working size as HEIGHTxWIDTH, or one number for the long edge keeping the "
                                         f"content's aspect ratio (default: {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}; with "
                                         "--model, each content's own size)"},
        COMPARE: {"default": None, "help": "working size as HEIGHTxWIDTH, or one number for the long edge keeping the "
                                           f"content's aspect ratio (default: {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}; "
                                           "with --model, the content's own size)"},
        RUN: {"default": None, "help": "working size as HEIGHTxWIDTH, or one number for the long edge keeping the "
                                       f"content's aspect ratio (default: {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}; with "
                                       "--model, the content's own size)"},
        TRAIN: {"type": int, "default": 256, "metavar": "N", "help": "side of the square training crops; the style "
                                                                    "image's long edge (default: %(default)s)"}},
         default=f"{DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}", metavar="HxW|N",
         help="working size as HEIGHTxWIDTH, or one number for the long edge keeping the content's aspect ratio "
              "(default: %(default)s)"),
    _opt("--max-pixels", _IMAGES, ALL | TRAINS, type=int, default=images.DEFAULT_MAX_PIXELS, metavar="N",
         help="refuse input images with more pixels than this (default: %(default)s)"),
    # -- backend and network ----------------------------------------------------------------------------------
    _opt("--backend", _NETWORK, {RUN, BATCH, TRAIN, VIDEO}, {
        RUN: {"help": lambda: f"one of {', '.join(backend_names())} (default: %(default)s)"},
        VIDEO: {"help": lambda: f"one of {', '.join(backend_names())} (default: %(default)s)"},
        TRAIN: {"help": lambda: f"one of {', '.join(backend_names())} (default: %(default)s)"},
        BATCH: {"metavar": "NAME[,NAME...]",
                "help": lambda: f"one of {', '.join(backend_names())}, or several, comma-separated: every content x "
                                "style pair runs on each (default: %(default)s)"}}, default="torch"),
    _opt("--backends", _NETWORK, {COMPARE, BENCH}, default=None, metavar="NAMES",
         help="comma-separated backends (default: every registered one)"),
    _opt("--device", _NETWORK, ALL | TRAINS, default="auto", help="auto, cpu, gpu or gpu:N (default: %(default)s)"),
    _opt("--weights", _NETWORK, ALL | TRAINS, {BENCH: {"default": "random:0"}}, default="imagenet", metavar="SPEC",
         help="imagenet (the framework's model zoo), random[:SEED] (untrained, for tests), or a file: .npz, .pth, "
              ".params, .pdparams (default: %(default)s)"),
    # -- algorithm ---------------------------------------------------------------------------------------------
    _opt("--preset", _ALGO, ALL | TRAINS, default=Settings.preset, choices=list(PRESETS),
         help="d2l: the chapter's MXNet/Paddle layers; d2l-pytorch: what its PyTorch code computes (ReLU outputs); "
              "d2l-mxnet: its MXNet code's learning rate; pytorch-tutorial: the PyTorch tutorial (L-BFGS, pixel "
              "space); viblo: the same with RMSprop; fast: the d2l objective, coarse to fine on a shorter schedule "
              "(default: %(default)s)"),
    _opt("--epochs", _ALGO, ALL, {BENCH: {"default": 20, "help": "optimizer iterations (default: %(default)s)"}},
         type=int, default=None, help=f"optimizer iterations (default: {PRESET})"),
    _opt("--optimizer", _ALGO, default=None, choices=list(OPTIMIZERS),
         help=f"default: {PRESET}; `multistyle backends` lists whose code computes each"),
    _opt("--lr", _ALGO, ALL | TRAINS, {TRAIN: {"help": "Adam's learning rate (default: 1e-3; with --arbitrary 1e-4, "
                                              "the AdaIN port's)"}},
         type=float, default=None, help=f"learning rate (default: Adam {PRESET}; L-BFGS 1; RMSprop 0.01)"),
    _opt("--lr-decay", _ALGO, type=float, default=None,
         help=f"multiply the rate by this every --lr-decay-every epochs (default: {PRESET})"),
    _opt("--lr-decay-every", _ALGO, type=int, default=None, metavar="EPOCHS", help=f"default: {PRESET}"),
    _opt("--line-search", _ALGO, action="store_true",
         help="L-BFGS only: strong-Wolfe line search (several loss evaluations per iteration)"),
    _opt("--clamp", _ALGO, default=None, choices=list(CLAMPS),
         help=f"where the image is clamped to its valid range: inside every loss evaluation, after every step, at "
              f"the end, never (default: {PRESET})"),
    _opt("--scales", _ALGO, type=int, default=None, metavar="N",
         help=f"coarse to fine: optimise first at 1/2**(N-1) of the size, then double it, starting each scale from "
              f"the last result; the epochs go mostly to the small scales unless --final-share (default: {PRESET})"),
    _opt("--final-share", _ALGO, type=float, default=None, metavar="F",
         help=f"with --scales: give the full size this share of the epochs, the rest to the smaller scales "
              f"(default: {PRESET})"),
    _opt("--scale-start", _ALGO, default=None, choices=list(SCALE_STARTS),
         help=f"with --scales, how each larger scale starts: the last result upsampled, or the content at the new "
              f"size plus the last result's change to the content, upsampled, which keeps the content's fine detail "
              f"(default: {PRESET})"),
    _opt("--until-loss", _ALGO, type=float, default=None, metavar="VALUE",
         help="stop once the total loss is at or below VALUE"),
    _opt("--tol", _ALGO, type=float, default=None, metavar="REL",
         help="stop once the best loss of the last 20 epochs is less than REL (relative) below the best before them"),
    _opt("--content-weight", _ALGO, ALL | TRAINS, type=float, default=None, help=f"default: {PRESET}"),
    _opt("--style-weight", _ALGO, ALL | TRAINS, type=float, default=None,
         help=f"default: {PRESET}; for d2l the chapter's effective weight (README: The d2l defaults)"),
    _opt("--tv-weight", _ALGO, ALL | TRAINS, type=float, default=None, help=f"default: {PRESET}"),
    _opt("--tv-smoothing", _ALGO, type=float, default=None, metavar="S",
         help=f"descend the total variation's |d| as sqrt(d**2 + S**2), S shrinking with the learning rate; the "
              f"loss and the stop rules still use |d| (default: {PRESET})"),
    _opt("--content-layers", _ALGO, ALL | TRAINS, type=_layers, default=None, metavar="NAMES",
         help=f"comma-separated VGG-19 layers, each optionally NAME:WEIGHT (default: {PRESET}; weight 1)"),
    _opt("--style-layers", _ALGO, ALL | TRAINS, type=_layers, default=None, metavar="NAMES",
         help=f"comma-separated VGG-19 layers, each optionally NAME:WEIGHT, e.g. conv1_1:1,conv2_1:0.5 "
              f"(default: {PRESET}; weight 1)"),
    _opt("--style-blend", _ALGO, ALL | TRAINS, type=_numbers, default=None, metavar="W,W,...",
         help="one weight per style image (>= 0, normalised to sum 1): each style layer's target is the weighted "
              "sum of the styles' Gram matrices (default: equal)"),
    _opt("--style-scale", _ALGO, ALL | TRAINS, type=float, default=None, metavar="S",
         help="resize each style image to S x the working size's long edge, keeping its aspect ratio, before "
              "taking its features: the size of the texture (default: the style is resized to the working size "
              "itself, as the chapter does)"),
    _opt("--preserve-color", _ALGO, default=Settings.preserve_color, choices=list(color.MODES),
         help="luminance: keep the result's luminance and the content's colours (YUV, after optimisation); "
              "histogram: match the style's colour mean and covariance to the content's (before) "
              "(default: %(default)s)"),
    _opt("--style-loss", _ALGO, ALL | TRAINS, default=Settings.style_loss, choices=list(STYLE_LOSSES),
         help="what the style matches per layer: gram (Gram matrices, the chapter's), mean-std (per-channel means "
              "and standard deviations, AdaIN's statistics), w2 (the Wasserstein-2 distance between Gaussian "
              "fits of the features) or mrf (each 3x3 patch of features against its nearest patch of the style's, "
              "Li & Wand's) (default: the preset's, gram; a loss other than the preset's has its own default "
              "--style-weight, 10, and mrf its own --style-layers, relu3_1,relu4_1)"),
    _opt("--pooling", _ALGO, ALL | TRAINS, default=Settings.pooling, choices=list(POOLINGS),
         help="VGG-19's pooling layers: max (its own) or avg, often smoother (default: %(default)s)"),
    _opt("--init", _ALGO, default=None, metavar="|".join(INITS) + "|FILE",
         help="the start image: the content image, the content recoloured to the (first) style's colour mean and "
              "covariance, seeded noise, the (first) style image or an image file, resized to the working size "
              f"(default: {PRESET})"),
    _opt("--seed", _ALGO, ALL | TRAINS, type=int, default=Settings.seed, help="default: %(default)s"),
    _opt("--deterministic", _ALGO, action="store_true",
         help="turn on the framework's deterministic switches (GPU convolutions); slower"),
    # -- batch: the engine -------------------------------------------------------------------------------------
    _opt("--engine", "engine", {BATCH}, default="local", choices=list(ENGINES),
         help="local: a pool of worker processes on this machine; ray: each job a Ray task, on --ray-address or a "
              "local Ray (pip install 'multistyle[ray]') (default: %(default)s)"),
    _opt("--workers", "engine", {BATCH}, type=int, default=None, metavar="N",
         help="local engine: worker processes, each loading its backend and weights once (default: one per GPU; "
              "one on a CPU-only machine, as a job uses every core)"),
    _opt("--retries", "engine", {BATCH}, type=int, default=2, metavar="N",
         help="run a job whose worker process died (killed, out of memory, a lost Ray node) up to N more times; a "
              "job that fails because of its input is not retried (default: %(default)s)"),
    _opt("--ray-address", "engine", {BATCH}, default=None, metavar="ADDRESS",
         help="ray engine: the cluster to connect to, e.g. ray://head:10001 or auto (default: start a local Ray)"),
    _opt("--num-cpus", "engine", {BATCH}, type=float, default=None, metavar="N",
         help="ray engine: CPUs per job (default: 1)"),
    _opt("--num-gpus", "engine", {BATCH}, type=float, default=None, metavar="N",
         help="ray engine: GPUs per job (default: 1 where the cluster has GPUs, else 0)"),
    # -- train: the network and the schedule ------------------------------------------------------------------
    _opt("--arbitrary", "training", TRAINS, action="store_true",
         help="train an AdaIN network (Huang & Belongie 2017), which stylises with any style image at run time: its "
              "decoder learns from --contents and --styles against its encoder, VGG-19 to relu4_1 (--weights: "
              "imagenet, a VGG-19 file or the normalised vgg_normalised.pth); content weight 1, style weight 10 "
              "unless given; --size a multiple of 8 (docs: Arbitrary style)"),
    _opt("--iterations", "training", TRAINS, type=int, default=2000, metavar="N",
         help="Adam steps, one batch each (default: %(default)s)"),
    _opt("--batch-size", "training", TRAINS, type=int, default=4, metavar="N", help="crops per step (default: %(default)s)"),
    _opt("--width", "training", TRAINS, type=int, default=32, metavar="C",
         help="channels of the network's first layer: 32 as published, 16 for a network of about a quarter of "
              "the cost (default: %(default)s)"),
    _opt("--checkpoint-every", "training", TRAINS, type=int, default=500, metavar="N",
         help="write the checkpoint every N iterations, and at the end; 0: only at the end (default: %(default)s)"),
    _opt("--resume", "training", TRAINS, action="store_true",
         help="continue from the checkpoint beside --output, to the same parameters as an uninterrupted run"),
    # -- video -----------------------------------------------------------------------------------------------
    _opt("--method", "video", VIDEOS, default=None, choices=["optimise", "network"],
         help="optimise: Ruder et al.'s coherent optimisation of each frame; network: a trained --model's pass on "
              "each frame (default: network with --model, else optimise)"),
    _opt("--temporal-weight", "video", CLIPS, type=float, default=None, metavar="G",
         help="optimise: the temporal term's weight, on pixels in [0, 1], which holds each frame to the previous "
              "output where the flow is reliable; 0 leaves each frame free (default: 1000)"),
    _opt("--start", "video", CLIPS, default="previous", choices=["previous", "init"],
         help="optimise: start each frame from the previous output carried by the flow (Ruder et al.), or as "
              "--init says (default: %(default)s)"),
    _opt("--long-term", "video", CLIPS, type=_gaps, default=None, nargs="?", const=list(LONG_TERM),
         metavar="J,J,...",
         help="optimise: also hold each frame to the outputs J frames back, where no nearer one is reliable (Ruder "
              "et al.'s long-term loss; alone, their 1,10,20,40); a region an occluder uncovers returns as it was "
              "(default: the previous frame only)"),
    _opt("--temporal", "video", CLIPS, type=float, default=0.0, metavar="W",
         help="network: blend each output with the previous one carried by the flow, W x previous where the flow "
              "is reliable; 0: each frame alone (default: %(default)s)"),
    _opt("--flow-preset", "video", CLIPS, default="medium", choices=["ultrafast", "fast", "medium"],
         help="OpenCV DIS optical flow's preset: faster, or more exact (default: %(default)s)"),
    _opt("--fps", "video", CLIPS, type=float, default=None, metavar="F",
         help="the frame rate of a folder of frames (default: 25; a video file keeps its own)"),
    _opt("--debug-masks", "video", VIDEOS, default=None, metavar="DIR",
         help="also write each frame's reliability mask (white: the flow is trusted), disocclusions and motion "
              "boundaries, at the working size, as PNGs in DIR"),
    # -- run: reporting and planning ---------------------------------------------------------------------------
    _opt("--log", "reporting", {RUN}, metavar="FILE", help="per-epoch losses and timings, .csv or .json"),
    _opt("--save-every", "reporting", {RUN}, type=int, default=0, metavar="N",
         help="also save the image every N epochs, as OUTPUT-stem.epochNNNNN.ext"),
    _opt("--animate", "reporting", {RUN}, metavar="FILE",
         help="also write the optimisation as an animation, .gif or .webp: a frame every --animate-every epochs, "
              "the result last"),
    _opt("--animate-every", "reporting", {RUN}, type=int, default=0, metavar="N",
         help="epochs between animation frames (default: about 50 frames in all)"),
    _opt("--quiet", "reporting", {RUN, BATCH, TRAIN, VIDEO}, {BATCH: {"group": "engine"}}, action="store_true",
         help="no progress bar"),
    _opt("--plan", "planning", {RUN, TRAIN, VIDEO}, action="store_true",
         help="print the job's plan and predicted peak memory, and stop (loads no framework)"),
    _opt("--max-memory", "planning", {RUN, TRAIN}, default=None, metavar="SIZE",
         help="refuse, before any work, a job predicted to need more memory than SIZE (e.g. 4G, 1.5GiB); the error "
              "names the largest size that fits"),
)


def add_options(parser: argparse.ArgumentParser, command: str) -> None:
    """Add every option of ``command`` to ``parser``, in the table's order, in their groups."""
    groups: Dict[str, Any] = {}
    for option in OPTIONS:
        if command not in option.commands:
            continue
        title = option.group_for(command)
        if title not in groups:
            groups[title] = parser.add_argument_group(
                title, GROUP_DESCRIPTIONS_BY_COMMAND.get((command, title), GROUP_DESCRIPTIONS.get(title)))
        groups[title].add_argument(option.flag, **option.keywords(command))


def settings_from(args: argparse.Namespace) -> Settings:
    """The :class:`Settings` the parsed options ask for (options left out: the preset's)."""
    return Settings(**{f.name: getattr(args, f.name) for f in fields(Settings) if hasattr(args, f.name)})


def job_options() -> Dict[str, Option]:
    """The options a job of a JOBS file may set, by name (``max_pixels``, ``style_weight``, ...)."""
    return {option.dest: option for option in OPTIONS
            if BATCH in option.commands and option.group in JOB_OPTION_GROUPS
            and option.dest not in ("contents", "styles", "output", "model")}


def override(option: Option, value: Any, source: str) -> Any:
    """A JOBS file's value for one option, converted and checked as the command line would."""
    keywords = option.keywords(BATCH)
    if keywords.get("action") == "store_true":
        text = str(value).strip().lower()
        if text not in ("true", "false", "1", "0", "yes", "no"):
            raise MultistyleError(f"{source}: {option.flag}: expected true or false, got {value!r}")
        return text in ("true", "1", "yes")
    text = ",".join(str(part) for part in value) if isinstance(value, list) else str(value)
    convert: Callable[[str], Any] = keywords.get("type") or str
    try:
        converted = convert(text)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        detail = str(exc) if isinstance(exc, argparse.ArgumentTypeError) else f"invalid value {text!r}"
        raise MultistyleError(f"{source}: {option.flag}: {detail}") from None
    choices = keywords.get("choices")
    if choices is not None and converted not in choices:
        raise MultistyleError(f"{source}: {option.flag}: expected one of {', '.join(map(str, choices))}, "
                              f"got {text!r}")
    return converted
