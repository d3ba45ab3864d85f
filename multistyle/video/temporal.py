"""Ruder et al.'s short-term temporal loss, written once over the backend protocol.

    L_temporal(x, ω, c) = 1/D · Σ_k c_k (x_k − ω_k)²

over the picture's ``D = 3·H·W`` values, in pixels in [0, 1] whatever the preset's domain: ``x`` the frame
being optimised, ``ω`` the previous frame's output carried onto this frame by the backward flow
(:func:`multistyle.video.flow.warp`), ``c`` its reliability (:func:`multistyle.video.flow.reliability`), the
same weight for the three channels of a pixel.  Where the flow cannot be trusted (``c = 0``) the picture is
free; elsewhere it is held where the previous output was, so texture does not flicker.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import images


class TemporalTarget:
    """What the temporal loss compares a frame's picture with, placed on the backend once per frame: the warped
    previous output ``warped`` (``(H, W, 3)`` pixels in [0, 1]) and its weights ``reliable`` (``(H, W)`` in [0,
    1]).  ``pixel_domain``: whether the pictures the loss receives are pixels already (the pixel-space presets)
    or ImageNet-normalised."""

    def __init__(self, B: Any, warped: np.ndarray, reliable: np.ndarray, pixel_domain: bool) -> None:
        height, width = np.shape(reliable)
        if np.shape(warped) != (height, width, 3):
            raise ValueError(f"the warped picture is {np.shape(warped)}, its weights {np.shape(reliable)}")
        self.B, self.pixel_domain = B, pixel_domain
        self.warped = B.asarray(np.ascontiguousarray(np.asarray(warped, np.float32).transpose(2, 0, 1)[None]))
        self.reliable = B.asarray(np.asarray(reliable, np.float32).reshape(1, 1, height, width))
        self.count = float(3 * height * width)
        if not pixel_domain:
            self.mean = B.asarray(images.RGB_MEAN.reshape(1, 3, 1, 1))
            self.std = B.asarray(images.RGB_STD.reshape(1, 3, 1, 1))


class Temporal:
    """What a video frame's optimisation takes from the frame before (:func:`multistyle.transfer`'s
    ``temporal``): the previous output carried onto this frame (``warped``, ``(H, W, 3)`` uint8 or floats in
    [0, 1], at the frame's working size), where that can be trusted (``reliable``, ``(H, W)`` in [0, 1]), the
    term's ``weight``, and whether the optimisation starts from ``warped`` (Ruder et al.'s initialisation) or as
    the settings' ``init`` says."""

    def __init__(self, warped: np.ndarray, reliable: np.ndarray, weight: float, start: bool = True) -> None:
        warped = np.asarray(warped)
        self.warped = warped.astype(np.float32) / 255.0 if warped.dtype == np.uint8 else warped.astype(np.float32)
        self.reliable = np.asarray(reliable, np.float32)
        if self.warped.shape != self.reliable.shape + (3,):
            raise ValueError(f"the warped picture is {self.warped.shape}, its weights {self.reliable.shape}")
        if not weight >= 0:
            raise ValueError(f"the temporal weight must be >= 0, got {weight!r}")
        self.weight, self.start = float(weight), bool(start)

    def at(self, shape: Any) -> "Temporal":
        """The same at another working size ``(H, W)`` (a preset's coarser scale): both resized bilinearly."""
        if tuple(shape) == self.reliable.shape:
            return self
        warped = images.resize_array(self.warped.transpose(2, 0, 1)[None], shape)[0].transpose(1, 2, 0)
        reliable = images.resize_array(np.repeat(self.reliable[None, None], 3, axis=1), shape)[0, 0]
        return Temporal(np.clip(warped, 0, 1), np.clip(reliable, 0, 1), self.weight, self.start)


def temporal_loss(B: Any, x: Any, target: TemporalTarget) -> Any:
    """The loss of the picture ``x`` (the backend's ``(1, 3, H, W)`` input, in the preset's domain)."""
    pixels = x if target.pixel_domain else x * target.std + target.mean
    return B.sum(B.square(pixels - target.warped) * target.reliable) / target.count
