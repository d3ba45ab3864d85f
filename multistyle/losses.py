"""The losses of Gatys et al., written once against the backend protocol.

All functions take the backend ``B`` first and native tensors after it.
Feature maps are NCHW with a batch of one (NHWC where a backend's losses read them so:
:attr:`~multistyle.backend.Backend.features_channels_last`).

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


def gram(B: Any, x: Tensor, channels_last: bool = False) -> Tensor:
    """Gram matrix of an NCHW feature map (NHWC with ``channels_last``), normalised by its number of elements."""
    shape = B.shape(x)
    channels = shape[-1] if channels_last else shape[1]
    n = 1
    for dim in shape:
        n *= dim
    n //= channels
    if channels_last:  # positions by channels: Xᵀ X, the same matrix without transposing the map
        return B.gram_product_columns(B.reshape(x, (n, channels))) / (channels * n)
    return B.gram_product(B.reshape(x, (channels, n))) / (channels * n)


def style_loss(B: Any, y_hat: Tensor, gram_y: Tensor, channels_last: bool = False) -> Tensor:
    """Mean squared error between the Gram matrix of ``y_hat`` and a target Gram matrix."""
    return B.mean(B.square(gram(B, y_hat, channels_last) - gram_y))


def tv_loss(B: Any, x: Tensor, smoothing: Any = 0.0) -> Tensor:
    """Total variation: half the sum of the mean absolute vertical and horizontal differences.

    With ``smoothing`` s > 0 the value is the same, and only the gradient changes: each difference
    Δ is descended as the smooth ``sqrt(Δ² + s²)`` (whose slope ``Δ / sqrt(Δ² + s²)`` goes through 0),
    not as ``|Δ|`` (whose slope jumps from -1 to 1, so that fixed-size steps make neighbouring
    pixels chatter across each other instead of settling).  ``smoothing`` may be a scalar tensor (a
    compiled program's argument); only a plain number 0 turns it off.
    """
    return 0.5 * (_mean_abs(B, x[:, :, 1:, :] - x[:, :, :-1, :], smoothing)
                  + _mean_abs(B, x[:, :, :, 1:] - x[:, :, :, :-1], smoothing))


def _mean_abs(B: Any, d: Tensor, smoothing: Any) -> Tensor:
    if isinstance(smoothing, (int, float)) and not smoothing:
        return B.mean(B.abs(d))
    smooth = B.sqrt(B.square(d) + smoothing * smoothing)
    return B.mean(smooth + B.stop_gradient(B.abs(d) - smooth))  # the value of |d|, the slope of smooth
