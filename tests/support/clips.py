"""Short synthetic clips the video tests make themselves: textured shapes moving over a textured background.

Textures are seeded noise, smoothed so that optical flow has gradients to follow; a shape is a rectangle of its
own texture, pasted at whole-pixel positions, so every flow and every disocclusion is known exactly.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageFilter


def texture(seed: int, height: int, width: int, blur: float = 1.5) -> np.ndarray:
    """``(H, W, 3)`` uint8 smoothed noise."""
    rng = np.random.default_rng(seed)
    noise = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    return np.asarray(noise.filter(ImageFilter.GaussianBlur(blur)))


class Shape:
    """A ``size`` = ``(h, w)`` rectangle of its own texture, at ``start`` = ``(top, left)``, moving by ``step`` =
    ``(dy, dx)`` whole pixels a frame."""

    def __init__(self, seed: int, size: Tuple[int, int], start: Tuple[int, int], step: Tuple[int, int]) -> None:
        self.pixels = np.clip(texture(seed, *size).astype(int) // 2 + 128, 0, 255).astype(np.uint8)
        self.size, self.start, self.step = size, start, step

    def box(self, frame: int) -> Tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` in frame ``frame``."""
        top, left = self.start[0] + frame * self.step[0], self.start[1] + frame * self.step[1]
        return top, left, top + self.size[0], left + self.size[1]

    def mask(self, frame: int, shape: Tuple[int, int]) -> np.ndarray:
        out = np.zeros(shape, bool)
        top, left, bottom, right = self.box(frame)
        out[max(top, 0):max(bottom, 0), max(left, 0):max(right, 0)] = True
        return out


def clip(count: int, height: int = 64, width: int = 96, shapes: Sequence[Shape] = (), seed: int = 0) -> List[np.ndarray]:
    """``count`` frames, ``(H, W, 3)`` uint8: the background, the shapes pasted over it in order."""
    background = texture(seed, height, width)
    frames = []
    for index in range(count):
        frame = background.copy()
        for shape in shapes:
            top, left, bottom, right = shape.box(index)
            t, l, b, r = max(top, 0), max(left, 0), min(bottom, height), min(right, width)
            if t < b and l < r:
                frame[t:b, l:r] = shape.pixels[t - top:b - top, l - left:r - left]
        frames.append(frame)
    return frames
