"""Ruder et al.'s short-term temporal loss, written once over the backend protocol.

    L_temporal(x, ω, c) = 1/D · Σ_k c_k (x_k − ω_k)²

over the picture's ``D = 3·H·W`` values, in pixels in [0, 1] whatever the preset's domain: ``x`` the frame
being optimised, ``ω`` the previous frame's output carried onto this frame by the backward flow
(:func:`multistyle.video.flow.warp`), ``c`` its reliability (:func:`multistyle.video.flow.reliability`), the
same weight for the three channels of a pixel.  Where the flow cannot be trusted (``c = 0``) the picture is
free; elsewhere it is held where the previous output was, so texture does not flicker.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

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

    def __init__(self, warped: np.ndarray, reliable: np.ndarray, weight: float, start: bool = True,
                 begin: Optional[np.ndarray] = None) -> None:
        self.warped = _unit(warped)
        self.reliable = np.asarray(reliable, np.float32)
        if self.warped.shape != self.reliable.shape + (3,):
            raise ValueError(f"the warped picture is {self.warped.shape}, its weights {self.reliable.shape}")
        if not weight >= 0:
            raise ValueError(f"the temporal weight must be >= 0, got {weight!r}")
        self.weight, self.start = float(weight), bool(start)
        #: The start picture (with ``start``): ``warped`` unless given (the long-term loss's target blends several
        #: earlier outputs; its start is the previous one's).
        self.begin = self.warped if begin is None else _unit(begin)

    def at(self, shape: Any) -> "Temporal":
        """The same at another working size ``(H, W)`` (a preset's coarser scale): all resized bilinearly."""
        if tuple(shape) == self.reliable.shape:
            return self
        reliable = images.resize_array(np.repeat(self.reliable[None, None], 3, axis=1), shape)[0, 0]
        return Temporal(_resized(self.warped, shape), np.clip(reliable, 0, 1), self.weight, self.start,
                        None if self.begin is self.warped else _resized(self.begin, shape))


def _unit(picture: np.ndarray) -> np.ndarray:
    picture = np.asarray(picture)
    return picture.astype(np.float32) / 255.0 if picture.dtype == np.uint8 else picture.astype(np.float32)


def _resized(picture: np.ndarray, shape: Any) -> np.ndarray:
    return np.clip(images.resize_array(picture.transpose(2, 0, 1)[None], shape)[0].transpose(1, 2, 0), 0, 1)


#: Ruder et al.'s long-term set J: the frames 1, 10, 20 and 40 back.
LONG_TERM = (1, 10, 20, 40)


def long_term(targets: Sequence[Tuple[np.ndarray, np.ndarray]]) -> Tuple[np.ndarray, np.ndarray]:
    """Ruder et al.'s long-term loss as one target: ``targets`` are ``(warped, reliable)`` for each gap ``j`` of
    J, nearest first (earlier output ``j`` frames back carried onto this frame, its consistency weights).

    Each gap's weights keep only what no nearer gap covers, ``c_long_j = max(c_j − Σ_{k<j} c_k, 0)``, and

        Σ_j c_long_j (x − ω_j)²  =  C (x − ω̄)²  +  Σ_j c_long_j ω_j² − C ω̄²,
        with  C = Σ_j c_long_j  and  ω̄ = Σ_j c_long_j ω_j / C,

    so the term :func:`temporal_loss` computes with ``(ω̄, C)`` has the long-term loss's gradient, and its value
    wherever one gap at most holds a pixel, as with the 0/1 weights of the consistency check."""
    covered: Optional[np.ndarray] = None
    total_weight: Optional[np.ndarray] = None
    weighted: Optional[np.ndarray] = None
    for warped, reliable in targets:
        reliable = np.asarray(reliable, np.float64)
        own = reliable if covered is None else np.maximum(reliable - covered, 0.0)
        covered = reliable if covered is None else covered + reliable
        part = own[..., None] * _unit(warped)
        total_weight = own if total_weight is None else total_weight + own
        weighted = part if weighted is None else weighted + part
    if total_weight is None or weighted is None:
        raise ValueError("no earlier frame to hold this one to")
    mean = np.where(total_weight[..., None] > 0, weighted / np.maximum(total_weight[..., None], 1e-12), 0.0)
    return mean.astype(np.float32), total_weight.astype(np.float32)


def temporal_loss(B: Any, x: Any, target: TemporalTarget) -> Any:
    """The loss of the picture ``x`` (the backend's ``(1, 3, H, W)`` input, in the preset's domain)."""
    pixels = x if target.pixel_domain else x * target.std + target.mean
    return B.sum(B.square(pixels - target.warped) * target.reliable) / target.count
