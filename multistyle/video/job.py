"""A clip's job, whatever stylises its frames: the output checked, each finished frame on disk before the next
starts (``frame_00001.png`` ... in the output folder, or for a video output in ``OUTPUT.frames/`` beside it), a
rerun continuing from the first missing frame, progress with an ETA, and a video output assembled at the end,
atomically, with the input's frame rate and audio (its frames folder then removed)."""

from __future__ import annotations

import os
import shutil
import time
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from .. import images
from ..errors import MultistyleError
from .frames import CODECS, Clip, is_video_file, write_video

FrameCallback = Callable[[Dict[str, float]], None]
#: ``earlier(k)``: frame ``k``'s input and output, for the frames :func:`run_frames` keeps (its ``history``).
Earlier = Callable[[int], Tuple[np.ndarray, np.ndarray]]
#: ``one_frame(index, frame, previous_frame, previous_output, earlier)``: frame ``index``'s output, ``(H, W, 3)``
#: uint8; the previous ones are None for the first frame.
OneFrame = Callable[[int, np.ndarray, Optional[np.ndarray], Optional[np.ndarray], Earlier], np.ndarray]


def frame_name(index: int) -> str:
    return f"frame_{index + 1:05d}.png"


def check_output(clip_path: str, output: str) -> Tuple[bool, str]:
    """``(is a video file, the folder the frames go to)``; an output that is the input is refused."""
    if os.path.abspath(output) == os.path.abspath(clip_path):
        raise MultistyleError(f"--output: {output!r} is the input clip; give another name")
    video = is_video_file(output)
    if not video and os.path.splitext(output)[1]:
        raise MultistyleError(f"--output: cannot write {os.path.splitext(output)[1]} video; use one of "
                              f"{', '.join(sorted(CODECS))}, or a folder (no extension) for frames")
    return video, (output + ".frames" if video else output)


def run_frames(source: Clip, output: str, one_frame: OneFrame, progress: bool = False,
               callback: Optional[FrameCallback] = None, history: int = 0) -> Dict[str, Any]:
    """Every frame of ``source`` through ``one_frame`` into ``output``; what was done: ``frames``,
    ``resumed_from``, ``fps``, ``size``.  ``history`` > 0 keeps that many frames before the current one for
    ``one_frame``'s ``earlier(k)`` (frame ``k``'s input and output), a resumed run too."""
    video, folder = check_output(source.path, output)
    os.makedirs(folder, exist_ok=True)
    done = 0
    while done < source.count and os.path.isfile(os.path.join(folder, frame_name(done))):
        done += 1
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=source.count, initial=done, unit="frame", dynamic_ncols=True)
    inputs: Dict[int, np.ndarray] = {}  # the last ``history`` frames' inputs; their outputs are on disk

    def earlier(index: int) -> Tuple[np.ndarray, np.ndarray]:
        output_frame = np.asarray(images.load_image(os.path.join(folder, frame_name(index))), np.uint8)
        return inputs[index], output_frame

    previous_in: Optional[np.ndarray] = None
    previous_out: Optional[np.ndarray] = None
    first = max(done - max(history, 1), 0)
    try:
        for index, frame in enumerate(source.frames(first), start=first):
            if history:
                inputs[index] = frame
                inputs.pop(index - history - 1, None)
            if index < done:  # a frame before the first missing one: the next frames start from it
                if index == done - 1:
                    previous_in = frame
                    previous_out = np.asarray(images.load_image(os.path.join(folder, frame_name(index))), np.uint8)
                continue
            started = time.perf_counter()
            out = one_frame(index, frame, previous_in, previous_out, earlier)
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
        write_video(frames, output, source.fps, audio_from=source.path if source.audio else None)
        shutil.rmtree(folder)
    return {"frames": source.count, "resumed_from": done, "fps": source.fps, "size": source.size}
