"""``multistyle batch``: a grid of contents x styles, or a JOBS file whose rows override options."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, List

from .. import images
from ..backend import backend_names, parse_device
from ..errors import MultistyleError
from ..settings import DEFAULT_SIZE, blend_mismatch
from ..transfer import read_masks
from ..vgg import parse_weights_spec
from .common import Interrupted, backend_list, command_line
from .options import job_options, override, settings_from


_DEFAULT_SIZE = f"{DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}"


def _batch_job(args: argparse.Namespace, content: str, style: List[str], backend: str, source: str) -> Any:
    """One :class:`~multistyle.batch.BatchJob` from ``run``-style options; mistakes name ``source``."""
    from ..batch import BatchJob
    from ..batch.jobs import is_clip

    prefix = f"{source}: " if source else ""
    try:
        if backend not in backend_names():
            raise MultistyleError(f"--backend: unknown backend {backend!r}; choose from {', '.join(backend_names())}")
        parse_device(args.device)
        parse_weights_spec(args.weights)
        if args.size is not None:
            images.parse_size(str(args.size))
        settings = settings_from(args).resolved()
        if settings.style_blend is not None and len(settings.style_blend) != len(style):
            raise MultistyleError(blend_mismatch(len(settings.style_blend), len(style)))
        read_masks(settings, len(style), args.max_pixels)  # each job's masks checked before any job runs
        if args.model:
            from ..nets.adain import check_alpha

            check_alpha(args.alpha)
        clip = is_clip(content)
        if clip:
            _check_clip_options(args, content)
    except MultistyleError as exc:
        raise MultistyleError(prefix + str(exc)) from None
    network = getattr(args, "adain", "")
    model = bool(getattr(args, "model", None)) and not network
    size = (None if args.size is None else str(args.size)) if args.model else str(args.size or _DEFAULT_SIZE)
    if clip and args.model:
        size = None  # a network's pass over a clip runs at the clip's size, as multistyle video's does
    return BatchJob(content=content, style=style, backend=backend, device=args.device, weights=args.weights,
                    size=size, max_pixels=args.max_pixels, deterministic=args.deterministic,
                    settings=settings, source=source, model=model, network=network, alpha=args.alpha, clip=clip,
                    temporal_weight=args.temporal_weight, start=args.start, temporal=args.temporal,
                    flow_preset=args.flow_preset, fps=args.fps, long_term=args.long_term)


def _check_clip_options(args: argparse.Namespace, content: str) -> None:
    """A clip's options, as ``multistyle video`` checks them: each method's own, in range."""
    if args.model:
        if args.temporal_weight is not None:
            raise MultistyleError("--temporal-weight: the optimisation's; a network's frames are blended by "
                                  "--temporal")
        if args.size is not None:
            raise MultistyleError("--size: a network stylises a clip at the clip's own size; drop --size")
        if args.long_term:
            raise MultistyleError("--long-term: the optimisation's; a network's frames are blended by --temporal")
        if not 0.0 <= args.temporal <= 1.0:
            raise MultistyleError(f"--temporal: expected a weight from 0 to 1, got {args.temporal!r}")
    else:
        if args.temporal:
            raise MultistyleError("--temporal: a network's blend; the optimisation is held by --temporal-weight")
        if args.temporal_weight is not None and not args.temporal_weight >= 0:
            raise MultistyleError(f"--temporal-weight: expected a number >= 0, got {args.temporal_weight!r}")
    from ..video.frames import Clip, check_fps

    check_fps(args.fps)
    if os.path.isdir(content):
        Clip(content, "--contents", args.fps)  # a folder without frames: said now, before any job runs


def cmd_batch(args: argparse.Namespace) -> int:
    from .. import batch

    args.adain = ""
    if args.model:
        from ..nets.adain import check_alpha
        from ..nets.arbitrary import ArbitraryNetwork
        from ..nets.stylize import load_model

        check_alpha(args.alpha)
        network = load_model(args.model, args.weights)  # a one-line error now, not one per job
        if isinstance(network, ArbitraryNetwork):  # any style: every content x every style, as without --model
            args.adain = args.model
        elif args.jobs or args.styles:
            raise MultistyleError("--model: the network is every job's style; give --contents only, not --styles "
                                  "or a JOBS file")
        elif not args.contents:
            raise MultistyleError("--model: give --contents, the images to stylise")
        elif args.alpha != 1.0:
            raise MultistyleError(f"--alpha: {args.model} is a per-style network, trained for one style; --alpha "
                                  f"works with an AdaIN network (any style)")
    if args.jobs and (args.contents or args.styles):
        raise MultistyleError("give either a JOBS file or --contents and --styles, not both")
    if not args.jobs and not (args.contents and (args.styles or (args.model and not args.adain))):
        raise MultistyleError("give --contents and --styles (every pair runs), or a JOBS.csv or JOBS.json file")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise MultistyleError(f"--output: {args.output!r} is a file; batch writes a folder")
    backends = backend_list(args.backend, "--backend")
    jobs = []
    if args.jobs:
        options = job_options()
        for row in batch.read_jobs_file(args.jobs):
            job_args = argparse.Namespace(**vars(args))
            for key, value in row.items():
                if key in ("content", "style", "source"):
                    continue
                if key not in options:
                    raise MultistyleError(f"{row['source']}: unknown option {key!r}; a job may set content, style "
                                          f"and {', '.join(sorted(options))}")
                setattr(job_args, key, override(options[key], value, row["source"]))
            names = [job_args.backend] if "backend" in row else backends
            jobs += [_batch_job(job_args, row["content"], row["style"], name, row["source"]) for name in names]
    else:
        contents = batch.expand_images(args.contents, "--contents", clips=True)
        styles = [args.model] if args.model and not args.adain else batch.expand_images(args.styles, "--styles")
        jobs = [_batch_job(args, content, [style], backend, "")
                for content in contents for style in styles for backend in backends]
    untrained = any(parse_weights_spec(job.weights)[0] == "random" and not job.model for job in jobs)
    if args.adain:
        untrained = network.untrained
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


