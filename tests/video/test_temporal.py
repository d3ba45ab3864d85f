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


def test_the_long_term_target_has_the_long_term_losss_gradient_and_value():
    """Ruder et al.'s long-term loss over gaps nearest first, Σ_j c_long_j (x − ω_j)² with
    c_long_j = max(c_j − Σ_{k<j} c_k, 0), against the one target it is folded into: the same gradient always, the
    same value with 0/1 weights (each pixel held by one gap at most)."""
    from multistyle.video.temporal import long_term

    rng = np.random.default_rng(8)
    x = rng.uniform(0, 1, (H, W, 3))
    for binary in (True, False):
        pairs = []
        for _ in range(3):
            weights = rng.uniform(0, 1, (H, W))
            pairs.append((rng.uniform(0, 1, (H, W, 3)), (weights > 0.5).astype(float) if binary else weights))
        covered, value, grad = np.zeros((H, W)), 0.0, np.zeros((H, W, 3))
        for warped, weights in pairs:
            own = np.maximum(weights - covered, 0)[..., None]
            covered = covered + weights
            value += float((own * (x - warped) ** 2).sum())
            grad += 2 * own * (x - warped)
        mean, total = long_term([(w.astype(np.float32), c.astype(np.float32)) for w, c in pairs])
        np.testing.assert_allclose(2 * total[..., None] * (x - mean), grad, atol=1e-5)
        if binary:
            assert float((total[..., None] * (x - mean) ** 2).sum()) == pytest.approx(value, rel=1e-5)
            assert set(np.unique(total)) <= {0.0, 1.0}
    # The nearest gap keeps its own weights: one pair is the short-term target itself.
    alone = long_term([pairs[0]])
    np.testing.assert_allclose(alone[1], pairs[0][1], atol=1e-7)
