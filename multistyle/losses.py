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
    shifted so that float32 cannot make it diverge (:func:`sqrtm`);
  - ``mrf``: Li & Wand's (2016) Markov random field loss: each 3x3 patch of the picture's features (stride 2,
    as their CNNMRF code) is pulled toward its nearest 3x3 patch of the style's features by normalised
    cross-correlation; the mean squared distance to it (:class:`MRFTarget`, :func:`mrf_term`).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

Tensor = Any

STYLE_LOSSES = ("gram", "mean-std", "w2", "mrf")
NEWTON_SCHULZ_STEPS = 20  # iterations of the matrix square root (see :func:`sqrtm`)
SQRTM_SHIFT = 1e-6  # the square root's shift, relative to the matrix's Frobenius norm (see :func:`sqrtm`)
STD_EPSILON = 1e-5  # added to the variance before its square root: a constant channel's std has a gradient
MRF_PATCH = 3  # the side of an MRF patch, in feature positions (Li & Wand 2016)
MRF_STRIDE = 2  # the step between two MRF patches, the picture's and the style's (CNNMRF's code; the paper's is 1)


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
          shift: Optional[float] = None) -> Tensor:
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
    shift = SQRTM_SHIFT if shift is None else shift  # read at each call: maths.py measures it at 0
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
    if kind == "mrf":  # the map itself: its patches are taken on the host (:class:`MRFTarget`)
        return (x,)
    return w2_statistics(B, x, channels_last)


def style_target(B: Any, kind: str, statistics: Tuple[Tensor, ...], channels_last: bool = False) -> Any:
    """The target of one layer from blended statistics, in the form :func:`style_term` reads."""
    if kind == "gram":
        return statistics[0]
    if kind == "mean-std":
        return statistics
    if kind == "mrf":
        return MRFTarget(B, [B.to_numpy(statistics[0])], channels_last=channels_last)
    return W2Target(B, B.to_numpy(statistics[0]), B.to_numpy(statistics[1]))


def style_term(B: Any, kind: str, y_hat: Tensor, target: Any, channels_last: bool = False) -> Tensor:
    """The style loss ``kind`` of one layer's features against its target."""
    if kind == "gram":
        return style_loss(B, y_hat, target, channels_last)
    if kind == "mean-std":
        return mean_std_loss(B, y_hat, target, channels_last)
    if kind == "mrf":
        return mrf_term(B, y_hat, target, None, channels_last)
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
    if kind == "mrf":
        return mrf_term(B, y_hat, target, p, channels_last)
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


# -- MRF (Li & Wand 2016): each patch of the picture against its nearest patch of the style -----------------------
#
# With ``Ψ_i`` the picture's patches (``MRF_PATCH`` x ``MRF_PATCH`` positions of all channels, every ``MRF_STRIDE``
# positions) and ``S_j`` the style's, the nearest style patch of ``Ψ_i`` is ``j* = argmax_j <Ψ_i, S_j> / |S_j|``
# (normalised cross-correlation: ``|Ψ_i|`` does not change which ``j`` wins), and the term is
# ``Σ_i q_i |Ψ_i − S_j*|² / (c·k²)``, ``q_i = 1/P`` for ``P`` patches (a mask's share of each patch, with
# --content-masks).  Written as ``Σ_i q_i (|Ψ_i|² − 2 <Ψ_i, S_j*> + |S_j*|²)``, every ``<Ψ_i, S_j>`` is one
# convolution of the picture's features with the style's patches as filters, ``|Ψ_i|²`` sums the squared features
# weighted by how much of each patch covers each position, and ``j*`` is :meth:`Backend.argmax_one_hot` of the
# correlations, a constant of the step: no patch matrix is built and the gradient is the convolution's own.


def feature_patches(features: np.ndarray, channels_last: bool = False) -> np.ndarray:
    """The ``MRF_PATCH`` x ``MRF_PATCH`` patches of one feature map (NumPy, batch of one), every ``MRF_STRIDE``
    positions, as ``(patches, c, k, k)`` filters in row order of their top-left corners."""
    maps = np.asarray(features)[0]
    if channels_last:
        maps = np.transpose(maps, (2, 0, 1))
    windows = np.lib.stride_tricks.sliding_window_view(maps, (MRF_PATCH, MRF_PATCH), axis=(1, 2))
    windows = windows[:, ::MRF_STRIDE, ::MRF_STRIDE]  # (c, rows, cols, k, k)
    return np.ascontiguousarray(np.transpose(windows, (1, 2, 0, 3, 4)).reshape(-1, maps.shape[0], MRF_PATCH,
                                                                              MRF_PATCH))


def patch_grid(h: int, w: int) -> Tuple[int, int]:
    """How many patches fit down and across a ``h`` x ``w`` map."""
    return max(0, (h - MRF_PATCH) // MRF_STRIDE + 1), max(0, (w - MRF_PATCH) // MRF_STRIDE + 1)


def patch_shares(p: Optional[np.ndarray], h: int, w: int) -> np.ndarray:
    """Each patch's weight ``q`` (``rows x cols``, summing to 1): equal, or the mask's ``p`` (``h·w`` position
    weights) summed over the patch, so that a patch half in the region counts half."""
    rows, cols = patch_grid(h, w)
    if p is None:
        return np.full((rows, cols), 1.0 / (rows * cols))
    windows = np.lib.stride_tricks.sliding_window_view(np.asarray(p, np.float64).reshape(h, w),
                                                       (MRF_PATCH, MRF_PATCH))[::MRF_STRIDE, ::MRF_STRIDE]
    shares = windows.sum(axis=(2, 3))
    total = shares.sum()
    return shares / total if total > 0 else shares


def _coverage(q: np.ndarray, h: int, w: int) -> np.ndarray:
    """``Σ_i q_i`` over the patches ``i`` that cover each position of a ``h`` x ``w`` map."""
    cover = np.zeros((h, w))
    for dy in range(MRF_PATCH):
        for dx in range(MRF_PATCH):
            cover[dy:dy + MRF_STRIDE * q.shape[0]:MRF_STRIDE, dx:dx + MRF_STRIDE * q.shape[1]:MRF_STRIDE] += q
    return cover


class MRFTarget:
    """An ``mrf`` style target: the style's patches as convolution filters, with their norms.

    ``maps``: one feature map of the layer per style (NumPy, the losses' layout).  Blended styles pool their
    patches: with ``shares``, each style keeps a share of the pool in proportion to its weight (the style with
    the fewest patches per unit of weight keeps all of its own, the others an evenly spaced subset), so that a weight
    says how much of the style the picture can draw on."""

    def __init__(self, B: Any, maps: Sequence[np.ndarray], shares: Optional[Sequence[float]] = None,
                 channels_last: bool = False) -> None:
        sets = [feature_patches(m, channels_last) for m in maps]
        if shares is not None and len(sets) > 1:
            scale = min(len(s) / share for s, share in zip(sets, shares) if share > 0)
            sets = [s[np.unique(np.linspace(0, len(s) - 1, max(1, round(scale * share))).round().astype(int))]
                    for s, share in zip(sets, shares) if share > 0]
        patches = np.concatenate(sets).astype(np.float64)
        norms = np.sqrt(np.square(patches).reshape(len(patches), -1).sum(axis=1))
        self.count = len(patches)
        self.filters = B.asarray(patches.astype(np.float32))
        self.bias = B.asarray(np.zeros(self.count, np.float32))
        self.inverse_norms = B.asarray((1.0 / np.maximum(norms, 1e-8)).reshape(-1, 1).astype(np.float32))
        self.squared_norms = B.asarray(np.square(norms).reshape(-1, 1).astype(np.float32))
        self._constants: Dict[Any, Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]] = {}

    def constants(self, B: Any, p: Optional[np.ndarray], h: int, w: int, channels_last: bool) -> Tuple[Any, Any]:
        """The patches' weights ``q`` as a ``(1, P)`` row and their coverage of the map in its layout: computed
        once per map size and mask, made native at each call (a compiled program's constants belong to it)."""
        key = (h, w, None if p is None else id(p))
        if key not in self._constants:
            q = patch_shares(p, h, w)
            cover = _coverage(q, h, w).reshape((1, h, w, 1) if channels_last else (1, 1, h, w))
            self._constants[key] = (q.reshape(1, -1).astype(np.float32), cover.astype(np.float32),
                                    p)  # p kept alive, so that its id stays its own
        q_row, cover, _ = self._constants[key]
        return B.asarray(q_row), B.asarray(cover)


def mrf_scores(B: Any, y_hat: Tensor, target: MRFTarget, channels_last: bool = False) -> Tuple[Tensor, Tensor]:
    """``<Ψ_i, S_j>`` (one row per style patch, one column per patch of ``y_hat``) and, without a gradient, the
    normalised cross-correlations ``<Ψ_i, S_j> / |S_j|`` whose largest in each column is the nearest patch."""
    layers = y_hat if channels_last else B.into_layers(y_hat)  # the convolution takes the layers' layout
    correlations = B.reshape(B.out_of_layers(B.conv2d(layers, target.filters, target.bias, stride=MRF_STRIDE)),
                             (target.count, -1))
    return correlations, B.stop_gradient(correlations) * target.inverse_norms


def mrf_term(B: Any, y_hat: Tensor, target: MRFTarget, p: Optional[np.ndarray] = None,
             channels_last: bool = False) -> Tensor:
    """Li & Wand's MRF loss of one layer: ``Σ_i q_i |Ψ_i − S_j*|² / (c·k²)`` (see above), ``q_i = 1/P`` or, with a
    mask's position weights ``p``, each patch's share of them (:func:`patch_shares`)."""
    shape = B.shape(y_hat)
    h, w, channels = (shape[1], shape[2], shape[3]) if channels_last else (shape[2], shape[3], shape[1])
    q_row, cover = target.constants(B, p, h, w, channels_last)
    correlations, scores = mrf_scores(B, y_hat, target, channels_last)
    nearest = B.argmax_one_hot(scores)
    distance = (B.sum(B.square(y_hat) * cover) - 2.0 * B.sum(nearest * correlations * q_row)
                + B.sum(nearest * target.squared_norms * q_row))
    return distance / (channels * MRF_PATCH * MRF_PATCH)
