"""A clip stylised by a trained network (a per-style network or AdaIN), frame by frame, with temporal blending.

Each frame gets the network's pass.  With ``temporal`` ``W`` > 0, each output is then blended with the previous
output carried onto it by the backward flow, where the consistency check trusts the flow (``c = 1``):
``out = (1 − W·c) · pass + W·c · warp(previous out)``.  ``W = 0`` is independent per-frame stylisation, the
network's own picture of each frame; ``W = 1`` holds every reliable pixel where the previous output had it.
Frames on disk, resuming and assembly are :mod:`.job`'s.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Union

import numpy as np

from ..errors import MultistyleError
from . import flow
from .frames import Clip
from .job import FrameCallback, check_output, run_frames


def stylize_clip(model: Any, clip: Union[str, Clip], output: str, *, style: Any = None, alpha: float = 1.0,
                 backend: Any = "torch", device: str = "auto", weights: str = "imagenet", temporal: float = 0.0,
                 flow_preset: str = "medium", fps: Optional[float] = None, progress: bool = False,
                 callback: Optional[FrameCallback] = None, preserve_color: str = "none",
                 content_masks: Optional[Any] = None) -> Dict[str, Any]:
    """Stylise every frame of ``clip`` (a video file or a folder of frames) with the trained network ``model``
    (a path or a loaded network; an AdaIN network takes ``style`` and ``alpha``) and write ``output`` (a video
    file, or a folder of PNG frames), keeping the frame rate, the size and the audio.  ``temporal`` in [0, 1]
    blends each output with the previous one where the flow is reliable.  ``callback(record)`` after each frame
    (``frame``, ``seconds``).  Returns what was done: ``frames``, ``resumed_from``, ``fps``, ``size``."""
    from ..backend import get_backend
    from ..nets.arbitrary import ArbitraryNetwork
    from ..nets.stylize import STYLE_BUILT_IN, load_model, stylize

    if not 0.0 <= temporal <= 1.0:
        raise MultistyleError(f"--temporal: expected a weight from 0 to 1, got {temporal!r}")
    clip_path = clip.path if isinstance(clip, Clip) else os.fspath(clip)
    check_output(clip_path, output)
    source = clip if isinstance(clip, Clip) else Clip(clip_path, "clip", fps)
    B = get_backend(backend, device) if isinstance(backend, str) else backend
    network = load_model(model, weights, backend=B)
    extra: Dict[str, Any] = {}
    if isinstance(network, ArbitraryNetwork):
        extra = {"style": style, "alpha": alpha, "content_masks": content_masks}
    elif style is not None:
        raise MultistyleError(STYLE_BUILT_IN)
    elif content_masks is not None:
        raise MultistyleError("--content-masks: a per-style network has one style, applied everywhere; masks place "
                              "the styles of an AdaIN network or of the optimisation")

    def one_frame(index: int, frame: np.ndarray, previous_in: Optional[np.ndarray],
                  previous_out: Optional[np.ndarray], earlier: Any) -> np.ndarray:
        out = stylize(network, frame, backend=B, preserve_color=preserve_color, **extra).image
        if temporal > 0 and previous_in is not None and previous_out is not None:
            backward, reliable = flow.flows(previous_in, frame, flow_preset)
            carried = flow.warp(previous_out, backward)
            share = (temporal * reliable)[..., None]
            out = np.clip(np.rint((1 - share) * out + share * carried), 0, 255).astype(np.uint8)
        return out

    return run_frames(source, output, one_frame, progress, callback)
