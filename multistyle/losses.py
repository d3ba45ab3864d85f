"""The losses of Gatys et al., written once against the backend protocol.

All functions take the backend ``B`` first and native tensors after it.
Feature maps are NCHW with a batch of one (NHWC where a backend's losses read them so:
:attr:`~multistyle.backend.Backend.features_channels_last`).

* content loss: mean squared error between feature maps;
* Gram matrix: ``X Xᵀ / (c·h·w)`` with ``X`` the ``(c, h·w)`` feature matrix;
* style loss: mean squared error between Gram matrices;
* total variation: ``0.5 · (mean|Δ_vertical| + mean|Δ_horizontal|)``;
* the other style losses (``--style-loss``), each from statistics that blend linearly across styles:

  - ``mean-std``: the mean squared error of the per-channel means plus that of the per-channel standard
    deviations (the statistics AdaIN matches), from the per-channel mean and raw second moment;
  - ``w2``: the squared Wasserstein-2 distance between Gaussian fits of the features,
    ``|μ − μ_s|² + tr(Σ + Σ_s − 2 (Σ_s^½ Σ Σ_s^½)^½)``, over the number of channels, from the mean and the
    raw second moment ``X Xᵀ / (h·w)`` (``Σ = M − μ μᵀ``); the square root by Newton–Schulz iterations,
    shifted so that float32 cannot make it diverge (:func:`sqrtm`).
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

Tensor = Any

STYLE_LOSSES = ("gram", "mean-std", "w2")
NEWTON_SCHULZ_STEPS = 20  # iterations of the matrix square root (see :func:`sqrtm`)
SQRTM_SHIFT = 1e-6  # the square root's shift, relative to the matrix's Frobenius norm (see :func:`sqrtm`)
STD_EPSILON = 1e-5  # added to the variance before its square root: a constant channel's std has a gradient


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


def _matrix(B: Any, x: Tensor, channels_last: bool) -> Tuple[Tensor, int, int]:
    """The feature matrix of a map: ``(c, n)`` from NCHW, ``(n, c)`` from NHWC (``channels_last``)."""
    shape = B.shape(x)
    channels = shape[-1] if channels_last else shape[1]
    n = 1
    for dim in shape:
        n *= dim
    n //= channels
    return B.reshape(x, (n, channels) if channels_last else (channels, n)), channels, n


def _channel_means(B: Any, matrix: Tensor, n: int, channels_last: bool) -> Tensor:
    """Per-channel means of a feature matrix, as a ``(1, c)`` row, by a product with ``1/n``."""
    if channels_last:
        return B.matmul(B.asarray(np.full((1, n), 1.0 / n, np.float32)), matrix)
    return B.transpose(B.matmul(matrix, B.asarray(np.full((n, 1), 1.0 / n, np.float32))))


def mean_std_statistics(B: Any, x: Tensor, channels_last: bool = False) -> Tuple[Tensor, Tensor]:
    """The per-channel mean and raw second moment of a map, two ``(1, c)`` rows: what ``mean-std`` blends."""
    matrix, _, n = _matrix(B, x, channels_last)
    return _channel_means(B, matrix, n, channels_last), _channel_means(B, B.square(matrix), n, channels_last)


def _std(B: Any, mean: Tensor, second: Tensor) -> Tensor:
    """Per-channel standard deviations from the mean and raw second moment (a variance that rounding makes
    slightly negative counts as 0)."""
    variance = second - B.square(mean)
    return B.sqrt((variance + B.abs(variance)) * 0.5 + STD_EPSILON)


def mean_std_loss(B: Any, y_hat: Tensor, target: Tuple[Tensor, Tensor], channels_last: bool = False) -> Tensor:
    """Mean squared error of the per-channel means plus that of the standard deviations, against the target's
    ``(mean, second moment)`` rows (:func:`mean_std_statistics`, blended)."""
    mean, second = mean_std_statistics(B, y_hat, channels_last)
    target_mean, target_second = target
    return (B.mean(B.square(mean - target_mean))
            + B.mean(B.square(_std(B, mean, second) - _std(B, target_mean, target_second))))


def w2_statistics(B: Any, x: Tensor, channels_last: bool = False) -> Tuple[Tensor, Tensor]:
    """The mean ``(1, c)`` and raw second moment ``X Xᵀ / n`` ``(c, c)`` of a map: what ``w2`` blends."""
    matrix, channels, n = _matrix(B, x, channels_last)
    product = B.gram_product_columns(matrix) if channels_last else B.gram_product(matrix)
    return _channel_means(B, matrix, n, channels_last), product / n


class W2Target:
    """A ``w2`` style target, prepared once in float64: the mean, ``Σ_s^½`` (by eigendecomposition: the
    target is a constant) and ``tr Σ_s``, from the blended mean and raw second moment."""

    def __init__(self, B: Any, mean: np.ndarray, second: np.ndarray) -> None:
        mean = np.asarray(mean, np.float64).reshape(1, -1)
        covariance = np.asarray(second, np.float64) - mean.T @ mean
        covariance = (covariance + covariance.T) / 2
        values, vectors = np.linalg.eigh(covariance)
        root = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
        self.channels = mean.shape[1]
        self.mean = B.asarray(mean.astype(np.float32))
        self.root = B.asarray(root.astype(np.float32))
        self.trace = float(np.trace(covariance))


def trace(B: Any, a: Tensor, identity: Tensor) -> Tensor:
    """The trace of a square matrix (``identity`` the same size)."""
    return B.sum(a * identity)


def sqrtm(B: Any, a: Tensor, identity: Tensor, steps: int = NEWTON_SCHULZ_STEPS,
          shift: float = SQRTM_SHIFT) -> Tensor:
    """``(a + ε I)^½`` for a symmetric positive semi-definite matrix ``a``, ``ε = shift · ‖a‖_F``, by the coupled
    Newton–Schulz iteration (Higham, "Functions of Matrices", 2008, eq. 6.35): matrix products only, so every
    backend differentiates it as it does the rest.  Each eigenvalue ``λ`` becomes ``√(λ + ε)``: within
    ``ε / (2√λ)`` of ``√λ`` for the large ones, ``√ε`` (at most 1e-3 ``√‖a‖``) for a zero one.

    Why the shift: ``a`` is divided by its Frobenius norm, which puts its eigenvalues in [0, 1], where an
    eigenvalue ``λ`` needs about ``log(1/√λ) / log 1.5`` steps before it converges.  In float32 a product
    ``A Aᵀ`` leaves the zero eigenvalues of a singular matrix at about ±1e-7 of its norm, and the iteration
    multiplies a negative one by 2.25 a step: unshifted, 20 steps diverged on a VGG layer of 64 channels with
    51 eigenvalues under 1e-6 (JAX's term came out 3.95 for 2.00), and 12 steps (crowsonkb's count) leave
    eigenvalues under 1e-4 unconverged, whose gradients then differ between backends.  Shifted by 1e-6 every
    eigenvalue is above the rounding and converges within 17 steps."""
    norm = B.sqrt(B.sum(B.square(a))) + 1e-30
    y, z = a / norm + shift * identity, identity
    for _ in range(steps):
        t = (3.0 * identity - B.matmul(z, y)) * 0.5
        y, z = B.matmul(y, t), B.matmul(t, z)
    return y * B.sqrt(norm)


def w2_loss(B: Any, y_hat: Tensor, target: W2Target, channels_last: bool = False) -> Tensor:
    """The squared Wasserstein-2 distance between Gaussian fits of ``y_hat``'s features and the target's,
    ``|μ − μ_s|² + tr Σ + tr Σ_s − 2 tr (Σ_s^½ Σ Σ_s^½)^½``, divided by the number of channels; the last root
    is :func:`sqrtm`'s, each eigenvalue ``λ`` of ``Σ_s^½ Σ Σ_s^½`` counts ``√(λ + ε)``, ``ε`` 1e-6 of the matrix's Frobenius
    norm, so that a feature map against its own statistics gives about 0 where its covariance has full rank,
    and slightly less than 0 where it has not.

    With ``A = Σ_s^½ X_c`` (``X_c`` the centred features, ``c × n``), ``Σ_s^½ Σ Σ_s^½ = A Aᵀ / n``, whose
    non-zero eigenvalues are those of ``Aᵀ A / n``: the square root is taken of the smaller of the two, ``n × n``
    where the layer has fewer positions than channels (a deep layer of a small image)."""
    matrix, channels, n = _matrix(B, y_hat, channels_last)
    mean = _channel_means(B, matrix, n, channels_last)
    if channels_last:  # (n, c)
        centred = matrix - mean
        a = B.matmul(centred, target.root)
        inner = B.gram_product(a) if n < channels else B.gram_product_columns(a)
    else:  # (c, n)
        centred = matrix - B.transpose(mean)
        a = B.matmul(target.root, centred)
        inner = B.gram_product_columns(a) if n < channels else B.gram_product(a)
    identity = B.asarray(np.eye(min(n, channels), dtype=np.float32))
    distance = (B.sum(B.square(mean - target.mean)) + B.sum(B.square(centred)) / n + target.trace
                - 2.0 * trace(B, sqrtm(B, inner / n, identity), identity))
    return distance / channels


def style_statistics(B: Any, kind: str, x: Tensor, channels_last: bool = False) -> Tuple[Tensor, ...]:
    """A style image's statistics of one layer for the style loss ``kind``: tensors that blend linearly."""
    if kind == "gram":
        return (gram(B, x, channels_last),)
    if kind == "mean-std":
        return mean_std_statistics(B, x, channels_last)
    return w2_statistics(B, x, channels_last)


def style_target(B: Any, kind: str, statistics: Tuple[Tensor, ...]) -> Any:
    """The target of one layer from blended statistics, in the form :func:`style_term` reads."""
    if kind == "gram":
        return statistics[0]
    if kind == "mean-std":
        return statistics
    return W2Target(B, B.to_numpy(statistics[0]), B.to_numpy(statistics[1]))


def style_term(B: Any, kind: str, y_hat: Tensor, target: Any, channels_last: bool = False) -> Tensor:
    """The style loss ``kind`` of one layer's features against its target."""
    if kind == "gram":
        return style_loss(B, y_hat, target, channels_last)
    if kind == "mean-std":
        return mean_std_loss(B, y_hat, target, channels_last)
    return w2_loss(B, y_hat, target, channels_last)
