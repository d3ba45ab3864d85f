"""The losses of Gatys et al., written once against the backend protocol.

All functions take the backend ``B`` first and native tensors after it.
Feature maps are NCHW with a batch of one.

* content loss: mean squared error between feature maps;
* Gram matrix: ``X Xᵀ / (c·h·w)`` with ``X`` the ``(c, h·w)`` feature matrix;
* style loss: mean squared error between Gram matrices;
* total variation: ``0.5 · (mean|Δ_vertical| + mean|Δ_horizontal|)``.
"""

from __future__ import annotations

from typing import Any

Tensor = Any


def content_loss(B: Any, y_hat: Tensor, y: Tensor) -> Tensor:
    """Mean squared error between the synthesized and the content features."""
    return B.mean(B.square(y_hat - y))


def gram(B: Any, x: Tensor) -> Tensor:
    """Gram matrix of an NCHW feature map, normalised by its number of elements."""
    shape = B.shape(x)
    channels = shape[1]
    n = 1
    for dim in shape:
        n *= dim
    n //= channels
    features = B.reshape(x, (channels, n))
    return B.gram_product(features) / (channels * n)


def style_loss(B: Any, y_hat: Tensor, gram_y: Tensor) -> Tensor:
    """Mean squared error between the Gram matrix of ``y_hat`` and a target Gram matrix."""
    return B.mean(B.square(gram(B, y_hat) - gram_y))


def tv_loss(B: Any, x: Tensor) -> Tensor:
    """Total variation: half the sum of the mean absolute vertical and horizontal differences."""
    vertical = B.mean(B.abs(x[:, :, 1:, :] - x[:, :, :-1, :]))
    horizontal = B.mean(B.abs(x[:, :, :, 1:] - x[:, :, :, :-1]))
    return 0.5 * (vertical + horizontal)
