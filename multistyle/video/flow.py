"""Optical flow between frames, where it can be trusted, and warping by it: NumPy in, NumPy out, no framework.

Every backend gets the same flow and the same masks, so the frameworks differ only where they differ today.

**Convention.** A flow from frame ``a`` to frame ``b`` is an ``(H, W, 2)`` float32 array ``w`` of ``(dx, dy)``
on ``a``'s pixel grid with ``a(x) ≈ b(x + w(x))``: where the pixel at ``x`` of ``a`` is found in ``b``.  It is
OpenCV's convention (``calc(a, b)``), and it is what warping needs: ``warp(b, w)(x) = b(x + w(x))`` brings ``b``
onto ``a``'s grid.  So to carry the previous stylised frame onto frame ``t``, warp it by the flow from frame
``t`` to frame ``t - 1`` (the *backward* flow).

**Flow**: OpenCV's DIS (Kroeger et al., 2016) on the frames' luminance, its ``medium`` preset by default: a
CPU method fast enough for every frame, in place of the external binaries (DeepFlow, EpicFlow) that the
authors' code calls.

**Reliability** (Ruder et al., section 3.3).  With ``w`` the forward flow (``t - 1`` to ``t``) and ``ŵ`` the
backward one (``t`` to ``t - 1``), ``w̃(x) = w(x + ŵ(x))`` is the forward flow brought onto frame ``t``'s grid;
where the two agree it is about ``-ŵ``.  A pixel of frame ``t`` is

* **disoccluded** (it was hidden in ``t - 1``) where ``|w̃ + ŵ|² ≥ 0.01 (|w̃|² + |ŵ|²) + 0.5``;
* on a **motion boundary** where ``|∇û|² + |∇v̂|² ≥ 0.01 |ŵ|² + 0.002`` (central differences);

and reliable (weight 1) where it is neither, 0 where it is either.
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from ..errors import MultistyleError

PRESETS = ("ultrafast", "fast", "medium")


def _cv2():
    try:
        import cv2
    except ImportError:
        raise MultistyleError("video: optical flow needs OpenCV; install it with pip install 'multistyle[video]'") \
            from None
    return cv2


def luminance(frame: np.ndarray) -> np.ndarray:
    """A frame (``(H, W, 3)`` uint8, or floats in [0, 1]) as the ``(H, W)`` uint8 luminance that DIS reads
    (ITU-R 601 weights, as OpenCV's ``COLOR_RGB2GRAY``)."""
    pixels = np.asarray(frame)
    if pixels.dtype != np.uint8:
        pixels = np.clip(np.rint(pixels * 255.0), 0, 255)
    gray = pixels[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.rint(gray), 0, 255).astype(np.uint8)


def optical_flow(a: np.ndarray, b: np.ndarray, preset: str = "medium") -> np.ndarray:
    """The flow from frame ``a`` to frame ``b`` (same size): ``(H, W, 2)`` float32 ``(dx, dy)``, ``a(x) ≈ b(x +
    w(x))``."""
    if preset not in PRESETS:
        raise MultistyleError(f"--flow-preset: choose one of {', '.join(PRESETS)}, got {preset!r}")
    if np.shape(a)[:2] != np.shape(b)[:2]:
        raise MultistyleError(f"video: frames of different sizes ({np.shape(a)[:2]} and {np.shape(b)[:2]}); a clip's "
                              "frames must all have one size")
    cv2 = _cv2()
    dis = cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{preset.upper()}"))
    return np.asarray(dis.calc(luminance(a), luminance(b), None), np.float32)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` sampled at ``x + flow(x)`` (bilinear; positions past the border take the nearest edge pixel):
    ``(H, W, C)`` or ``(H, W)`` float32 on the flow's grid.  A zero flow gives the image back."""
    image = np.asarray(image, np.float32)
    height, width = flow.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    x = np.clip(xs + flow[..., 0], 0, image.shape[1] - 1)
    y = np.clip(ys + flow[..., 1], 0, image.shape[0] - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, image.shape[1] - 1), np.minimum(y0 + 1, image.shape[0] - 1)
    fx, fy = x - x0, y - y0
    if image.ndim == 3:
        fx, fy = fx[..., None], fy[..., None]
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def disocclusions(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Where frame ``t``'s pixels were hidden in frame ``t - 1``: ``(H, W)`` bool on frame ``t``'s grid, from the
    forward flow (``t - 1`` to ``t``) and the backward one (``t`` to ``t - 1``)."""
    carried = warp(forward, backward)  # w̃(x) = w(x + ŵ(x))
    mismatch = np.sum((carried + backward) ** 2, axis=-1)
    return mismatch >= 0.01 * (np.sum(carried ** 2, axis=-1) + np.sum(backward ** 2, axis=-1)) + 0.5


def motion_boundaries(backward: np.ndarray) -> np.ndarray:
    """Where the backward flow changes fast (the edges of moving things): ``(H, W)`` bool."""
    du_dy, du_dx = np.gradient(backward[..., 0])
    dv_dy, dv_dx = np.gradient(backward[..., 1])
    return du_dx ** 2 + du_dy ** 2 + dv_dx ** 2 + dv_dy ** 2 >= 0.01 * np.sum(backward ** 2, axis=-1) + 0.002


def reliability(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Ruder et al.'s weights for frame ``t``: 1 where the backward flow can be trusted, 0 where the pixel is
    disoccluded or on a motion boundary; ``(H, W)`` float32."""
    unreliable = disocclusions(forward, backward) | motion_boundaries(backward)
    return (~unreliable).astype(np.float32)


def flows(previous: np.ndarray, current: np.ndarray, preset: str = "medium") -> Tuple[np.ndarray, np.ndarray]:
    """The backward flow (``current`` to ``previous``: what carries the previous output onto this frame) and its
    reliability weights."""
    backward = optical_flow(current, previous, preset)
    forward = optical_flow(previous, current, preset)
    return backward, reliability(forward, backward)


def write_masks(frames: Any, folder: str, shape: Tuple[int, int], preset: str = "medium") -> int:
    """``--debug-masks``: for each frame after the first (``frames`` an iterable of ``(H, W, 3)`` uint8), its
    reliability (white: the flow is trusted), disocclusions and motion boundaries (white where found) at the
    working size ``shape``, as ``frame_NNNNN-reliable.png``, ``-disoccluded.png`` and ``-boundaries.png`` in
    ``folder``; the number of frames done."""
    import os

    from PIL import Image

    from .. import images

    os.makedirs(folder, exist_ok=True)
    previous, count = None, 0
    for index, frame in enumerate(frames):
        small = np.asarray(Image.fromarray(np.asarray(frame, np.uint8)).resize((shape[1], shape[0]), Image.BILINEAR))
        if previous is not None:
            backward, forward = optical_flow(small, previous, preset), optical_flow(previous, small, preset)
            occluded, edges = disocclusions(forward, backward), motion_boundaries(backward)
            for name, mask in (("reliable", ~(occluded | edges)), ("disoccluded", occluded), ("boundaries", edges)):
                pixels = np.repeat((mask.astype(np.uint8) * 255)[..., None], 3, axis=-1)
                images.save_image(pixels, os.path.join(folder, f"frame_{index + 1:05d}-{name}.png"))
            count += 1
        previous = small
    return count
