"""``multistyle video``: a clip stylised frame-coherently, by optimisation (Ruder et al.) or by a trained network."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict

from ..backend import backend_names, parse_device
from ..errors import MultistyleError
from .common import Interrupted
from .options import settings_from


def cmd_video(args: argparse.Namespace) -> int:
    from ..transfer import target_size
    from ..video.coherent import TEMPORAL_WEIGHT
    from ..video.frames import Clip
    from ..video.job import check_output

    method = args.method or ("network" if args.model else "optimise")
    if method == "network" and not args.model:
        raise MultistyleError("--method network: needs a trained network; give it with --model")
    if method == "optimise" and args.model:
        raise MultistyleError("--model: the optimise method takes no network; drop --model, or use --method network")
    if method == "optimise" and not args.style:
        raise MultistyleError("--style: required to optimise a clip (the style image)")
    if method == "network" and args.temporal_weight is not None:
        raise MultistyleError("--temporal-weight: the optimise method's; a network's frames are blended by --temporal")
    if method == "network" and args.size is not None:
        raise MultistyleError("--size: a network stylises a clip at the clip's own size; drop --size")
    if method == "network" and args.long_term:
        raise MultistyleError("--long-term: the optimisation's; a network's frames are blended by --temporal")
    if method == "optimise" and args.temporal:
        raise MultistyleError("--temporal: the network method's; the optimisation is held by --temporal-weight")
    if args.backend not in backend_names():
        raise MultistyleError(f"--backend: unknown backend {args.backend!r}; choose from {', '.join(backend_names())}")
    parse_device(args.device)
    _, folder = check_output(args.clip, args.output)
    clip = Clip(args.clip, "clip", args.fps)
    settings = settings_from(args)
    resolved = settings.resolved()
    height, width = clip.size
    from PIL import Image

    shape = (height, width) if method == "network" else target_size(Image.new("RGB", (width, height)), args.size)
    if args.plan:
        what = (f"the network {os.path.basename(args.model)}, one pass a frame at {height}x{width}" +
                (f", blended {args.temporal:g} along the flow" if args.temporal else "") if method == "network" else
                f"optimised at {shape[0]}x{shape[1]}, {resolved.epochs} epochs a frame ({resolved.preset}), temporal "
                f"weight {TEMPORAL_WEIGHT if args.temporal_weight is None else args.temporal_weight:g}"
                + (f" back to {','.join(map(str, args.long_term))} frames" if args.long_term else "")
                + f", start {args.start}")
        print(f"plan: {clip.count} frames of {os.path.basename(args.clip)} ({height}x{width}, {float(clip.fps):.4g} "
              f"fps{', audio ' + clip.audio if clip.audio else ''}), {what}, on {args.backend}")
        if method == "optimise":
            from ..loop import plan_memory

            kind, number = parse_device(args.device)
            device = f"gpu:{number or 0}" if kind == "gpu" else "cpu"
            print(f"predicted peak memory per frame: {plan_memory(args.backend, device, shape, resolved).describe()}")
        print(f"frames kept in {folder} until the clip is written" if folder != args.output else
              f"frames written to {folder}")
        return 0
    if args.debug_masks:
        from ..video.flow import write_masks

        write_masks(clip.frames(), args.debug_masks, shape, args.flow_preset)
    done: Dict[str, Any] = {"frame": 0}

    def on_frame(record: Dict[str, float]) -> None:
        done["frame"] = int(record["frame"])

    common = dict(backend=args.backend, device=args.device, weights=args.weights, flow_preset=args.flow_preset,
                  progress=not args.quiet and sys.stderr.isatty(), callback=on_frame)
    try:
        if method == "network":
            from ..video.fast import stylize_clip

            result = stylize_clip(args.model, clip, args.output, style=args.style, alpha=args.alpha,
                                  temporal=args.temporal, preserve_color=resolved.preserve_color,
                                  content_masks=resolved.content_masks, **common)
        else:
            from ..video.coherent import stylize_clip_coherent

            result = stylize_clip_coherent(clip, args.style, args.output, size=shape, settings=settings,
                                           temporal_weight=args.temporal_weight,
                                           start_from_previous=args.start == "previous",
                                           long_term=args.long_term, **common)
    except KeyboardInterrupt:
        unwritten = f"; {args.output} was not written" if folder != args.output else ""
        raise Interrupted(f"after frame {done['frame']} of {clip.count}; the finished frames are in {folder}; run "
                          f"the same command again to continue{unwritten}") from None
    resumed = f", continuing from frame {result['resumed_from'] + 1}" if result["resumed_from"] else ""
    print(f"wrote {args.output} ({result['frames']} frames, {height}x{width}, {float(result['fps']):.4g} fps"
          f"{', audio kept' if clip.audio and folder != args.output else ''}{resumed})")
    return 0


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("clip", metavar="CLIP", help="the clip: a video file, or a folder of frames (in their names' "
                                                     "natural order)")

