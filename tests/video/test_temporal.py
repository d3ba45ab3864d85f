"""The temporal loss (``multistyle.video.temporal``) on every backend against NumPy float64, in value and
gradient, for a picture in either domain (pixels, or ImageNet-normalised as the d2l presets keep it)."""

from __future__ import annotations

import numpy as np
import pytest

from multistyle.images import RGB_MEAN, RGB_STD
from multistyle.video.temporal import TemporalTarget, temporal_loss

RNG = np.random.default_rng(4)
H, W = 7, 9
WARPED = RNG.uniform(0, 1, (H, W, 3))
RELIABLE = (RNG.uniform(0, 1, (H, W)) > 0.3).astype(np.float64) * RNG.uniform(0.5, 1, (H, W))


def _oracle(x, pixel_domain):
    """Value and gradient in float64: x is (1, 3, H, W)."""
    pixels = x if pixel_domain else x * RGB_STD.reshape(1, 3, 1, 1) + RGB_MEAN.reshape(1, 3, 1, 1)
    difference = pixels - WARPED.transpose(2, 0, 1)[None]
    weights = RELIABLE[None, None]
    value = float((weights * difference ** 2).sum() / (3 * H * W))
    grad = 2 * weights * difference / (3 * H * W)
    return value, grad if pixel_domain else grad * RGB_STD.reshape(1, 3, 1, 1)


@pytest.mark.parametrize("pixel_domain", [True, False], ids=["pixels", "normalised"])
def test_the_temporal_loss_matches_numpy_float64_in_value_and_gradient(backend, pixel_domain):
    pixels = RNG.uniform(0, 1, (1, 3, H, W))
    x = pixels if pixel_domain else (pixels - RGB_MEAN.reshape(1, 3, 1, 1)) / RGB_STD.reshape(1, 3, 1, 1)
    target = TemporalTarget(backend, WARPED.astype(np.float32), RELIABLE.astype(np.float32), pixel_domain)
    value, grad = backend.value_and_grad(lambda t: temporal_loss(backend, t, target), x.astype(np.float32))
    want_value, want_grad = _oracle(x, pixel_domain)
    assert value == pytest.approx(want_value, rel=1e-5)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-4 * np.abs(want_grad).max())
    assert want_value > 0 and (want_grad == 0).any()  # unreliable pixels take no gradient
