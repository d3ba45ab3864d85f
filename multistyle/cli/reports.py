"""``multistyle compare``, ``bench`` and ``explain``: jobs run side by side in child processes, and pages."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .. import images
from ..backend import backend_names, parse_device
from ..batch.jobs import BatchJob
from ..errors import MultistyleError
from ..optim import OPTIMIZERS
from ..settings import DEFAULT_SIZE, ResolvedSettings, settings_dict
from ..transfer import read_masks, target_size
from ..vgg import parse_weights_spec
from .common import backend_list, command_line
from .options import settings_from


def _backends(args: argparse.Namespace) -> list:
    return backend_list(args.backends if args.backends is not None else ",".join(backend_names()))


def _job(args: argparse.Namespace, settings: ResolvedSettings, size: Any, content: Optional[str] = None,
         style: Optional[List[str]] = None) -> Dict[str, Any]:
    """The job of ``compare`` (and the maths that ``explain`` measures on it) and ``bench``: a
    :class:`~multistyle.batch.BatchJob`, the one job type, as its payload; each run sets its backend."""
    parse_device(args.device)
    parse_weights_spec(args.weights)
    return BatchJob(content or args.content, list(style or args.style), device=args.device, weights=args.weights,
                    size=size, max_pixels=args.max_pixels, deterministic=args.deterministic,
                    settings=settings).to_payload()


def cmd_compare(args: argparse.Namespace) -> int:
    from .. import compare

    backends = _backends(args)
    if args.model:
        return _compare_model(args, backends)
    if not args.style:
        raise MultistyleError("--style: required (a style image), unless --model names a trained network")
    if args.size is None:
        args.size = f"{DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}"
    settings = settings_from(args).resolved()
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise MultistyleError(f"--output: {args.output!r} is a file; compare writes a folder")
    content = images.load_image(args.content, "--content", args.max_pixels)
    for path in args.style:
        images.load_image(path, "--style", args.max_pixels)
    read_masks(settings, len(args.style), args.max_pixels)
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
            variants[name] = settings_dict(settings_from(args).resolved())
    data = compare.compare(backends, args.output, _job(args, settings, list(size)),
                           command_line(sys.argv[1:] if args.argv is None else args.argv), variants,
                           explain_maths=not args.no_maths)
    for row in data["backends"]:
        print(f"{row['label']:14} {row['seconds_per_iteration']:.4f} s/it  final loss {row['final']['total']:.5g}")
    for name, reason in {**data["unusable"], **data["failed"]}.items():
        print(f"{name:14} did not run: {reason}")
    print(f"wrote {os.path.join(args.output, 'index.html')}")
    return 0


def _compare_model(args: argparse.Namespace, backends: List[str]) -> int:
    """``compare --model``: the network's picture and time on each backend."""
    from ..nets.arbitrary import ArbitraryNetwork
    from ..nets.compare import compare_model
    from ..nets.stylize import load_model

    arbitrary = isinstance(load_model(args.model, args.weights), ArbitraryNetwork)
    if args.style and not arbitrary:
        raise MultistyleError("--style: a trained network (--model) has its style built in; drop --style")
    if args.alpha != 1.0 and not arbitrary:
        raise MultistyleError(f"--alpha: {args.model} is a per-style network, trained for one style; --alpha works "
                              f"with an AdaIN network (any style)")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise MultistyleError(f"--output: {args.output!r} is a file; compare writes a folder")
    size = None
    if args.size is not None:
        size = target_size(images.load_image(args.content, "--content", args.max_pixels), args.size)
    data = compare_model(backends, args.output, args.model, args.content, size, args.device,
                         max_pixels=args.max_pixels, command=command_line(sys.argv[1:] if args.argv is None else args.argv),
                         weights=args.weights, styles=args.style or (), alpha=args.alpha, settings=settings_from(args))
    for row in data["backends"]:
        print(f"{row['backend']:14} first pass {row['first']:.3f} s, warm {row['warm']:.3f} s, "
              f"{row['max_diff']} levels from {data['backends'][0]['backend']} at most")
    for name, reason in {**data["unusable"], **data["failed"]}.items():
        print(f"{name:14} did not run: {reason}")
    print(f"wrote {os.path.join(args.output, 'index.html')}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .. import bench

    backends = _backends(args)
    settings = settings_from(args).resolved()
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
        job = _job(args, settings, None, args.content or synthetic[0], args.style or [synthetic[1]])
        if args.floor < 0:
            raise MultistyleError(f"--floor: expected 0 (off) or a number of iterations, got {args.floor}")
        job["floor"] = args.floor
        rows, unusable = bench.bench(backends, sizes, job)
    print("\n".join(bench.bench_table(rows)))
    for name, reason in unusable.items():
        print(f"{name:10} unusable: {reason}")
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
    from .. import explain

    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise MultistyleError(f"--output: {args.output!r} is a file; explain writes a folder")
    print(f"wrote {explain.write_page(args.output, _backends(args))}")
    return 0


