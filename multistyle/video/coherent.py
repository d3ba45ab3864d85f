"""A clip stylised by optimisation, frame-coherently: Ruder, Dosovitskiy & Brox (2016), short-term and, with
``long_term``, long-term.

Frame 0 is optimised as ``multistyle run`` optimises a picture.  Each later frame ``t``:

* the backward flow (``t`` to ``t - 1``) and its reliability are computed on the two input frames at the working
  size (:mod:`.flow`: every backend gets the same);
* the previous output, carried onto frame ``t`` by that flow, is the start of the optimisation (unless
  ``start_from_previous`` is False: then the settings' ``init``, as for a picture);
* the loss gains the temporal term ``temporal_weight · 1/D Σ c (x − ω)²`` (:mod:`.temporal`), which holds the
  picture where the carried previous output can be trusted;
* with ``long_term`` gaps (``--long-term``), the outputs further back are carried onto frame ``t`` too (flow
  computed between the two frames directly), each trusted where no nearer one is: one target
  (:func:`.temporal.long_term`), so that a region an occluder uncovers returns to how it was before.

With ``temporal_weight = 0`` and ``start_from_previous = False`` every frame is its own ``run``.  The default
weight, 1000 on pixels in [0, 1], puts the term at about the content term's size for a change of 3 % of the
pixel range over the reliable pixels, with the d2l preset's weights.  Frames on disk, resuming and assembly are
:mod:`.job`'s; the output keeps the clip's size (a working size below it is resized up, bicubic).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import replace
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from ..errors import MultistyleError
from . import flow
from .frames import Clip
from .job import Earlier, FrameCallback, check_output, run_frames
from .temporal import Temporal
from .temporal import long_term as long_term_target

TEMPORAL_WEIGHT = 1e3
#: The frame's losses at its last epoch, added to what ``callback`` gets after each frame.
LOSS_TERMS = ("content", "style", "tv", "temporal", "total")


def _resized(pixels: np.ndarray, shape: Any, resample: int = Image.BILINEAR) -> np.ndarray:
    if pixels.shape[:2] == tuple(shape):
        return pixels
    return np.asarray(Image.fromarray(pixels).resize((shape[1], shape[0]), resample), np.uint8)


def stylize_clip_coherent(clip: Union[str, Clip], style: Any, output: str, *, backend: Any = "torch",
                          device: str = "auto", weights: Any = "imagenet", size: Any = None,
                          temporal_weight: Optional[float] = None, start_from_previous: bool = True,
                          flow_preset: str = "medium", fps: Optional[float] = None, progress: bool = False,
                          callback: Optional[FrameCallback] = None, settings: Any = None,
                          long_term: Optional[Sequence[int]] = None, **overrides: Any) -> Dict[str, Any]:
    """Optimise every frame of ``clip`` (a video file or a folder of frames) with ``style``, each frame held to
    the previous output where the flow is reliable, and write ``output`` (a video file, or a folder of PNG
    frames) with the clip's frame rate, size and audio.  ``callback(record)`` after each frame: ``frame``,
    ``seconds`` and the frame's losses at its last epoch (``content``, ``style``, ``tv``, ``temporal`` after the
    first frame, ``total``).  ``size`` is the working size (as ``run``'s ``--size``;
    300x450 when None, as ``run``'s); ``settings`` (a :class:`multistyle.Settings`) and keywords of its fields
    (``epochs=...``, ``preset=...``) are every frame's.  Returns what was done: ``frames``, ``resumed_from``, ``fps``,
    ``size``.  ``temporal_weight``: the term's weight, :data:`TEMPORAL_WEIGHT` when None.

    ``long_term`` (frame gaps, e.g. :data:`~multistyle.video.temporal.LONG_TERM`, Ruder et al.'s 1, 10, 20, 40)
    holds each frame also to the outputs that many frames back, where no nearer one is reliable: their long-term
    loss, which keeps what an occluder uncovers as it was before."""
    from ..backend import get_backend
    from ..settings import Settings
    from ..transfer import UntrainedWeightsWarning, target_size, transfer
    from ..vgg import deepest_index
    from ..weightfiles import LoadedWeights, load_weights

    temporal_weight = TEMPORAL_WEIGHT if temporal_weight is None else temporal_weight
    if not temporal_weight >= 0:
        raise MultistyleError(f"--temporal-weight: expected a number >= 0, got {temporal_weight!r}")
    clip_path = clip.path if isinstance(clip, Clip) else os.fspath(clip)
    check_output(clip_path, output)
    source = clip if isinstance(clip, Clip) else Clip(clip_path, "clip", fps)
    resolved = replace(settings or Settings(), **overrides).resolved()
    B = get_backend(backend, device) if isinstance(backend, str) else backend
    loaded = weights if isinstance(weights, LoadedWeights) else load_weights(weights, B, deepest_index(resolved.layers))
    height, width = source.size
    shape = target_size(Image.new("RGB", (width, height)), size)

    gaps = sorted(set(long_term)) if long_term else [1]
    if gaps[0] < 1:
        raise MultistyleError(f"--long-term: expected frame gaps of 1 or more, got {','.join(map(str, gaps))}")
    final: Dict[str, float] = {}

    def carried(past_in: np.ndarray, past_out: np.ndarray, frame: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """An earlier output carried onto this frame by the flow between their inputs, and its weights."""
        backward, reliable = flow.flows(_resized(past_in, shape), _resized(frame, shape), flow_preset)
        return np.clip(flow.warp(_resized(past_out, shape).astype(np.float32) / 255.0, backward), 0, 1), reliable

    def one_frame(index: int, frame: np.ndarray, previous_in: Optional[np.ndarray],
                  previous_out: Optional[np.ndarray], earlier: Earlier) -> np.ndarray:
        temporal = None
        if previous_in is not None and previous_out is not None and (temporal_weight or start_from_previous):
            previous = carried(previous_in, previous_out, frame)
            targets = [previous] + [carried(*earlier(index - gap), frame) for gap in gaps
                                    if gap > 1 and index - gap >= 0 and temporal_weight]
            warped, reliable = long_term_target(targets) if len(targets) > 1 else previous
            temporal = Temporal(warped, reliable, temporal_weight, start_from_previous, begin=previous[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UntrainedWeightsWarning)
            result = transfer(frame, style, backend=B, weights=loaded, size=shape, settings=resolved,
                              temporal=temporal)
        final.clear()
        final.update({key: value for key, value in result.history[-1].items() if key in LOSS_TERMS})
        return _resized(result.image, (height, width), Image.BICUBIC)

    def on_frame(record: Dict[str, float]) -> None:
        if callback is not None:
            callback({**record, **final})

    return run_frames(source, output, one_frame, progress, on_frame, history=gaps[-1] if gaps[-1] > 1 else 0)
