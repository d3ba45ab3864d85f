"""A NumPy float64 reference for what the backends compute.

Plain on purpose: a convolution as one matrix product over the nine kernel
offsets, ReLU, 2x2 max-pool, and the losses as their formulas.  The
backends are checked against it at small sizes.
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from multistyle.vgg import LAYER_BY_NAME, LAYERS, Weights


def conv3x3(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Same-padded 3x3 convolution of an NCHW array with OIHW weights: the nine shifted copies of the input
    stacked (channel, offset) as the weights are laid out, then one matrix product (NumPy's BLAS; a plain
    einsum over the offsets took 3-5x longer, 0.25 s a VGG-19 pass at 16x16 under numpy 1.23)."""
    n, c, h, width = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    shifted = np.stack([padded[:, :, dy:dy + h, dx:dx + width] for dy in range(3) for dx in range(3)], axis=2)
    out = np.matmul(w.reshape(w.shape[0], c * 9), shifted.reshape(n, c * 9, h * width))
    return out.reshape(n, w.shape[0], h, width) + b[None, :, None, None]


def max_pool(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    h2, w2 = h // 2, w // 2
    return x[:, :, :h2 * 2, :w2 * 2].reshape(n, c, h2, 2, w2, 2).max(axis=(3, 5))


def avg_pool(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    h2, w2 = h // 2, w // 2
    return x[:, :, :h2 * 2, :w2 * 2].reshape(n, c, h2, 2, w2, 2).mean(axis=(3, 5))


def features(x: np.ndarray, weights: Weights, names: Sequence[str], pooling: str = "max") -> Dict[str, np.ndarray]:
    """Outputs of the named VGG-19 layers, in float64."""
    last = max(LAYER_BY_NAME[name].index for name in names)
    wanted = {LAYER_BY_NAME[name].index: name for name in names}
    out = {}
    x = np.asarray(x, dtype=np.float64)
    for spec in LAYERS[: last + 1]:
        if spec.kind == "conv":
            w, b = weights[spec.index]
            x = conv3x3(x, w.astype(np.float64), b.astype(np.float64))
        elif spec.kind == "relu":
            x = np.maximum(x, 0.0)
        else:
            x = max_pool(x) if pooling == "max" else avg_pool(x)
        if spec.index in wanted:
            out[wanted[spec.index]] = x
    return out


def gram(x: np.ndarray) -> np.ndarray:
    c = x.shape[1]
    f = x.reshape(c, -1)
    return f @ f.T / f.size


def content_loss(y_hat: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((y_hat - y) ** 2))


def style_loss(y_hat: np.ndarray, gram_y: np.ndarray) -> float:
    return float(np.mean((gram(y_hat) - gram_y) ** 2))


def _positions(x: np.ndarray, p: "np.ndarray | None") -> np.ndarray:
    """Position weights summing to 1: ``p`` (a mask at the map's size, normalised), or ``1/n`` each."""
    n = x.shape[2] * x.shape[3]
    return np.full(n, 1.0 / n) if p is None else np.asarray(p, np.float64).reshape(-1) / np.sum(p)


def channel_moments(x: np.ndarray, p: "np.ndarray | None" = None) -> "tuple[np.ndarray, np.ndarray]":
    """The per-channel means ``(c,)`` and the raw second moment ``X diag(p) Xᵀ`` ``(c, c)`` of an NCHW map, each
    position weighted by ``p`` (default ``1/n``)."""
    f = x.astype(np.float64).reshape(x.shape[1], -1)
    weights = _positions(x, p)
    return f @ weights, (f * weights) @ f.T


def masked_style_loss(y_hat: np.ndarray, gram_y: np.ndarray, p: np.ndarray) -> float:
    """Gram's style loss over the positions ``p`` weights: ``X diag(p) Xᵀ / c`` against the target."""
    return float(np.mean((channel_moments(y_hat, p)[1] / y_hat.shape[1] - gram_y) ** 2))


def mean_std_loss(y_hat: np.ndarray, mean: np.ndarray, second: np.ndarray, eps: float = 1e-5,
                  p: "np.ndarray | None" = None) -> float:
    """MSE of the per-channel means plus MSE of the standard deviations; the target as means and the diagonal
    of the raw second moment (``second``: the ``(c,)`` diagonal)."""
    m, s = channel_moments(y_hat, p)
    std = np.sqrt(np.maximum(np.diag(s) - m * m, 0) + eps)
    target_std = np.sqrt(np.maximum(second - mean * mean, 0) + eps)
    return float(np.mean((m - mean) ** 2) + np.mean((std - target_std) ** 2))


def sqrtm_psd(a: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((a + a.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def w2_loss(y_hat: np.ndarray, mean: np.ndarray, second: np.ndarray, shift: float = 1e-6,
            p: "np.ndarray | None" = None) -> float:
    """Squared Wasserstein-2 distance between the Gaussian fits, over the channels, with multistyle's root:
    each eigenvalue ``λ`` of ``Σ_s^½ Σ Σ_s^½`` counts ``√(λ + ε)``, ``ε = shift · ‖Σ_s^½ Σ Σ_s^½‖_F``
    (``shift=0``: the exact distance).  The eigenvalues are the squared singular values of ``Σ_s^½ X_c / √n``
    (``Σ = X_c X_cᵀ / n``): smooth where the matrix is singular, where the square roots of eigenvalues that
    rounding leaves at ±1e-16 would add 1e-8 of noise."""
    m, s = channel_moments(y_hat, p)
    weights = _positions(y_hat, p)
    f = y_hat.astype(np.float64).reshape(y_hat.shape[1], -1)
    centred = f - m[:, None]
    target_sigma = second - np.outer(mean, mean)
    root = sqrtm_psd(target_sigma)
    singular = np.linalg.svd(root @ (centred * np.sqrt(weights)), compute_uv=False)
    epsilon = shift * np.sqrt(np.sum(singular ** 4))
    size = min(f.shape)  # the eigenvalues of the smaller of the c x c and n x n forms, the zero ones included
    padded = np.concatenate([singular, np.zeros(size - len(singular))])
    cross = np.sum(np.sqrt(padded ** 2 + epsilon))
    trace_sigma = np.sum(centred ** 2 * weights)
    return float((np.sum((m - mean) ** 2) + trace_sigma + np.trace(target_sigma) - 2 * cross) / len(m))


def patches(x: np.ndarray, size: int = 3, stride: int = 2) -> np.ndarray:
    """Every ``size`` x ``size`` patch of an NCHW map (batch of one) whose top-left corner is on the ``stride``
    grid, flattened, one per row, in row order."""
    _, _, h, w = x.shape
    return np.array([x[0, :, r:r + size, c:c + size].ravel() for r in range(0, h - size + 1, stride)
                     for c in range(0, w - size + 1, stride)], np.float64)


def mrf_loss(y_hat: np.ndarray, style: np.ndarray, p: "np.ndarray | None" = None, size: int = 3,
             stride: int = 2) -> float:
    """Li & Wand's MRF loss: each patch of ``y_hat`` against the style patch of largest normalised
    cross-correlation, the squared distance over the patch's elements, averaged over the patches (weighted by
    the share of the ``(h, w)`` mask ``p`` each patch covers)."""
    mine, theirs = patches(y_hat.astype(np.float64), size, stride), patches(style.astype(np.float64), size, stride)
    nearest = np.argmax(mine @ (theirs / np.linalg.norm(theirs, axis=1, keepdims=True)).T, axis=1)
    distance = np.sum((mine - theirs[nearest]) ** 2, axis=1) / mine.shape[1]
    if p is None:
        return float(distance.mean())
    shares = patches(np.asarray(p, np.float64)[None, None], size, stride).sum(axis=1)
    return float(np.sum(distance * shares) / shares.sum())


def numeric_gradient(fn, x: np.ndarray, step: float = 1e-5) -> np.ndarray:
    """Central differences of a float64 function of an array."""
    x = x.astype(np.float64)
    grad = np.zeros_like(x)
    for index in np.ndindex(*x.shape):
        saved = x[index]
        x[index] = saved + step
        up = fn(x)
        x[index] = saved - step
        down = fn(x)
        x[index] = saved
        grad[index] = (up - down) / (2 * step)
    return grad


def tv_loss(x: np.ndarray) -> float:
    return 0.5 * float(np.abs(x[:, :, 1:, :] - x[:, :, :-1, :]).mean() + np.abs(x[:, :, :, 1:] - x[:, :, :, :-1]).mean())


def tv_smoothed_gradient(x: np.ndarray, smoothing: float) -> np.ndarray:
    """The gradient of ``0.5 (mean sqrt(dv² + s²) + mean sqrt(dh² + s²))``: each difference's slope d / sqrt(d² + s²)."""
    x = x.astype(np.float64)
    grad = np.zeros_like(x)
    for axis in (2, 3):
        d = np.diff(x, axis=axis)
        slope = 0.5 * d / np.sqrt(d * d + smoothing * smoothing) / d.size
        later, earlier = [(0, 0)] * 4, [(0, 0)] * 4
        later[axis], earlier[axis] = (1, 0), (0, 1)
        grad += np.pad(slope, later) - np.pad(slope, earlier)  # d = x[i+1] - x[i]: +slope at i+1, -slope at i
    return grad


def adam(params: np.ndarray, grads: Sequence[np.ndarray], lrs: Sequence[float],
         beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
    """PyTorch-style Adam (epsilon after the bias correction); yields params after each step."""
    p = np.asarray(params, dtype=np.float64).copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        yield p.copy()


def rmsprop(params: np.ndarray, grads: Sequence[np.ndarray], lrs: Sequence[float],
            alpha: float = 0.99, eps: float = 1e-8):
    """PyTorch-style RMSprop (epsilon outside the square root); yields params after each step."""
    p = np.asarray(params, dtype=np.float64).copy()
    v = np.zeros_like(p)
    for g, lr in zip(grads, lrs):
        v = alpha * v + (1 - alpha) * g * g
        p = p - lr * g / (np.sqrt(v) + eps)
        yield p.copy()


def lbfgs(x0: np.ndarray, f_and_grad, steps: int, lr: float = 1.0, history: int = 100):
    """Textbook L-BFGS with a fixed step (Nocedal & Wright alg. 7.4/7.5), float64; yields x after each iteration.

    The first step is scaled by ``min(1, 1/|g|_1)``, later steps use ``lr``; a
    curvature pair is kept only when ``y.s > 1e-10``; the initial inverse
    Hessian is ``(y.s / y.y) I`` from the newest pair.
    """
    x = np.asarray(x0, dtype=np.float64).ravel().copy()
    pairs = []  # (s, y, 1 / y.s)
    gamma, previous = 1.0, None
    for k in range(steps):
        _, g = f_and_grad(x)
        if previous is not None:
            s, y = previous[0], g - previous[1]
            if y @ s > 1e-10:
                pairs = (pairs + [(s, y, 1.0 / (y @ s))])[-history:]
                gamma = (y @ s) / (y @ y)
        q = g.copy()
        alphas = []
        for s, y, rho in reversed(pairs):
            alphas.append(rho * (s @ q))
            q = q - alphas[-1] * y
        r = gamma * q
        for (s, y, rho), a in zip(pairs, reversed(alphas)):
            r = r + s * (a - rho * (y @ r))
        d = -r
        t = min(1.0, 1.0 / np.abs(g).sum()) * lr if k == 0 else lr
        previous = (t * d, g)
        x = x + t * d
        yield x.copy()


def conv_reflect(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int) -> np.ndarray:
    """A k x k convolution (OIHW weights) after ``k // 2`` pixels of reflection padding, with a stride: the
    style network's convolution, written from its definition (one product per kernel offset)."""
    k = w.shape[2]
    p = k // 2
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode="reflect")
    h = (padded.shape[2] - k) // stride + 1
    width = (padded.shape[3] - k) // stride + 1
    out = np.zeros((x.shape[0], w.shape[0], h, width))
    for dy in range(k):
        for dx in range(k):
            window = padded[:, :, dy:dy + stride * (h - 1) + 1:stride, dx:dx + stride * (width - 1) + 1:stride]
            out += np.einsum("oc,nchw->nohw", w[:, :, dy, dx], window)
    return out + b[None, :, None, None]


def instance_norm(x: np.ndarray, scale: np.ndarray, shift: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    mean = x.mean(axis=(2, 3), keepdims=True)
    variance = x.var(axis=(2, 3), keepdims=True)
    return (x - mean) / np.sqrt(variance + eps) * scale[None, :, None, None] + shift[None, :, None, None]


def style_network(x: np.ndarray, params: Dict[str, np.ndarray]) -> np.ndarray:
    """Johnson et al.'s network as PyTorch's examples write it (``TransformerNet``), spelled out layer by layer."""
    p = {name: value.astype(np.float64) for name, value in params.items()}

    def layer(x, name, stride=1, norm=None, relu=True, upsample=False):
        if upsample:
            x = x.repeat(2, axis=2).repeat(2, axis=3)
        x = conv_reflect(x, p[f"{name}.conv2d.weight"], p[f"{name}.conv2d.bias"], stride)
        if norm:
            x = instance_norm(x, p[f"{norm}.weight"], p[f"{norm}.bias"])
        return np.maximum(x, 0) if relu else x

    y = layer(x.astype(np.float64), "conv1", norm="in1")
    y = layer(y, "conv2", 2, norm="in2")
    y = layer(y, "conv3", 2, norm="in3")
    for block in range(1, 6):
        inner = layer(y, f"res{block}.conv1", norm=f"res{block}.in1")
        y = y + layer(inner, f"res{block}.conv2", norm=f"res{block}.in2", relu=False)
    y = layer(y, "deconv1", norm="in4", upsample=True)
    y = layer(y, "deconv2", norm="in5", upsample=True)
    return layer(y, "deconv3", relu=False)


# -- AdaIN (Huang & Belongie 2017), as the public PyTorch port lays its two nn.Sequential files out ------------
#: vgg_normalised.pth's convolutions up to relu4_1 by module index, with the layer each feeds; "M" a ceil-mode pool.
ADAIN_ENCODER = (2, 5, "M", 9, 12, "M", 16, 19, 22, 25, "M", 29)
ADAIN_ENCODER_OUTPUTS = {2: "relu1_1", 9: "relu2_1", 16: "relu3_1", 29: "relu4_1"}
#: decoder.pth's convolutions by module index; "U" a nearest x2 upsampling; no ReLU after the last.
ADAIN_DECODER = (1, "U", 5, 8, 11, 14, "U", 18, 21, "U", 25, 28)


def max_pool_ceil(x: np.ndarray) -> np.ndarray:
    """2x2 max pooling, stride 2, ceil mode: an odd last row or column is a window of its own."""
    n, c, h, w = x.shape
    padded = np.full((n, c, h + h % 2, w + w % 2), -np.inf)
    padded[:, :, :h, :w] = x
    return padded.reshape(n, c, padded.shape[2] // 2, 2, padded.shape[3] // 2, 2).max(axis=(3, 5))


def adain_encoder(x: np.ndarray, params: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The normalised VGG-19 to relu4_1 (``encoder.N.*`` parameters), float64: relu1_1..relu4_1."""
    p = {name: value.astype(np.float64) for name, value in params.items()}
    y = np.einsum("oc,nchw->nohw", p["encoder.0.weight"][:, :, 0, 0], x.astype(np.float64))
    y = y + p["encoder.0.bias"][None, :, None, None]
    out = {}
    for step in ADAIN_ENCODER:
        if step == "M":
            y = max_pool_ceil(y)
            continue
        y = np.maximum(conv_reflect(y, p[f"encoder.{step}.weight"], p[f"encoder.{step}.bias"], 1), 0)
        if step in ADAIN_ENCODER_OUTPUTS:
            out[ADAIN_ENCODER_OUTPUTS[step]] = y
    return out


def adain_decoder(t: np.ndarray, params: Dict[str, np.ndarray]) -> np.ndarray:
    """The decoder (``decoder.N.*`` parameters), float64."""
    p = {name: value.astype(np.float64) for name, value in params.items()}
    y = t.astype(np.float64)
    for step in ADAIN_DECODER:
        if step == "U":
            y = y.repeat(2, axis=2).repeat(2, axis=3)
            continue
        y = conv_reflect(y, p[f"decoder.{step}.weight"], p[f"decoder.{step}.bias"], 1)
        if step != 28:
            y = np.maximum(y, 0)
    return y


def calc_mean_std(x: np.ndarray, eps: float = 1e-5) -> "tuple[np.ndarray, np.ndarray]":
    """The port's per-image, per-channel mean and sqrt(unbiased variance + eps), ``(N, C, 1, 1)`` each."""
    flat = x.astype(np.float64).reshape(x.shape[0], x.shape[1], -1)
    mean = flat.mean(axis=2)
    std = np.sqrt(flat.var(axis=2, ddof=1) + eps)
    return mean[:, :, None, None], std[:, :, None, None]


def adain(content: np.ndarray, style: np.ndarray) -> np.ndarray:
    """Adaptive instance normalisation, float64: the content's statistics swapped for the style's."""
    c_mean, c_std = calc_mean_std(content)
    s_mean, s_std = calc_mean_std(style)
    return (content - c_mean) / c_std * s_std + s_mean
