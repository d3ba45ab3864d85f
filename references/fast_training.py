"""Plain training loops of Johnson et al.'s style network, one per framework, in that framework's own idiom.

The yardsticks of ``benchmarks/fast_training.py``: what a user of each framework would write by hand for the
step that ``multistyle train`` takes, with nothing of multistyle in between.  Every loop does the same work:

* the network of PyTorch's examples (``fast_neural_style``): reflection-padded convolutions, affine instance
  norms, five residual blocks, nearest x2 upsampling, as each framework spells modules;
* VGG-19's ``features`` up to the deepest layer used, frozen, on the network's output (pixels / 255,
  normalised by ImageNet's mean and std) and on the photos' batch;
* the content loss (mean squared error of features), the style loss per image (mean squared error of Gram
  matrices normalised by ``c·h·w``) averaged over the batch, the total variation, weighted;
* one Adam step (the framework's own: ``torch.optim.Adam``, ``gluon.Trainer('adam')``,
  ``paddle.optimizer.Adam``, ``tf.keras.optimizers.Adam``; for JAX, whose optimizer library optax does not
  import beside ``numpy<1.24``, the update written out and jitted with the step).

Each function returns the seconds of every iteration, the loss read back to the host each time.
"""

from __future__ import annotations

import time
import warnings
from typing import Dict, List, Sequence, Tuple

import numpy as np

Weights = Dict[int, Tuple[np.ndarray, np.ndarray]]
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
# (name, in, out, kernel, stride, upsample, norm, relu) of the network, width 32; residual blocks apart.
HEAD = [("conv1", 3, 32, 9, 1, False, "in1", True), ("conv2", 32, 64, 3, 2, False, "in2", True),
        ("conv3", 64, 128, 3, 2, False, "in3", True)]
TAIL = [("deconv1", 128, 64, 3, 1, True, "in4", True), ("deconv2", 64, 32, 3, 1, True, "in5", True),
        ("deconv3", 32, 3, 9, 1, False, "", False)]


class Job:
    """What every loop trains on: the batches, the style image, the VGG-19 weights and the loss's layers."""

    def __init__(self, batches: Sequence[np.ndarray], style: np.ndarray, weights: Weights, content: Sequence[int],
                 style_layers: Sequence[int], weights3: Tuple[float, float, float], lr: float = 1e-3) -> None:
        self.batches, self.style, self.weights = list(batches), style, weights  # batches: (N, 3, S, S) 0..255
        self.content, self.style_layers = list(content), list(style_layers)
        self.content_weight, self.style_weight, self.tv_weight = weights3
        self.lr = lr
        self.last = max(self.content + self.style_layers)


def _vgg_kinds(last: int) -> List[str]:
    from multistyle.vgg import LAYERS

    return [layer.kind for layer in LAYERS[: last + 1]]


# -- PyTorch ---------------------------------------------------------------------------------------------------
def torch_loop(job: Job, iterations: int) -> List[float]:
    import torch
    from torch import nn

    class ConvLayer(nn.Module):
        def __init__(self, cin, cout, kernel, stride=1, upsample=False):
            super().__init__()
            self.upsample = upsample
            self.pad = nn.ReflectionPad2d(kernel // 2)
            self.conv2d = nn.Conv2d(cin, cout, kernel, stride)

        def forward(self, x):
            if self.upsample:
                x = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
            return self.conv2d(self.pad(x))

    class Residual(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.conv1, self.in1 = ConvLayer(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True)
            self.conv2, self.in2 = ConvLayer(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True)

        def forward(self, x):
            return x + self.in2(self.conv2(torch.relu(self.in1(self.conv1(x)))))

    layers: List[nn.Module] = []
    for _, cin, cout, k, s, up, norm, relu in HEAD:
        layers += [ConvLayer(cin, cout, k, s, up), nn.InstanceNorm2d(cout, affine=True), nn.ReLU()]
    layers += [Residual(128) for _ in range(5)]
    for _, cin, cout, k, s, up, norm, relu in TAIL:
        layers += [ConvLayer(cin, cout, k, s, up)] + ([nn.InstanceNorm2d(cout, affine=True), nn.ReLU()] if norm else [])
    net = nn.Sequential(*layers)
    vgg = _torch_vgg(job)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)

    def features(x):
        out = {}
        for i, layer in enumerate(vgg):
            x = layer(x)
            if i in job.content or i in job.style_layers:
                out[i] = x
        return out

    def gram(f):
        n, c, h, w = f.shape
        f = f.reshape(n, c, h * w)
        return f @ f.transpose(1, 2) / (c * h * w)

    with torch.no_grad():
        style_grams = {i: gram(f) for i, f in features((torch.tensor(job.style) / 255 - mean) / std).items()}
    optimizer = torch.optim.Adam(net.parameters(), lr=job.lr)
    times = []
    for iteration in range(iterations):
        start = time.perf_counter()
        batch = torch.from_numpy(job.batches[iteration % len(job.batches)])
        optimizer.zero_grad()
        y = (net(batch) / 255 - mean) / std
        with torch.no_grad():
            target = features((batch / 255 - mean) / std)
        fy = features(y)
        content = sum(((fy[i] - target[i]) ** 2).mean() for i in job.content)
        style = sum(((gram(fy[i]) - style_grams[i]) ** 2).mean(dim=(1, 2)).mean() for i in job.style_layers)
        tv = 0.5 * ((y[:, :, 1:] - y[:, :, :-1]).abs().mean() + (y[:, :, :, 1:] - y[:, :, :, :-1]).abs().mean())
        loss = job.content_weight * content + job.style_weight * style + job.tv_weight * tv
        loss.backward()
        optimizer.step()
        loss.item()
        times.append(time.perf_counter() - start)
    return times


def _torch_vgg(job: Job):
    import torch
    from torch import nn

    layers: List[nn.Module] = []
    for i, kind in enumerate(_vgg_kinds(job.last)):
        if kind == "conv":
            w, b = job.weights[i]
            conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(w))
                conv.bias.copy_(torch.from_numpy(b))
            layers.append(conv)
        else:
            layers.append(nn.ReLU() if kind == "relu" else nn.MaxPool2d(2))
    vgg = nn.Sequential(*layers).eval()
    vgg.requires_grad_(False)
    return vgg


# -- MXNet Gluon -----------------------------------------------------------------------------------------------
def mxnet_loop(job: Job, iterations: int) -> List[float]:
    import mxnet as mx
    from mxnet import autograd, gluon, nd

    class ConvLayer(gluon.HybridBlock):
        def __init__(self, cin, cout, kernel, stride=1, upsample=False):
            super().__init__()
            self.pad, self.upsample = kernel // 2, upsample
            self.conv2d = gluon.nn.Conv2D(cout, kernel, stride, in_channels=cin)

        def hybrid_forward(self, F, x):
            if self.upsample:
                x = F.UpSampling(x, scale=2, sample_type="nearest")
            return self.conv2d(F.pad(x, mode="reflect", pad_width=(0, 0, 0, 0) + (self.pad,) * 4))

    class Norm(gluon.HybridBlock):
        def __init__(self, channels):
            super().__init__()
            self.norm = gluon.nn.InstanceNorm(in_channels=channels, epsilon=1e-5)

        def hybrid_forward(self, F, x):
            return self.norm(x)

    class Residual(gluon.HybridBlock):
        def __init__(self, channels):
            super().__init__()
            self.conv1, self.in1 = ConvLayer(channels, channels, 3), Norm(channels)
            self.conv2, self.in2 = ConvLayer(channels, channels, 3), Norm(channels)

        def hybrid_forward(self, F, x):
            return x + self.in2(self.conv2(F.relu(self.in1(self.conv1(x)))))

    net = gluon.nn.HybridSequential()
    for _, cin, cout, k, s, up, norm, relu in HEAD:
        net.add(ConvLayer(cin, cout, k, s, up), Norm(cout), gluon.nn.Activation("relu"))
    for _ in range(5):
        net.add(Residual(128))
    for _, cin, cout, k, s, up, norm, relu in TAIL:
        net.add(ConvLayer(cin, cout, k, s, up))
        if norm:
            net.add(Norm(cout), gluon.nn.Activation("relu"))
    net.initialize(mx.init.Xavier(), ctx=mx.cpu())
    vgg = []
    for i, kind in enumerate(_vgg_kinds(job.last)):
        if kind == "conv":
            w, b = job.weights[i]
            conv = gluon.nn.Conv2D(w.shape[0], 3, padding=1, in_channels=w.shape[1])
            conv.initialize(ctx=mx.cpu())
            conv.weight.set_data(nd.array(w))
            conv.bias.set_data(nd.array(b))
            conv.collect_params().setattr("grad_req", "null")
            vgg.append(conv)
        else:
            vgg.append(gluon.nn.Activation("relu") if kind == "relu" else gluon.nn.MaxPool2D(2))
    mean, std = nd.array(MEAN).reshape((1, 3, 1, 1)), nd.array(STD).reshape((1, 3, 1, 1))

    def features(x):
        out = {}
        for i, layer in enumerate(vgg):
            x = layer(x)
            if i in job.content or i in job.style_layers:
                out[i] = x
        return out

    def gram(f):
        n, c, h, w = f.shape
        f = f.reshape((n, c, h * w))
        return nd.batch_dot(f, f, transpose_b=True) / (c * h * w)

    style_grams = {i: gram(f) for i, f in features((nd.array(job.style) / 255 - mean) / std).items()}
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": job.lr})
    times = []
    for iteration in range(iterations):
        start = time.perf_counter()
        batch = nd.array(job.batches[iteration % len(job.batches)])
        target = features((batch / 255 - mean) / std)
        with autograd.record():
            y = (net(batch) / 255 - mean) / std
            fy = features(y)
            content = sum(((fy[i] - target[i]) ** 2).mean() for i in job.content)
            style = sum(((gram(fy[i]) - style_grams[i]) ** 2).mean() for i in job.style_layers)
            tv = 0.5 * ((y[:, :, 1:] - y[:, :, :-1]).abs().mean() + (y[:, :, :, 1:] - y[:, :, :, :-1]).abs().mean())
            loss = job.content_weight * content + job.style_weight * style + job.tv_weight * tv
        loss.backward()
        trainer.step(1)
        loss.asscalar()
        times.append(time.perf_counter() - start)
    return times


# -- PaddlePaddle ----------------------------------------------------------------------------------------------
def paddle_loop(job: Job, iterations: int) -> List[float]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ccache.*")
        import paddle
    from paddle import nn

    class ConvLayer(nn.Layer):
        def __init__(self, cin, cout, kernel, stride=1, upsample=False):
            super().__init__()
            self.upsample = upsample
            self.pad = nn.Pad2D(kernel // 2, mode="reflect")
            self.conv2d = nn.Conv2D(cin, cout, kernel, stride)

        def forward(self, x):
            if self.upsample:
                x = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
            return self.conv2d(self.pad(x))

    class Residual(nn.Layer):
        def __init__(self, channels):
            super().__init__()
            self.conv1, self.in1 = ConvLayer(channels, channels, 3), nn.InstanceNorm2D(channels)
            self.conv2, self.in2 = ConvLayer(channels, channels, 3), nn.InstanceNorm2D(channels)

        def forward(self, x):
            return x + self.in2(self.conv2(nn.functional.relu(self.in1(self.conv1(x)))))

    layers: List[nn.Layer] = []
    for _, cin, cout, k, s, up, norm, relu in HEAD:
        layers += [ConvLayer(cin, cout, k, s, up), nn.InstanceNorm2D(cout), nn.ReLU()]
    layers += [Residual(128) for _ in range(5)]
    for _, cin, cout, k, s, up, norm, relu in TAIL:
        layers += [ConvLayer(cin, cout, k, s, up)] + ([nn.InstanceNorm2D(cout), nn.ReLU()] if norm else [])
    net = nn.Sequential(*layers)
    vgg_layers: List[nn.Layer] = []
    for i, kind in enumerate(_vgg_kinds(job.last)):
        if kind == "conv":
            w, b = job.weights[i]
            conv = nn.Conv2D(w.shape[1], w.shape[0], 3, padding=1)
            conv.weight.set_value(w)
            conv.bias.set_value(b)
            conv.weight.stop_gradient = conv.bias.stop_gradient = True
            vgg_layers.append(conv)
        else:
            vgg_layers.append(nn.ReLU() if kind == "relu" else nn.MaxPool2D(2))
    mean, std = paddle.to_tensor(MEAN).reshape([1, 3, 1, 1]), paddle.to_tensor(STD).reshape([1, 3, 1, 1])

    def features(x):
        out = {}
        for i, layer in enumerate(vgg_layers):
            x = layer(x)
            if i in job.content or i in job.style_layers:
                out[i] = x
        return out

    def gram(f):
        n, c, h, w = f.shape
        f = f.reshape([n, c, h * w])
        return paddle.bmm(f, f.transpose([0, 2, 1])) / (c * h * w)

    with paddle.no_grad():
        style_grams = {i: gram(f) for i, f in features((paddle.to_tensor(job.style) / 255 - mean) / std).items()}
    optimizer = paddle.optimizer.Adam(learning_rate=job.lr, parameters=net.parameters())
    times = []
    for iteration in range(iterations):
        start = time.perf_counter()
        batch = paddle.to_tensor(job.batches[iteration % len(job.batches)])
        y = (net(batch) / 255 - mean) / std
        with paddle.no_grad():
            target = features((batch / 255 - mean) / std)
        fy = features(y)
        content = sum(((fy[i] - target[i]) ** 2).mean() for i in job.content)
        style = sum(((gram(fy[i]) - style_grams[i]) ** 2).mean() for i in job.style_layers)
        tv = 0.5 * ((y[:, :, 1:] - y[:, :, :-1]).abs().mean() + (y[:, :, :, 1:] - y[:, :, :, :-1]).abs().mean())
        loss = job.content_weight * content + job.style_weight * style + job.tv_weight * tv
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        float(loss)
        times.append(time.perf_counter() - start)
    return times


# -- JAX -------------------------------------------------------------------------------------------------------
def jax_loop(job: Job, iterations: int) -> List[float]:
    import jax
    import jax.numpy as jnp
    from jax import lax

    from multistyle.nets import transformer

    params = {k: jnp.asarray(v) for k, v in transformer.init_parameters(32, 0).items()}
    vgg = {i: (jnp.asarray(np.transpose(w, (2, 3, 1, 0))), jnp.asarray(b)) for i, (w, b) in job.weights.items()
           if i <= job.last}
    kinds = _vgg_kinds(job.last)
    nhwc = ("NHWC", "HWIO", "NHWC")

    def conv(x, w, b, stride=1, pad=0):
        if pad:
            x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
        return lax.conv_general_dilated(x, jnp.transpose(w, (2, 3, 1, 0)), (stride, stride), "VALID",
                                        dimension_numbers=nhwc) + b

    def norm(x, w, b):
        mean = x.mean(axis=(1, 2), keepdims=True)
        return (x - mean) * lax.rsqrt(x.var(axis=(1, 2), keepdims=True) + 1e-5) * w + b

    def layer(p, x, name, stride=1, up=False, norm_name="", relu=True):
        if up:
            x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
        k = p[f"{name}.conv2d.weight"].shape[2]
        x = conv(x, p[f"{name}.conv2d.weight"], p[f"{name}.conv2d.bias"], stride, k // 2)
        if norm_name:
            x = norm(x, p[f"{norm_name}.weight"], p[f"{norm_name}.bias"])
        return jax.nn.relu(x) if relu else x

    def network(p, x):
        for name, _, _, _, s, up, n, relu in HEAD:
            x = layer(p, x, name, s, up, n, relu)
        for r in range(1, 6):
            x = x + layer(p, layer(p, x, f"res{r}.conv1", norm_name=f"res{r}.in1"), f"res{r}.conv2",
                          norm_name=f"res{r}.in2", relu=False)
        for name, _, _, _, s, up, n, relu in TAIL:
            x = layer(p, x, name, s, up, n, relu)
        return x

    def features(x):
        out = {}
        for i, kind in enumerate(kinds):
            if kind == "conv":
                w, b = vgg[i]
                x = lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=nhwc) + b
            elif kind == "relu":
                x = jax.nn.relu(x)
            else:
                x = lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
            if i in job.content or i in job.style_layers:
                out[i] = x
        return out

    def gram(f):
        n, h, w, c = f.shape
        f = f.reshape(n, h * w, c)
        return jnp.einsum("npc,npd->ncd", f, f) / (c * h * w)

    def prepare(x):
        return (jnp.transpose(x, (0, 2, 3, 1)) / 255 - MEAN) / STD

    style_grams = {i: gram(f) for i, f in features(prepare(jnp.asarray(job.style))).items()}

    def loss_fn(p, batch):
        x = jnp.transpose(batch, (0, 2, 3, 1))
        y = (network(p, x) / 255 - MEAN) / STD
        target = features((x / 255 - MEAN) / STD)
        fy = features(y)
        content = sum(((fy[i] - lax.stop_gradient(target[i])) ** 2).mean() for i in job.content)
        style = sum(((gram(fy[i]) - style_grams[i]) ** 2).mean() for i in job.style_layers)
        tv = 0.5 * (jnp.abs(y[:, 1:] - y[:, :-1]).mean() + jnp.abs(y[:, :, 1:] - y[:, :, :-1]).mean())
        return job.content_weight * content + job.style_weight * style + job.tv_weight * tv

    @jax.jit
    def step(p, m, v, t, batch):
        loss, g = jax.value_and_grad(loss_fn)(p, batch)
        return (loss, *adam_update(p, m, v, g, t, job.lr))

    m = jax.tree_util.tree_map(jnp.zeros_like, params)
    v = jax.tree_util.tree_map(jnp.zeros_like, params)
    times = []
    for iteration in range(iterations):
        start = time.perf_counter()
        loss, params, m, v = step(params, m, v, float(iteration + 1), jnp.asarray(job.batches[iteration % len(job.batches)]))
        float(loss)
        times.append(time.perf_counter() - start)
    return times


def adam_update(p, m, v, g, t, lr):
    """One Adam update of the parameter tree ``p`` (moments ``m``, ``v``; gradients ``g``; step ``t`` from 1),
    written out as a JAX user without optax writes it, to be jitted with the step: ``(p, m, v)``."""
    import jax
    import jax.numpy as jnp

    m = jax.tree_util.tree_map(lambda m_, g_: 0.9 * m_ + 0.1 * g_, m, g)
    v = jax.tree_util.tree_map(lambda v_, g_: 0.999 * v_ + 0.001 * g_ * g_, v, g)
    c1, c2 = 1 - 0.9 ** t, jnp.sqrt(1 - 0.999 ** t)
    return jax.tree_util.tree_map(lambda p_, m_, v_: p_ - lr / c1 * m_ / (jnp.sqrt(v_) / c2 + 1e-8), p, m, v), m, v


# -- TensorFlow ------------------------------------------------------------------------------------------------
def tensorflow_loop(job: Job, iterations: int) -> List[float]:
    import tensorflow as tf

    class ConvLayer(tf.keras.layers.Layer):
        def __init__(self, cout, kernel, stride=1, upsample=False):
            super().__init__()
            self.pad, self.upsample = kernel // 2, upsample
            self.conv2d = tf.keras.layers.Conv2D(cout, kernel, stride, padding="valid")

        def call(self, x):
            if self.upsample:
                x = tf.repeat(tf.repeat(x, 2, axis=1), 2, axis=2)
            p = self.pad
            return self.conv2d(tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT"))

    class Norm(tf.keras.layers.Layer):
        def build(self, shape):
            self.scale = self.add_weight("scale", shape[-1:], initializer="ones")
            self.shift = self.add_weight("shift", shape[-1:], initializer="zeros")

        def call(self, x):
            mean, variance = tf.nn.moments(x, axes=[1, 2], keepdims=True)
            return tf.nn.batch_normalization(x, mean, variance, self.shift, self.scale, 1e-5)

    class Residual(tf.keras.layers.Layer):
        def __init__(self, channels):
            super().__init__()
            self.conv1, self.in1, self.conv2, self.in2 = ConvLayer(channels, 3), Norm(), ConvLayer(channels, 3), Norm()

        def call(self, x):
            return x + self.in2(self.conv2(tf.nn.relu(self.in1(self.conv1(x)))))

    layers: List[tf.keras.layers.Layer] = []
    for _, cin, cout, k, s, up, norm, relu in HEAD:
        layers += [ConvLayer(cout, k, s, up), Norm(), tf.keras.layers.ReLU()]
    layers += [Residual(128) for _ in range(5)]
    for _, cin, cout, k, s, up, norm, relu in TAIL:
        layers += [ConvLayer(cout, k, s, up)] + ([Norm(), tf.keras.layers.ReLU()] if norm else [])
    net = tf.keras.Sequential(layers)
    net.build((None, None, None, 3))
    kinds = _vgg_kinds(job.last)
    vgg = {i: (tf.constant(np.transpose(w, (2, 3, 1, 0))), tf.constant(b)) for i, (w, b) in job.weights.items()
           if i <= job.last}

    def features(x):
        out = {}
        for i, kind in enumerate(kinds):
            if kind == "conv":
                x = tf.nn.bias_add(tf.nn.conv2d(x, vgg[i][0], 1, "SAME"), vgg[i][1])
            elif kind == "relu":
                x = tf.nn.relu(x)
            else:
                x = tf.nn.max_pool2d(x, 2, 2, "VALID")
            if i in job.content or i in job.style_layers:
                out[i] = x
        return out

    def gram(f):
        shape = tf.shape(f)
        n, h, w, c = shape[0], shape[1], shape[2], shape[3]
        f = tf.reshape(f, [n, h * w, c])
        return tf.matmul(f, f, transpose_a=True) / tf.cast(c * h * w, tf.float32)

    def prepare(x):
        return (tf.transpose(x, (0, 2, 3, 1)) / 255 - MEAN) / STD

    style_grams = {i: gram(f) for i, f in features(prepare(tf.constant(job.style))).items()}
    optimizer = tf.keras.optimizers.Adam(learning_rate=job.lr)

    @tf.function
    def step(batch):
        x = tf.transpose(batch, (0, 2, 3, 1))
        target = features((x / 255 - MEAN) / STD)
        with tf.GradientTape() as tape:
            y = (net(x) / 255 - MEAN) / STD
            fy = features(y)
            content = tf.add_n([tf.reduce_mean((fy[i] - target[i]) ** 2) for i in job.content])
            style = tf.add_n([tf.reduce_mean((gram(fy[i]) - style_grams[i]) ** 2) for i in job.style_layers])
            tv = 0.5 * (tf.reduce_mean(tf.abs(y[:, 1:] - y[:, :-1])) + tf.reduce_mean(tf.abs(y[:, :, 1:] - y[:, :, :-1])))
            loss = job.content_weight * content + job.style_weight * style + job.tv_weight * tv
        grads = tape.gradient(loss, net.trainable_variables)
        optimizer.apply_gradients(zip(grads, net.trainable_variables))
        return loss

    times = []
    for iteration in range(iterations):
        start = time.perf_counter()
        float(step(tf.constant(job.batches[iteration % len(job.batches)])))
        times.append(time.perf_counter() - start)
    return times


LOOPS = {"torch": torch_loop, "mxnet": mxnet_loop, "paddle": paddle_loop, "jax": jax_loop,
         "tensorflow": tensorflow_loop}
