"""Plain training loops of AdaIN's decoder (Huang & Belongie), one per framework, in that framework's own idiom.

The yardsticks of ``benchmarks/adain_training.py``: what a user of each framework writes by hand for the step
that ``multistyle train --arbitrary`` takes, with nothing of multistyle in between.  It is the public PyTorch
port's ``train.py`` step, spelled in each framework:

* the normalised VGG-19 (a 1x1 convolution, reflection-padded 3x3 convolutions, ceil-mode max pools) as that
  framework's sequential container, module for module, frozen, read at ``relu1_1`` .. ``relu4_1``;
* the decoder as a sequential container: reflection padding, 3x3 convolutions, ReLUs, nearest x2 upsampling;
* AdaIN with the port's ``calc_mean_std`` (unbiased variance + 1e-5); the content loss (mean squared error at
  ``relu4_1`` against the AdaIN target) and the style loss (mean squared errors of the means and of the
  standard deviations at the four layers), weighted;
* one step of the framework's own Adam (``torch.optim.Adam``, ``gluon.Trainer('adam')``,
  ``paddle.optimizer.Adam``, ``tf.keras.optimizers.Adam``; for JAX, whose optax does not import beside
  ``numpy<1.24``, the update written out and jitted with the step) at the port's ``lr / (1 + decay·it)``.

Each function returns the seconds of every iteration; the loss, read back to the host each time, goes to
``job.losses``.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

EPSILON = 1e-5


class Job:
    """What every loop trains on: content and style batches (NCHW, 0..255), the encoder's and the decoder's
    starting parameters (multistyle's names: ``encoder.N.weight``, ``decoder.N.bias``), the loss's weights."""

    def __init__(self, contents: Sequence[np.ndarray], styles: Sequence[np.ndarray], encoder: Dict[str, np.ndarray],
                 decoder: Dict[str, np.ndarray], lr: float = 1e-4, lr_decay: float = 5e-5,
                 content_weight: float = 1.0, style_weight: float = 10.0) -> None:
        self.contents, self.styles = list(contents), list(styles)
        self.encoder, self.decoder = encoder, decoder
        self.lr, self.lr_decay = lr, lr_decay
        self.content_weight, self.style_weight = content_weight, style_weight
        self.losses: List[float] = []  # every iteration's loss, read back to the host

    def batch(self, iteration: int) -> Tuple[np.ndarray, np.ndarray]:
        return (self.contents[iteration % len(self.contents)] / np.float32(255),
                self.styles[iteration % len(self.styles)] / np.float32(255))

    def rate(self, iteration: int) -> float:
        return self.lr / (1.0 + self.lr_decay * iteration)


def encoder_modules() -> List[Tuple]:
    """The encoder's modules in the file's order (the list position is the module index), to ``relu4_1``:
    ``("conv", cin, cout, k)``, ``("pad",)``, ``("relu",)``, ``("pool",)``."""
    from multistyle.nets.adain import ENCODER

    modules: List[Tuple] = [("conv", 3, 3, 1)]
    for _, layer in ENCODER:
        if layer.kind == "conv":
            modules += [("pad",), ("conv", layer.in_channels, layer.out_channels, 3)]
        else:
            modules.append((layer.kind,))
    return modules


def decoder_modules() -> List[Tuple]:
    """The decoder's modules in the file's order: ``("pad",)``, ``("conv", cin, cout, 3)``, ``("relu",)``,
    ``("up",)``."""
    from multistyle.nets.adain import DECODER

    modules: List[Tuple] = []
    for op in DECODER:
        if op.kind == "up":
            modules.append(("up",))
        else:
            modules += [("pad",), ("conv", op.in_channels, op.out_channels, 3)] + ([("relu",)] if op.relu else [])
    return modules


def taps() -> List[int]:
    """Module indices of ``relu1_1`` .. ``relu4_1`` in the encoder: where the port slices it."""
    from multistyle.nets.adain import ENCODER, STYLE_LAYERS

    return [index for index, layer in ENCODER if layer.name in STYLE_LAYERS]


def intermediate(stages: Sequence[Callable]) -> Callable:
    """The port's ``encode_with_intermediate`` over the encoder's slices: each slice's output, in order."""
    def encode_with_intermediate(x: Any) -> List[Any]:
        out = []
        for stage in stages:
            x = stage(x)
            out.append(x)
        return out

    return encode_with_intermediate


def port_loss(job: Job, encode_with_intermediate: Callable, decoder: Callable, calc_mean_std: Callable,
              mse: Callable, t: Any, style_feats: Sequence[Any]) -> Any:
    """The port's ``Net.forward`` after the AdaIN target ``t``, over the framework's own functions: the decoded
    picture's features, the content loss against ``t`` at ``relu4_1``, the mean/std style loss at the four
    layers, weighted."""
    g_feats = encode_with_intermediate(decoder(t))
    loss_c = mse(g_feats[-1], t)
    loss_s = 0.0
    for g, s in zip(g_feats, style_feats):
        (g_mean, g_std), (s_mean, s_std) = calc_mean_std(g), calc_mean_std(s)
        loss_s = loss_s + mse(g_mean, s_mean) + mse(g_std, s_std)
    return job.content_weight * loss_c + job.style_weight * loss_s


# -- PyTorch ---------------------------------------------------------------------------------------------------
def torch_loop(job: Job, iterations: int) -> List[float]:
    import torch
    from torch import nn

    def sequential(modules):
        layers = []
        for kind, *args in modules:
            layers.append({"pad": lambda: nn.ReflectionPad2d(1), "relu": lambda: nn.ReLU(),
                           "pool": lambda: nn.MaxPool2d(2, 2, ceil_mode=True),
                           "up": lambda: nn.Upsample(scale_factor=2, mode="nearest"),
                           "conv": lambda: nn.Conv2d(args[0], args[1], args[2])}[kind]())
        return nn.Sequential(*layers)

    def state(params, prefix):
        return {k[len(prefix):]: torch.from_numpy(v) for k, v in params.items() if k.startswith(prefix)}

    vgg, decoder = sequential(encoder_modules()), sequential(decoder_modules())
    vgg.load_state_dict(state(job.encoder, "encoder."))
    decoder.load_state_dict(state(job.decoder, "decoder."))
    ends = [i + 1 for i in taps()]
    stages = [vgg[a:b] for a, b in zip([0] + ends[:-1], ends)]
    for parameter in vgg.parameters():
        parameter.requires_grad = False

    encode_with_intermediate = intermediate(stages)

    def calc_mean_std(f):
        n, c = f.shape[:2]
        flat = f.view(n, c, -1)
        return flat.mean(dim=2).view(n, c, 1, 1), (flat.var(dim=2) + EPSILON).sqrt().view(n, c, 1, 1)

    def adain(content, style):
        c_mean, c_std = calc_mean_std(content)
        s_mean, s_std = calc_mean_std(style)
        return (content - c_mean) / c_std * s_std + s_mean

    mse = nn.MSELoss()
    optimizer = torch.optim.Adam(decoder.parameters(), lr=job.lr)
    times = []
    for iteration in range(iterations):
        start = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = job.rate(iteration)
        content, style = (torch.from_numpy(x) for x in job.batch(iteration))
        style_feats = encode_with_intermediate(style)
        t = adain(encode_with_intermediate(content)[-1], style_feats[-1])
        loss = port_loss(job, encode_with_intermediate, decoder, calc_mean_std, mse, t, style_feats)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        job.losses.append(loss.item())
        times.append(time.perf_counter() - start)
    return times


# -- MXNet Gluon -----------------------------------------------------------------------------------------------
def mxnet_loop(job: Job, iterations: int) -> List[float]:
    import mxnet as mx
    from mxnet import autograd, gluon, nd

    def sequential(modules, params, prefix):
        net = gluon.nn.HybridSequential()
        convs = []
        for index, (kind, *args) in enumerate(modules):
            if kind == "conv":
                convs.append((index, gluon.nn.Conv2D(args[1], args[2], in_channels=args[0])))
                net.add(convs[-1][1])
            elif kind == "pad":
                net.add(gluon.nn.ReflectionPad2D(1))
            elif kind == "relu":
                net.add(gluon.nn.Activation("relu"))
            elif kind == "pool":
                net.add(gluon.nn.MaxPool2D(2, 2, ceil_mode=True))
            else:
                net.add(gluon.nn.HybridLambda(lambda F, x: F.UpSampling(x, scale=2, sample_type="nearest")))
        net.initialize(ctx=mx.cpu())
        for index, conv in convs:
            conv.weight.set_data(nd.array(params[f"{prefix}.{index}.weight"]))
            conv.bias.set_data(nd.array(params[f"{prefix}.{index}.bias"]))
        return net

    vgg = sequential(encoder_modules(), job.encoder, "encoder")
    vgg.collect_params().setattr("grad_req", "null")
    decoder = sequential(decoder_modules(), job.decoder, "decoder")
    ends = set(taps())

    def encode_with_intermediate(x):
        out = []
        for index, block in enumerate(vgg):
            x = block(x)
            if index in ends:
                out.append(x)
        return out

    def calc_mean_std(f):
        n, c = f.shape[:2]
        flat = f.reshape((n, c, -1))
        mean = flat.mean(axis=2, keepdims=True)
        var = ((flat - mean) ** 2).sum(axis=2) / (flat.shape[2] - 1)
        return mean.reshape((n, c, 1, 1)), (var + EPSILON).sqrt().reshape((n, c, 1, 1))

    def adain(content, style):
        c_mean, c_std = calc_mean_std(content)
        s_mean, s_std = calc_mean_std(style)
        return nd.broadcast_add(nd.broadcast_mul(nd.broadcast_div(nd.broadcast_sub(content, c_mean), c_std), s_std),
                                s_mean)

    l2 = gluon.loss.L2Loss()  # (a - b)² / 2 per sample: so 2 x its mean is the mean squared error

    def mse(a, b):
        return 2 * l2(a, b).mean()
    trainer = gluon.Trainer(decoder.collect_params(), "adam", {"learning_rate": job.lr})
    times = []
    for iteration in range(iterations):
        start = time.perf_counter()
        trainer.set_learning_rate(job.rate(iteration))
        content, style = (nd.array(x) for x in job.batch(iteration))
        style_feats = encode_with_intermediate(style)
        t = adain(encode_with_intermediate(content)[-1], style_feats[-1])
        with autograd.record():
            loss = port_loss(job, encode_with_intermediate, decoder, calc_mean_std, mse, t, style_feats)
        loss.backward()
        trainer.step(1)
        job.losses.append(loss.asscalar())
        times.append(time.perf_counter() - start)
    return times


# -- PaddlePaddle ----------------------------------------------------------------------------------------------
def paddle_loop(job: Job, iterations: int) -> List[float]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ccache.*")
        import paddle
    from paddle import nn

    def sequential(modules):
        layers = []
        for kind, *args in modules:
            layers.append({"pad": lambda: nn.Pad2D(1, mode="reflect"), "relu": lambda: nn.ReLU(),
                           "pool": lambda: nn.MaxPool2D(2, 2, ceil_mode=True),
                           "up": lambda: nn.Upsample(scale_factor=2, mode="nearest"),
                           "conv": lambda: nn.Conv2D(args[0], args[1], args[2])}[kind]())
        return nn.Sequential(*layers)

    def state(params, prefix):
        return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}

    vgg, decoder = sequential(encoder_modules()), sequential(decoder_modules())
    vgg.set_state_dict(state(job.encoder, "encoder."))
    decoder.set_state_dict(state(job.decoder, "decoder."))
    vgg.eval()
    for parameter in vgg.parameters():
        parameter.stop_gradient = True
    ends = [i + 1 for i in taps()]
    stages = [vgg[a:b] for a, b in zip([0] + ends[:-1], ends)]

    encode_with_intermediate = intermediate(stages)

    def calc_mean_std(f):
        n, c = f.shape[:2]
        flat = f.reshape([n, c, -1])
        return (flat.mean(axis=2).reshape([n, c, 1, 1]),
                (flat.var(axis=2, unbiased=True) + EPSILON).sqrt().reshape([n, c, 1, 1]))

    def adain(content, style):
        c_mean, c_std = calc_mean_std(content)
        s_mean, s_std = calc_mean_std(style)
        return (content - c_mean) / c_std * s_std + s_mean

    mse = nn.MSELoss()
    optimizer = paddle.optimizer.Adam(learning_rate=job.lr, parameters=decoder.parameters())
    times = []
    for iteration in range(iterations):
        start = time.perf_counter()
        optimizer.set_lr(job.rate(iteration))
        content, style = (paddle.to_tensor(x) for x in job.batch(iteration))
        style_feats = encode_with_intermediate(style)
        t = adain(encode_with_intermediate(content)[-1], style_feats[-1])
        loss = port_loss(job, encode_with_intermediate, decoder, calc_mean_std, mse, t, style_feats)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        job.losses.append(float(loss))
        times.append(time.perf_counter() - start)
    return times


# -- JAX -------------------------------------------------------------------------------------------------------
def jax_loop(job: Job, iterations: int) -> List[float]:
    import jax
    import jax.numpy as jnp
    from jax import lax

    from .fast_training import adam_update

    nhwc = ("NHWC", "HWIO", "NHWC")

    def hwio(params, prefix):
        return {int(k.split(".")[1]): (jnp.asarray(np.transpose(params[k], (2, 3, 1, 0))),
                                       jnp.asarray(params[k[:-len("weight")] + "bias"]))
                for k in params if k.startswith(prefix) and k.endswith(".weight")}

    def run(modules, params, x, ends=()):
        out = []
        for index, (kind, *_) in enumerate(modules):
            if kind == "conv":
                w, b = params[index]
                x = lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=nhwc) + b
            elif kind == "pad":
                x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
            elif kind == "relu":
                x = jax.nn.relu(x)
            elif kind == "pool":  # ceil mode: an odd last row or column is pooled alone
                pad = ((0, 0), (0, x.shape[1] % 2), (0, x.shape[2] % 2), (0, 0))
                x = lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), pad)
            else:
                x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
            if index in ends:
                out.append(x)
        return out or x

    encoder, decoder = encoder_modules(), decoder_modules()
    vgg, params = hwio(job.encoder, "encoder."), hwio(job.decoder, "decoder.")
    ends = set(taps())

    def calc_mean_std(f):
        return f.mean(axis=(1, 2)), jnp.sqrt(f.var(axis=(1, 2), ddof=1) + EPSILON)

    def adain(content, style):
        (c_mean, c_std), (s_mean, s_std) = calc_mean_std(content), calc_mean_std(style)
        return (content - c_mean[:, None, None]) / c_std[:, None, None] * s_std[:, None, None] + s_mean[:, None, None]

    def loss_fn(p, content, style):
        style_feats = run(encoder, vgg, style, ends)
        t = adain(run(encoder, vgg, content, ends)[-1], style_feats[-1])  # constants: no gradient reaches them
        return port_loss(job, lambda x: run(encoder, vgg, x, ends), lambda x: run(decoder, p, x), calc_mean_std,
                         lambda a, b: jnp.mean((a - b) ** 2), t, style_feats)

    @jax.jit
    def step(p, m, v, t, lr, content, style):
        loss, g = jax.value_and_grad(loss_fn)(p, content, style)
        return (loss, *adam_update(p, m, v, g, t, lr))

    m = jax.tree_util.tree_map(jnp.zeros_like, params)
    v = jax.tree_util.tree_map(jnp.zeros_like, params)
    times = []
    for iteration in range(iterations):
        start = time.perf_counter()
        content, style = (jnp.asarray(np.transpose(x, (0, 2, 3, 1))) for x in job.batch(iteration))
        loss, params, m, v = step(params, m, v, float(iteration + 1), job.rate(iteration), content, style)
        job.losses.append(float(loss))
        times.append(time.perf_counter() - start)
    return times


# -- TensorFlow ------------------------------------------------------------------------------------------------
def tensorflow_loop(job: Job, iterations: int) -> List[float]:
    import tensorflow as tf

    class ReflectionPad(tf.keras.layers.Layer):
        def call(self, x):
            return tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")

    def sequential(modules, params, prefix, trainable):
        layers, convs = [], []
        for index, (kind, *args) in enumerate(modules):
            if kind == "conv":
                convs.append((index, tf.keras.layers.Conv2D(args[1], args[2], trainable=trainable)))
                layers.append(convs[-1][1])
            else:
                layers.append({"pad": ReflectionPad, "relu": tf.keras.layers.ReLU,
                               "pool": lambda: tf.keras.layers.MaxPool2D(2, 2, padding="same"),  # ceil mode
                               "up": lambda: tf.keras.layers.UpSampling2D(2, interpolation="nearest")}[kind]())
        net = tf.keras.Sequential(layers)
        net.build((None, None, None, 3 if prefix == "encoder" else 512))
        for index, conv in convs:
            conv.set_weights([np.transpose(params[f"{prefix}.{index}.weight"], (2, 3, 1, 0)),
                              params[f"{prefix}.{index}.bias"]])
        return net

    vgg = sequential(encoder_modules(), job.encoder, "encoder", False)
    decoder = sequential(decoder_modules(), job.decoder, "decoder", True)
    ends = [i + 1 for i in taps()]
    stages = [tf.keras.Sequential(vgg.layers[a:b]) for a, b in zip([0] + ends[:-1], ends)]

    encode_with_intermediate = intermediate(stages)

    def calc_mean_std(f):
        mean, var = tf.nn.moments(f, axes=[1, 2], keepdims=True)
        count = tf.cast(tf.shape(f)[1] * tf.shape(f)[2], tf.float32)
        return mean, tf.sqrt(var * count / (count - 1) + EPSILON)

    def adain(content, style):
        (c_mean, c_std), (s_mean, s_std) = calc_mean_std(content), calc_mean_std(style)
        return (content - c_mean) / c_std * s_std + s_mean

    mse = tf.keras.losses.MeanSquaredError()
    optimizer = tf.keras.optimizers.Adam(learning_rate=job.lr)

    @tf.function
    def step(content, style):
        style_feats = encode_with_intermediate(style)
        t = adain(encode_with_intermediate(content)[-1], style_feats[-1])
        with tf.GradientTape() as tape:
            loss = port_loss(job, encode_with_intermediate, decoder, calc_mean_std, mse, t, style_feats)
        grads = tape.gradient(loss, decoder.trainable_variables)
        optimizer.apply_gradients(zip(grads, decoder.trainable_variables))
        return loss

    times = []
    for iteration in range(iterations):
        start = time.perf_counter()
        optimizer.learning_rate.assign(job.rate(iteration))
        content, style = (tf.constant(np.transpose(x, (0, 2, 3, 1))) for x in job.batch(iteration))
        job.losses.append(float(step(content, style)))
        times.append(time.perf_counter() - start)
    return times


LOOPS = {"torch": torch_loop, "mxnet": mxnet_loop, "paddle": paddle_loop, "jax": jax_loop,
         "tensorflow": tensorflow_loop}
