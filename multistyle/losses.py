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
    matrix, channels, n = _matrix(B, x, channels_last)
    if channels_last:  # positions by channels: Xᵀ X, the same matrix without transposing the map
        return B.gram_product_columns(matrix) / (channels * n)
    return B.gram_product(matrix) / (channels * n)


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


def _uniform(n: int) -> np.ndarray:
    """Every position weighted alike: ``1/n`` each."""
    return np.full(n, 1.0 / n, np.float32)


def mean_std_statistics(B: Any, x: Tensor, channels_last: bool = False) -> Tuple[Tensor, Tensor]:
    """The per-channel mean and raw second moment of a map, two ``(1, c)`` rows: what ``mean-std`` blends."""
    return masked_statistics(B, "mean-std", x, _uniform(_matrix(B, x, channels_last)[2]), channels_last)


def _std(B: Any, mean: Tensor, second: Tensor) -> Tensor:
    """Per-channel standard deviations from the mean and raw second moment (a variance that rounding makes
    slightly negative counts as 0)."""
    variance = second - B.square(mean)
    return B.sqrt((variance + B.abs(variance)) * 0.5 + STD_EPSILON)


def mean_std_loss(B: Any, y_hat: Tensor, target: Tuple[Tensor, Tensor], channels_last: bool = False) -> Tensor:
    """Mean squared error of the per-channel means plus that of the standard deviations, against the target's
    ``(mean, second moment)`` rows (:func:`mean_std_statistics`, blended)."""
    return masked_style_term(B, "mean-std", y_hat, target, _uniform(_matrix(B, y_hat, channels_last)[2]),
                             channels_last)


def w2_statistics(B: Any, x: Tensor, channels_last: bool = False) -> Tuple[Tensor, Tensor]:
    """The mean ``(1, c)`` and raw second moment ``X Xᵀ / n`` ``(c, c)`` of a map: what ``w2`` blends."""
    return masked_statistics(B, "w2", x, _uniform(_matrix(B, x, channels_last)[2]), channels_last)


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
    # 1e-12 under the root: a zero matrix (a one-position region of a mask at a deep layer) keeps a finite
    # gradient, where the norm's own is 0/0
    norm = B.sqrt(B.sum(B.square(a)) + 1e-12)
    y, z = a / norm + shift * identity, identity
    for _ in range(steps):
        t = (3.0 * identity - B.matmul(z, y)) * 0.5
        y, z = B.matmul(y, t), B.matmul(t, z)
    return y * B.sqrt(norm)


def w2_loss(B: Any, y_hat: Tensor, target: W2Target, channels_last: bool = False) -> Tensor:
    """The squared Wasserstein-2 distance between Gaussian fits of ``y_hat``'s features and the target's,
    ``|μ − μ_s|² + tr Σ + tr Σ_s − 2 tr (Σ_s^½ Σ Σ_s^½)^½``, divided by the number of channels.  The last root
    is :func:`sqrtm`'s: each eigenvalue ``λ`` of ``Σ_s^½ Σ Σ_s^½`` counts ``√(λ + ε)``, ``ε`` 1e-6 of the
    matrix's Frobenius norm, so that a feature map against its own statistics gives about 0 where its
    covariance has full rank, and slightly less than 0 where it has not.

    With ``A = Σ_s^½ X_c`` (``X_c`` the centred features, ``c × n``), ``Σ_s^½ Σ Σ_s^½ = A Aᵀ / n``, whose
    non-zero eigenvalues are those of ``Aᵀ A / n``: the square root is taken of the smaller of the two, ``n × n``
    where the layer has fewer positions than channels (a deep layer of a small image)."""
    return masked_style_term(B, "w2", y_hat, target, _uniform(_matrix(B, y_hat, channels_last)[2]), channels_last)


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


# -- spatial control (--content-masks): each statistic over the positions a mask weights ---------------------------
#
# A region's statistics are those of the picture's features with each position weighted by ``p``, the region's
# mask at the layer's size, divided by its sum (so that ``p`` sums to 1): the Gram matrix ``X diag(p) Xᵀ / c``,
# the mean ``X p`` and the raw second moment ``X diag(p) Xᵀ``.  With ``p = 1/n`` everywhere (an all-white mask)
# they are the unmasked ones.  ``p`` is a constant (a NumPy array, ``n = h·w`` positions in the features' order).


def _position_column(B: Any, p: np.ndarray, channels_last: bool) -> Tuple[Tensor, Tensor]:
    """``p`` and ``√p`` shaped to multiply a feature matrix position by position."""
    shape = (-1, 1) if channels_last else (1, -1)
    p = np.asarray(p, np.float32)
    return B.asarray(p.reshape(shape)), B.asarray(np.sqrt(p).reshape(shape))


def _weighted_means(B: Any, matrix: Tensor, p: np.ndarray, channels_last: bool) -> Tensor:
    """Per-channel weighted means ``X p`` of a feature matrix, as a ``(1, c)`` row."""
    if channels_last:
        return B.matmul(B.asarray(np.asarray(p, np.float32).reshape(1, -1)), matrix)
    return B.transpose(B.matmul(matrix, B.asarray(np.asarray(p, np.float32).reshape(-1, 1))))


def _weighted_product(B: Any, matrix: Tensor, root_p: Tensor, channels_last: bool) -> Tensor:
    """``X diag(p) Xᵀ`` ``(c, c)``."""
    weighted = matrix * root_p
    return B.gram_product_columns(weighted) if channels_last else B.gram_product(weighted)


def masked_statistics(B: Any, kind: str, x: Tensor, p: np.ndarray, channels_last: bool = False) -> Tuple[Tensor, ...]:
    """:func:`style_statistics` of the positions ``p`` weights."""
    matrix, channels, _ = _matrix(B, x, channels_last)
    if kind == "mean-std":
        return (_weighted_means(B, matrix, p, channels_last),
                _weighted_means(B, B.square(matrix), p, channels_last))
    product = _weighted_product(B, matrix, _position_column(B, p, channels_last)[1], channels_last)
    if kind == "gram":
        return (product / channels,)
    return _weighted_means(B, matrix, p, channels_last), product


def masked_style_term(B: Any, kind: str, y_hat: Tensor, target: Any, p: np.ndarray,
                      channels_last: bool = False) -> Tensor:
    """:func:`style_term` of the positions ``p`` weights: the region's statistics against the target."""
    if kind == "gram":
        return B.mean(B.square(masked_statistics(B, kind, y_hat, p, channels_last)[0] - target))
    if kind == "mean-std":
        mean, second = masked_statistics(B, kind, y_hat, p, channels_last)
        target_mean, target_second = target
        return (B.mean(B.square(mean - target_mean))
                + B.mean(B.square(_std(B, mean, second) - _std(B, target_mean, target_second))))
    matrix, channels, n = _matrix(B, y_hat, channels_last)
    mean = _weighted_means(B, matrix, p, channels_last)
    p_column, root_p = _position_column(B, p, channels_last)
    centred = matrix - (mean if channels_last else B.transpose(mean))
    if channels_last:
        a = B.matmul(centred * root_p, target.root)
        inner = B.gram_product(a) if n < channels else B.gram_product_columns(a)
    else:
        a = B.matmul(target.root, centred * root_p)
        inner = B.gram_product_columns(a) if n < channels else B.gram_product(a)
    identity = B.asarray(np.eye(min(n, channels), dtype=np.float32))
    distance = (B.sum(B.square(mean - target.mean)) + B.sum(B.square(centred) * p_column) + target.trace
                - 2.0 * trace(B, sqrtm(B, inner, identity), identity))
    return distance / channels
