"""The floor of each framework: what one style-transfer iteration cannot undercut.

The same VGG-19 layers the d2l presets run (``features`` up to ``conv5_1``,
index 28), frozen, a forward pass and the gradient with respect to the input
only, written bare in each framework with nothing of multistyle in between:
no losses, no optimizer.  ``chapter_vs_multistyle.py`` times these beside the
chapter's loop and ``multistyle.transfer``.  Each function returns the
seconds of every iteration, read back to the host each time (MXNet runs
asynchronously).  ``capture=True`` runs the same network through the
framework's graph capture (``torch.compile``, Gluon's
``hybridize(static_alloc=True, static_shape=True)``, ``paddle.jit.to_static``):
``graph_capture.py`` measures what each gives.
"""

from __future__ import annotations

import time
import warnings
from typing import Dict, List, Tuple

import numpy as np

LAST = 28  # conv5_1, the deepest layer of the d2l presets
Weights = Dict[int, Tuple[np.ndarray, np.ndarray]]


def torch_floor(x: np.ndarray, weights: Weights, iterations: int, capture: bool = False) -> List[float]:
    import torch
    import torchvision

    net = torchvision.models.vgg19().features[: LAST + 1]
    with torch.no_grad():
        for i, (w, b) in ((i, wb) for i, wb in weights.items() if i <= LAST):
            net[i].weight.copy_(torch.from_numpy(w))
            net[i].bias.copy_(torch.from_numpy(b))
    net.eval().requires_grad_(False)
    if capture:
        net = torch.compile(net)
    image = torch.tensor(x, requires_grad=True)
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        loss = net(image).mean()
        (grad,) = torch.autograd.grad(loss, image)
        loss.item()
        times.append(time.perf_counter() - start)
    return times


def mxnet_floor(x: np.ndarray, weights: Weights, iterations: int, capture: bool = False) -> List[float]:
    import mxnet as mx
    from mxnet import autograd, nd
    from mxnet.gluon.model_zoo import vision

    features = vision.vgg19(pretrained=False).features
    net = mx.gluon.nn.HybridSequential()
    for i in range(LAST + 1):
        net.add(features[i])
    net.initialize(ctx=mx.cpu())
    net(nd.array(x))  # materialise deferred shapes before setting weights
    for i, (w, b) in ((i, wb) for i, wb in weights.items() if i <= LAST):
        net[i].weight.set_data(nd.array(w))
        net[i].bias.set_data(nd.array(b))
    net.collect_params().setattr("grad_req", "null")
    if capture:
        net.hybridize(static_alloc=True, static_shape=True)
    image = nd.array(x)
    image.attach_grad()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        with autograd.record():
            loss = net(image).mean()
        loss.backward()
        image.grad.wait_to_read()
        float(loss.asscalar())
        times.append(time.perf_counter() - start)
    return times


def paddle_floor(x: np.ndarray, weights: Weights, iterations: int, capture: bool = False) -> List[float]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ccache.*")
        import paddle

    net = paddle.vision.models.vgg19(pretrained=False).features[: LAST + 1]
    for i, (w, b) in ((i, wb) for i, wb in weights.items() if i <= LAST):
        net[i].weight.set_value(w)
        net[i].bias.set_value(b)
    net.eval()
    for param in net.parameters():
        param.stop_gradient = True
    if capture:
        net = paddle.jit.to_static(net, full_graph=True)
    image = paddle.to_tensor(x)
    image.stop_gradient = False
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        loss = net(image).mean()
        # backward() rather than paddle.grad: a to_static program's input is not in the graph paddle.grad
        # searches ("The 0-th input does not appear in the backward graph"); the work is the same.
        loss.backward()
        float(loss)
        image.clear_gradient()
        times.append(time.perf_counter() - start)
    return times


def jax_floor(x: np.ndarray, weights: Weights, iterations: int, capture: bool = True) -> List[float]:
    """JAX has no VGG-19 of its own: the layers in ``jax.lax``, and ``jax.value_and_grad`` of their mean, jitted
    (``capture``, the default: JAX's eager mode is not what a JAX user times) or eager."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    from multistyle.vgg import LAYERS

    convs = {i: (jnp.asarray(w), jnp.asarray(b).reshape(1, -1, 1, 1)) for i, (w, b) in weights.items() if i <= LAST}

    def loss(image: jax.Array) -> jax.Array:
        for spec in LAYERS[: LAST + 1]:
            if spec.kind == "conv":
                w, b = convs[spec.index]
                image = lax.conv_general_dilated(image, w, (1, 1), ((1, 1), (1, 1)),
                                                 dimension_numbers=("NCHW", "OIHW", "NCHW")) + b
            elif spec.kind == "relu":
                image = jax.nn.relu(image)
            else:
                image = lax.reduce_window(image, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        return image.mean()

    step = jax.value_and_grad(loss)
    step = jax.jit(step) if capture else step
    image = jnp.asarray(x)
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        value, grad = step(image)
        float(value), grad.block_until_ready()
        times.append(time.perf_counter() - start)
    return times


def tensorflow_floor(x: np.ndarray, weights: Weights, iterations: int, capture: bool = False) -> List[float]:
    """Keras's VGG-19 up to ``block5_conv1`` (its ReLU is fused into the convolution), NHWC, with
    ``tf.GradientTape``; ``capture`` wraps the step in ``tf.function``."""
    import tensorflow as tf

    from multistyle.vgg import CONV_INDICES

    base = tf.keras.applications.VGG19(weights=None, include_top=False)
    convs = [layer for layer in base.layers if layer.get_weights()]
    for layer, index in zip(convs, CONV_INDICES):
        if index <= LAST:
            w, b = weights[index]
            layer.set_weights([np.transpose(w, (2, 3, 1, 0)), b])
    net = tf.keras.Model(base.input, base.get_layer("block5_conv1").output)
    net.trainable = False
    image = tf.constant(np.transpose(x, (0, 2, 3, 1)))

    def step(image: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(image)
            loss = tf.reduce_mean(net(image, training=False))
        return loss, tape.gradient(loss, image)

    step = tf.function(step) if capture else step
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        loss, grad = step(image)
        float(loss), grad.numpy()
        times.append(time.perf_counter() - start)
    return times


FLOORS = {"torch": torch_floor, "mxnet": mxnet_floor, "paddle": paddle_floor, "jax": jax_floor,
          "tensorflow": tensorflow_floor}


def installed(names: str) -> List[str]:
    """The backends among comma-separated ``names`` that load here; each other one is printed as skipped."""
    from multistyle.backend import load_backend_class
    from multistyle.errors import MultistyleError

    usable = []
    for name in names.split(","):
        try:
            load_backend_class(name)
            usable.append(name)
        except MultistyleError as exc:  # not installed, broken, or not a backend at all
            print(f"{name:8} skipped: {exc}")
    return usable
