"""``--animate``: the optimisation as an animated GIF or WebP.

Frames are taken every N epochs and written at once to a temporary folder
as PNG files, so a long run holds no frames in memory; at the end they are
read back one by one, resized to the final size (coarse scales are smaller)
and written as one animation, atomically.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Iterator, List, Tuple

import numpy as np
from PIL import Image

from . import images
from .errors import MultistyleError

FORMATS = {".gif": "GIF", ".webp": "WEBP"}
FRAME_MILLISECONDS = 80
LAST_FRAME_MILLISECONDS = 1500  # the result stays on screen before the loop restarts


def check_animation_path(path: str, option: str = "--animate") -> str:
    """The Pillow format of an animation path; refuse other extensions and unwritable folders."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in FORMATS:
        raise MultistyleError(f"{option}: {path!r} is not an animation format; use a .gif or .webp file name")
    images.check_writable(path, option)
    return FORMATS[extension]


def default_every(epochs: int) -> int:
    """About 50 frames whatever the run's length."""
    return max(1, epochs // 50)


class FrameRecorder:
    """Collects frames on disk and writes them as one animation."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.format = check_animation_path(path)
        self.folder = tempfile.mkdtemp(prefix="multistyle-frames-")
        self.frames: List[str] = []

    def add(self, pixels: np.ndarray) -> None:
        """One ``(H, W, 3)`` uint8 frame."""
        name = os.path.join(self.folder, f"{len(self.frames):06d}.png")
        Image.fromarray(pixels).save(name)
        self.frames.append(name)

    def _read(self, size: Tuple[int, int]) -> Iterator[Image.Image]:
        for name in self.frames:
            with Image.open(name) as frame:
                rgb = frame.convert("RGB")
            yield rgb if rgb.size == size else rgb.resize(size, Image.BILINEAR)

    def write(self) -> None:
        """Write the animation (the last frame's size throughout) and remove the frames."""
        if not self.frames:
            raise MultistyleError("--animate: no frames were taken")
        with Image.open(self.frames[-1]) as last:
            size = last.size
        frames = self._read(size)
        first = next(frames)
        durations = [FRAME_MILLISECONDS] * (len(self.frames) - 1) + [LAST_FRAME_MILLISECONDS]
        try:
            with images.atomic_path(self.path) as temp:
                first.save(temp, format=self.format, save_all=True, append_images=frames, duration=durations,
                           loop=0, **({"lossless": False, "quality": 80} if self.format == "WEBP" else {}))
        finally:
            self.close()

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
