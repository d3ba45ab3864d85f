"""A clip stylised by a trained network (a per-style network or AdaIN), frame by frame, with temporal blending.

Each frame gets the network's pass.  With ``temporal`` ``W`` > 0, each output is then blended with the previous
output carried onto it by the backward flow, where the consistency check trusts the flow (``c = 1``):
``out = (1 − W·c) · pass + W·c · warp(previous out)``.  ``W = 0`` is independent per-frame stylisation, the
network's own picture of each frame; ``W = 1`` holds every reliable pixel where the previous output had it.

Every finished frame is on disk (``frame_00001.png`` ... in the output folder, or for a video output in
``OUTPUT.frames/`` beside it) before the next starts, so a rerun after Ctrl-C or a crash continues from the
first missing frame and gives the same frames.  A video output is assembled at the end, atomically, with the
input's frame rate and audio; its frames folder is then removed.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any, Callable, Dict, Optional, Tuple, Union

import numpy as np

from .. import images
from ..errors import MultistyleError
from . import flow
from .frames import Clip, is_video_file, write_video

FrameCallback = Callable[[Dict[str, float]], None]


def frame_name(index: int) -> str:
    return f"frame_{index + 1:05d}.png"


def check_output(clip_path: str, output: str) -> Tuple[bool, str]:
    """``(is a video file, the folder the frames go to)``; an output that is the input is refused."""
    if os.path.abspath(output) == os.path.abspath(clip_path):
        raise MultistyleError(f"--output: {output!r} is the input clip; give another name")
    video = is_video_file(output)
    if not video and os.path.splitext(output)[1]:
        from .frames import CODECS

        raise MultistyleError(f"--output: cannot write {os.path.splitext(output)[1]} video; use one of "
                              f"{', '.join(sorted(CODECS))}, or a folder (no extension) for frames")
    return video, (output + ".frames" if video else output)


def stylize_clip(model: Any, clip: Union[str, Clip], output: str, *, style: Any = None, alpha: float = 1.0,
                 backend: Any = "torch", device: str = "auto", weights: str = "imagenet", temporal: float = 0.0,
                 flow_preset: str = "medium", fps: Optional[float] = None, progress: bool = False,
                 callback: Optional[FrameCallback] = None) -> Dict[str, Any]:
    """Stylise every frame of ``clip`` (a video file or a folder of frames) with the trained network ``model``
    (a path or a loaded network; an AdaIN network takes ``style`` and ``alpha``) and write ``output`` (a video
    file, or a folder of PNG frames), keeping the frame rate, the size and the audio.  ``temporal`` in [0, 1]
    blends each output with the previous one where the flow is reliable.  ``callback(record)`` after each frame
    (``frame``, ``seconds``).  Returns what was done: ``frames``, ``resumed_from``, ``fps``, ``size``."""
    from ..backend import get_backend
    from ..nets.arbitrary import ArbitraryNetwork
    from ..nets.stylize import load_model, stylize

    if not 0.0 <= temporal <= 1.0:
        raise MultistyleError(f"--temporal: expected a weight from 0 to 1, got {temporal!r}")
    clip_path = clip.path if isinstance(clip, Clip) else os.fspath(clip)
    video, folder = check_output(clip_path, output)
    source = clip if isinstance(clip, Clip) else Clip(clip_path, "clip", fps)
    B = get_backend(backend, device) if isinstance(backend, str) else backend
    network = load_model(model, weights, backend=B)
    extra: Dict[str, Any] = {}
    if isinstance(network, ArbitraryNetwork):
        extra = {"style": style, "alpha": alpha}
    elif style is not None:
        from ..nets.stylize import STYLE_BUILT_IN

        raise MultistyleError(STYLE_BUILT_IN)
    os.makedirs(folder, exist_ok=True)
    done = 0
    while done < source.count and os.path.isfile(os.path.join(folder, frame_name(done))):
        done += 1
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=source.count, initial=done, unit="frame", dynamic_ncols=True)
    previous_in: Optional[np.ndarray] = None
    previous_out: Optional[np.ndarray] = None
    try:
        for index, frame in enumerate(source.frames(max(done - 1, 0))):
            index += max(done - 1, 0)
            if index < done:  # the frame before the first missing one: the flow and the blend start from it
                previous_in = frame
                previous_out = np.asarray(images.load_image(os.path.join(folder, frame_name(index))), np.uint8)
                continue
            started = time.perf_counter()
            out = stylize(network, frame, backend=B, **extra).image
            if temporal > 0 and previous_in is not None and previous_out is not None:
                backward, reliable = flow.flows(previous_in, frame, flow_preset)
                carried = flow.warp(previous_out, backward)
                share = (temporal * reliable)[..., None]
                out = np.clip(np.rint((1 - share) * out + share * carried), 0, 255).astype(np.uint8)
            images.save_image(out, os.path.join(folder, frame_name(index)))
            previous_in, previous_out = frame, out
            if bar is not None:
                bar.update(1)
            if callback is not None:
                callback({"frame": index + 1, "seconds": time.perf_counter() - started})
    finally:
        if bar is not None:
            bar.close()
    if video:
        frames = (np.asarray(images.load_image(os.path.join(folder, frame_name(i))), np.uint8)
                  for i in range(source.count))
        write_video(frames, output, source.fps, audio_from=clip_path if source.audio else None)
        shutil.rmtree(folder)
    return {"frames": source.count, "resumed_from": done, "fps": source.fps, "size": source.size}
