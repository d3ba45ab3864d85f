"""Colour preservation, in NumPy, the same for every backend.

* ``luminance`` (after the optimisation): the result's luminance with the
  content image's chrominance, in YUV with the BT.601 coefficients, as
  jcjohnson/neural-style's ``-original_colors 1`` does.
* ``histogram`` (before it): the style image's colours moved so that their
  mean and covariance are the content's, ``x' = A (x - mu_s) + mu_c`` with
  ``A = C_c^(1/2) C_s^(-1/2)`` (symmetric square roots), the "image analogies"
  transform of Gatys, Bethge, Hertzmann and Shechtman, "Preserving Color in
  Neural Artistic Style Transfer" (2016), section 2.
"""

from __future__ import annotations

import numpy as np

MODES = ("none", "luminance", "histogram")

#: RGB -> YUV, BT.601 (Y = 0.299 R + 0.587 G + 0.114 B).
_RGB_TO_YUV = np.array([[0.299, 0.587, 0.114],
                        [-0.14713, -0.28886, 0.436],
                        [0.615, -0.51499, -0.10001]])
_YUV_TO_RGB = np.linalg.inv(_RGB_TO_YUV)


def rgb_to_yuv(pixels: np.ndarray) -> np.ndarray:
    """``(..., 3)`` RGB floats in [0, 1] to YUV."""
    return np.asarray(pixels, dtype=np.float64) @ _RGB_TO_YUV.T


def yuv_to_rgb(yuv: np.ndarray) -> np.ndarray:
    return np.asarray(yuv, dtype=np.float64) @ _YUV_TO_RGB.T


def keep_luminance(result: np.ndarray, content: np.ndarray) -> np.ndarray:
    """``result``'s luminance with ``content``'s chrominance: two ``(H, W, 3)`` uint8 images of one size."""
    y = rgb_to_yuv(result / 255.0)[..., :1]
    uv = rgb_to_yuv(content / 255.0)[..., 1:]
    rgb = yuv_to_rgb(np.concatenate([y, uv], axis=-1))
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def _sqrt_psd(matrix: np.ndarray, inverse: bool = False) -> np.ndarray:
    """Symmetric square root (or its inverse) of a covariance matrix; tiny eigenvalues are floored."""
    values, vectors = np.linalg.eigh(matrix)
    values = np.maximum(values, 1e-8)
    return (vectors * (values ** (-0.5 if inverse else 0.5))) @ vectors.T


def match_color(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """``style`` (``(H, W, 3)`` floats) with the colour mean and covariance of ``content`` (any size).

    Not clipped: the few values that leave [0, 1] stay, so the statistics hold exactly.
    """
    s = np.asarray(style, dtype=np.float64).reshape(-1, 3)
    c = np.asarray(content, dtype=np.float64).reshape(-1, 3)
    mu_s, mu_c = s.mean(axis=0), c.mean(axis=0)
    transform = _sqrt_psd(np.cov(c, rowvar=False)) @ _sqrt_psd(np.cov(s, rowvar=False), inverse=True)
    out = (s - mu_s) @ transform.T + mu_c
    return out.reshape(np.shape(style)).astype(np.float32)
