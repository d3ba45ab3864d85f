"""What every backend must do, checked the same way for each (see the ``backend`` fixture)."""

from __future__ import annotations

import importlib
import os
import signal

import numpy as np
import pytest

from multistyle import losses
from multistyle.backend import Backend, Optimizer
from multistyle.errors import MultistyleError
from multistyle.images import preprocess
from multistyle.objective import FeatureExtractor
from multistyle.vgg import CONV_INDICES, LAYERS
from support import oracle

RNG = np.random.default_rng(11)
X = RNG.standard_normal((1, 4, 5, 6)).astype(np.float32)


def test_is_a_complete_backend(backend):
    from multistyle.backend import BUILTIN_BACKENDS

    assert isinstance(backend, Backend)
    # The registry knows the native formats before importing the framework; it must agree.
    assert BUILTIN_BACKENDS[backend.name].weight_suffixes == backend.weight_suffixes
    assert backend.device == "cpu"
    assert isinstance(backend.framework_version(), str) and backend.framework_version()
    assert backend.available_devices()[0] == "cpu"
    # Every backend offers every optimizer: its framework's own, or the core's written over the protocol.
    offered = backend.optimizers()
    assert list(offered) == ["adam", "lbfgs", "rmsprop"]
    # ... and what it says computes each one is what runs: the object that backend.optimizer(name) returns
    # drives that framework class, or is that core class.
    for name, source in offered.items():
        optimizer = backend.optimizer(name, np.zeros((1, 3, 2, 2), np.float32), 0.1, 1.0, 1)
        assert _runs(optimizer) == source, name


def _runs(optimizer):
    """Whose code computes ``optimizer``'s steps, found in the object itself (not in what the backend declares)."""
    import multistyle.optim

    if type(optimizer).__module__ == "multistyle.optim":
        assert getattr(multistyle.optim, type(optimizer).__name__) is type(optimizer)
        return f"multistyle.optim.{type(optimizer).__name__}"
    if hasattr(optimizer, "_trainer"):  # Gluon: a Trainer around an mxnet.optimizer
        return f"gluon.Trainer({type(optimizer._trainer.optimizer).__name__.lower()!r})"
    inner = optimizer._optimizer  # torch.optim / paddle.optimizer: the public class it is an instance of
    public = {"torch": "torch.optim", "paddle": "paddle.optimizer"}[type(inner).__module__.split(".")[0]]
    assert getattr(importlib.import_module(public), type(inner).__name__) is type(inner)
    return f"{public}.{type(inner).__name__}"


def test_tensors_round_trip_as_float32_numpy(backend):
    t = backend.asarray(X.astype(np.float64))
    back = backend.to_numpy(t)
    assert isinstance(back, np.ndarray)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, X)
    assert backend.shape(t) == (1, 4, 5, 6)
    assert all(type(d) is int for d in backend.shape(t))


def test_item_is_a_python_float(backend):
    value = backend.item(backend.mean(backend.asarray(X)))
    assert type(value) is float
    assert value == pytest.approx(float(X.mean()), rel=1e-5)


def test_pack_joins_detached_scalars_and_vectors(backend):
    x = backend.asarray(X)
    scalars = [backend.mean(x), backend.sum(backend.square(x)), backend.max(x)]
    packed = backend.pack(scalars)
    assert backend.shape(packed) == (3,)
    np.testing.assert_allclose(backend.to_numpy(packed), [X.mean(), np.square(X).sum(), X.max()], rtol=1e-5)
    twice = backend.to_numpy(backend.pack([packed, backend.pack(scalars[:1])]))
    np.testing.assert_allclose(twice, [X.mean(), np.square(X).sum(), X.max(), X.mean()], rtol=1e-5)
    # Detached: a loss packed for reading later keeps no graph alive.  d(c * mean)/dx is c / n with c
    # the packed (constant) mean; were it attached, d(mean**2)/dx would be twice that.
    _, grad = backend.loss_and_grad(lambda t: backend.sum(backend.pack([backend.mean(t)]) * backend.mean(t)), x)
    np.testing.assert_allclose(backend.to_numpy(grad), np.full(X.shape, X.mean() / X.size), rtol=1e-4)


def test_asarray_copies(backend):
    source = X.copy()
    t = backend.asarray(source)
    source[...] = 0
    assert np.abs(backend.to_numpy(t)).sum() > 0


@pytest.mark.parametrize("op, ref", [("square", np.square), ("abs", np.abs)])
def test_elementwise(backend, op, ref):
    out = getattr(backend, op)(backend.asarray(X))
    np.testing.assert_allclose(backend.to_numpy(out), ref(X), rtol=1e-5, atol=1e-6)


def test_gradients_at_kinks_are_torchs(backend):
    """At 0, |x| and the ReLU have derivative 0, and a max-pool tie sends its gradient to the window's first
    element, in torch, MXNet and Paddle.  JAX's own choices differ (``jnp.abs``: 1, ``jnp.maximum(x, 0)``: 0.5),
    which would change the TV gradient wherever neighbouring pixels are equal: every backend must give torch's."""
    x = backend.asarray(np.zeros((1, 1, 2, 4), np.float32))
    relu, max_pool = backend.relu(), backend.pool("max")

    def pool(t):  # the layers' own layout, which may not be NCHW
        return backend.out_of_layers(max_pool(backend.into_layers(t)))
    for name, fn, want in (("|x|", backend.abs, np.zeros(8)), ("ReLU", relu, np.zeros(8)),
                           ("max-pool", pool, [1, 0, 1, 0, 0, 0, 0, 0])):
        _, grad = backend.loss_and_grad(lambda t: backend.sum(fn(t)), x)
        np.testing.assert_allclose(backend.to_numpy(grad).ravel(), want, atol=1e-7, err_msg=f"{name} at 0")


def test_max_pool_sends_each_windows_gradient_to_its_first_maximum(backend):
    """Ties between positive values too, on an odd size whose last row and column fall in no window: the
    gradient of each window goes to its first maximum in row-major order, torch's rule, on every backend
    (through the layers' own layout)."""
    rng = np.random.default_rng(14)
    x = rng.integers(0, 3, (1, 2, 5, 7)).astype(np.float32)  # 0, 1 or 2: 5 windows tie after their first element
    upstream = rng.standard_normal((1, 2, 2, 3)).astype(np.float32)  # the gradient each window receives
    max_pool, up = backend.pool("max"), backend.asarray(upstream)
    _, grad = backend.loss_and_grad(
        lambda t: backend.sum(backend.out_of_layers(max_pool(backend.into_layers(t))) * up), backend.asarray(x))
    want = np.zeros_like(x)
    for c, i, j in np.ndindex(2, 2, 3):
        first = int(np.argmax(x[0, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2]))  # NumPy's argmax: the first maximum
        want[0, c, 2 * i + first // 2, 2 * j + first % 2] = upstream[0, c, i, j]
    np.testing.assert_allclose(backend.to_numpy(grad), want, atol=1e-7)


def test_matrix_ops_and_native_slicing(backend):
    a = RNG.standard_normal((3, 7)).astype(np.float32)
    t = backend.asarray(a)
    np.testing.assert_allclose(backend.to_numpy(backend.matmul(t, backend.transpose(t))), a @ a.T, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(backend.to_numpy(backend.reshape(t, (7, 3))), a.reshape(7, 3))
    x = backend.asarray(X)
    np.testing.assert_allclose(backend.to_numpy(x[:, :, 1:, :] - x[:, :, :-1, :]), X[:, :, 1:, :] - X[:, :, :-1, :],
                               rtol=1e-6)


def test_losses_match_the_float64_oracle(backend):
    y = RNG.standard_normal(X.shape).astype(np.float32)
    bx, by = backend.asarray(X), backend.asarray(y)
    np.testing.assert_allclose(backend.to_numpy(losses.gram(backend, bx)), oracle.gram(X.astype(np.float64)),
                               rtol=1e-5, atol=1e-6)
    assert backend.item(losses.content_loss(backend, bx, by)) == pytest.approx(oracle.content_loss(X, y), rel=1e-5)
    g = backend.asarray(oracle.gram(y.astype(np.float64)))
    assert backend.item(losses.style_loss(backend, bx, g)) == pytest.approx(oracle.style_loss(X, oracle.gram(y)), rel=1e-4)
    assert backend.item(losses.tv_loss(backend, bx)) == pytest.approx(oracle.tv_loss(X), rel=1e-5)


def test_smoothed_tv_keeps_the_value_and_descends_the_smooth_slope(backend):
    """``tv_loss(..., smoothing)``: the value is still the mean |Δ| (what the run reports and its stop rules
    judge), the gradient is that of sqrt(Δ² + s²), not the sign; ``stop_gradient`` cuts the gradient only."""
    x = (X * 0.05).astype(np.float32)  # differences of the order of the smoothing, where the slopes differ
    bx = backend.asarray(x)
    for smoothing in (0.0, 0.02):
        assert backend.item(losses.tv_loss(backend, bx, smoothing)) == pytest.approx(oracle.tv_loss(x), rel=1e-5)
    _, grad = backend.loss_and_grad(lambda t: losses.tv_loss(backend, t, 0.02), bx)
    want = oracle.tv_smoothed_gradient(x, 0.02)
    np.testing.assert_allclose(backend.to_numpy(grad), want, rtol=1e-4, atol=1e-6 * np.abs(want).max())
    _, sign = backend.loss_and_grad(lambda t: losses.tv_loss(backend, t), bx)
    assert np.abs(backend.to_numpy(sign) - want).max() > 0.1 * np.abs(want).max()  # the smoothing shows
    _, cut = backend.loss_and_grad(lambda t: backend.sum(backend.square(t) + backend.stop_gradient(backend.square(t))),
                                   bx)
    np.testing.assert_allclose(backend.to_numpy(cut), 2 * x, rtol=1e-5, atol=1e-7)


def test_gram_gradient_matches_the_analytic_one(backend):
    """A backend's own ``gram_product`` (a custom gradient, MXNet's symmetric rank-k product) and the protocol's
    default must both differentiate as X·Xᵀ does: d mean((G - T)²) / dF = 4 (G - T) F / (c² N), with
    G = F Fᵀ / N, N = c·h·w and T symmetric.  A gradient through one factor only (a detached transpose, or
    ``G'·X`` without ``G'ᵀ·X``) gives half of it."""
    c, n = X.shape[1], X.shape[2] * X.shape[3]
    F = X.reshape(c, n).astype(np.float64)
    target = RNG.standard_normal((c, c))
    target = (target + target.T) / 2 * np.abs(oracle.gram(X.astype(np.float64))).max()
    want = 4 * (F @ F.T / (c * n) - target) @ F / (c * c * c * n)
    bt = backend.asarray(target.astype(np.float32))

    def through_the_default(t):
        gram = Backend.gram_product(backend, backend.reshape(t, (c, n))) / (c * n)
        return backend.mean(backend.square(gram - bt))

    for form, fn in (("the backend's", lambda t: losses.style_loss(backend, t, bt)),
                     ("the protocol's default", through_the_default)):
        loss, grad = backend.loss_and_grad(fn, backend.asarray(X))
        assert backend.item(loss) == pytest.approx(oracle.style_loss(X, target), rel=1e-4), form
        got = backend.to_numpy(grad).reshape(c, n)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max(), err_msg=form)


def test_a_channels_last_gram_matches_the_nchw_one_in_value_and_gradient(backend):
    """A channels-last map (``features_channels_last``, the layers' NHWC outputs read as they are) gives the Gram
    matrix of the same map in NCHW, and the gradient of its style loss is the NCHW one transposed: through the
    backend's ``gram_product_columns`` (TensorFlow's custom gradient) and through the protocol's default.  A
    Gram of the wrong orientation (positions against positions) fails the shape; a gradient through one
    factor only is half of it."""
    c, n = X.shape[1], X.shape[2] * X.shape[3]
    F = X.reshape(c, n).astype(np.float64)
    target = RNG.standard_normal((c, c))
    target = (target + target.T) / 2 * np.abs(oracle.gram(X.astype(np.float64))).max()
    want = (4 * (F @ F.T / (c * n) - target) @ F / (c * c * c * n)).reshape(X.shape).transpose(0, 2, 3, 1)
    nhwc = np.ascontiguousarray(X.transpose(0, 2, 3, 1))
    np.testing.assert_allclose(backend.to_numpy(losses.gram(backend, backend.asarray(nhwc), channels_last=True)),
                               oracle.gram(X.astype(np.float64)), rtol=1e-5, atol=1e-6)
    bt = backend.asarray(target.astype(np.float32))

    def through_the_default(t):
        gram = Backend.gram_product_columns(backend, backend.reshape(t, (n, c))) / (c * n)
        return backend.mean(backend.square(gram - bt))

    for form, fn in (("the backend's", lambda t: losses.style_loss(backend, t, bt, channels_last=True)),
                     ("the protocol's default", through_the_default)):
        loss, grad = backend.loss_and_grad(fn, backend.asarray(nhwc))
        assert backend.item(loss) == pytest.approx(oracle.style_loss(X, target), rel=1e-4), form
        np.testing.assert_allclose(backend.to_numpy(grad), want, rtol=1e-4, atol=1e-5 * np.abs(want).max(),
                                   err_msg=form)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs", "rmsprop"])
def test_ctrl_c_inside_the_gram_gradient_comes_out_as_an_interrupt(backend, optimizer, monkeypatch):
    """Where a backend differentiates its Gram in Python (a custom autograd function), Ctrl-C can land inside
    that backward pass; the framework runs it from C++, and Paddle wrapped the ``KeyboardInterrupt`` in its own
    error, so the CLI ended with an error instead of keeping the last snapshot (exit 130)."""
    module = importlib.import_module(type(backend).__module__)
    custom = getattr(module, "_GramProduct", None)
    if custom is None:
        pytest.skip(f"{backend.name} has no autograd class of its own for the Gram")

    def interrupt(ctx, grad):
        raise KeyboardInterrupt

    monkeypatch.setattr(custom, "backward", staticmethod(interrupt))
    optimizer = backend.optimizer(optimizer, X, 0.1, 1.0, 1)
    target = backend.asarray(np.eye(X.shape[1], dtype=np.float32))
    with pytest.raises(KeyboardInterrupt):
        optimizer.step(lambda image: losses.style_loss(backend, image, target))


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs", "rmsprop"])
def test_a_real_ctrl_c_inside_the_gram_gradient_prints_nothing_and_ends_the_step(backend, optimizer, monkeypatch,
                                                                               capfd, request):
    """The signal itself, as the terminal sends it, landing inside the Gram's backward: the step still ends as
    ``KeyboardInterrupt``, and the framework writes nothing to the terminal (Paddle logged a C++ warning line,
    ``While running Node (GradNodePyLayer__GramProduct) raises an EnforceNotMet exception``, above the CLI's
    one-line message)."""
    module = importlib.import_module(type(backend).__module__)
    custom = getattr(module, "_GramProduct", None)
    if custom is None:
        pytest.skip(f"{backend.name} has no autograd class of its own for the Gram")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in `multistyle run`
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))
    real = custom.backward

    def interrupt(ctx, grad):
        os.kill(os.getpid(), signal.SIGINT)
        return real(ctx, grad)

    monkeypatch.setattr(custom, "backward", staticmethod(interrupt))
    optimizer = backend.optimizer(optimizer, X, 0.1, 1.0, 1)
    target = backend.asarray(np.eye(X.shape[1], dtype=np.float32))
    capfd.readouterr()
    with pytest.raises(KeyboardInterrupt):
        optimizer.step(lambda image: losses.style_loss(backend, image, target))
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_vgg_features_match_the_oracle(backend, weights, pooling):
    x = RNG.standard_normal((1, 3, 32, 48)).astype(np.float32)  # pool5 is 1x1
    names = [layer.name for layer in LAYERS]
    got = FeatureExtractor(backend, weights, names, pooling)(backend.asarray(x))
    want = oracle.features(x, weights, names, pooling)
    for name in names:
        ref = want[name]
        out = backend.to_numpy(got[name])
        assert out.shape == ref.shape, name
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max(), err_msg=f"layer {name}")


def test_network_is_cut_after_the_deepest_layer(backend, weights):
    extractor = FeatureExtractor(backend, weights, ["conv1_1", "relu2_1"])
    assert len(extractor.layers) == 7  # conv1_1 .. relu2_1


def test_stored_conv_output_is_not_overwritten_by_relu(backend, weights):
    x = RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)
    got = FeatureExtractor(backend, weights, ["conv1_1", "relu1_1", "conv1_2"])(backend.asarray(x))
    conv = backend.to_numpy(got["conv1_1"])
    assert (conv < 0).any(), "a conv output with no negative value cannot tell in-place ReLUs apart"
    np.testing.assert_allclose(backend.to_numpy(got["relu1_1"]), np.maximum(conv, 0), rtol=1e-6)
    np.testing.assert_allclose(conv, oracle.features(x, weights, ["conv1_1"])["conv1_1"], rtol=1e-4, atol=1e-4)


def _keras_vgg19(weights):
    """Keras's VGG-19, whose convolutions carry their ReLU (``activation="relu"``): each is split into its
    convolution (the activation set to linear) and the activation it declares.  Keras is NHWC."""
    import tensorflow as tf

    model = tf.keras.applications.VGG19(weights=None, include_top=False)
    nhwc = lambda f: lambda x: tf.transpose(f(tf.transpose(x, (0, 2, 3, 1))), (0, 3, 1, 2))  # noqa: E731
    layers, convs = [], iter(i for i in CONV_INDICES)
    for layer in model.layers[1:]:  # after the input layer
        if isinstance(layer, tf.keras.layers.Conv2D):
            index = next(convs)
            layer.set_weights([np.transpose(weights[index][0], (2, 3, 1, 0)), weights[index][1]])
            relu, layer.activation = layer.activation, tf.keras.activations.linear
            layers.append(("conv", layer.kernel.shape[2], layer.filters, nhwc(layer)))
            layers.append(("relu" if relu is tf.keras.activations.relu else relu.__name__, None, None, relu))
        else:
            kind = "pool" if isinstance(layer, tf.keras.layers.MaxPooling2D) else type(layer).__name__
            layers.append((kind, None, None, nhwc(layer)))
    return layers


def _native_vgg19(name, weights):
    """The framework's own VGG-19 ``features`` (its model zoo's architecture, untrained) with ``weights``
    copied into its convolutions by index: ``[(kind, in_channels, out_channels, layer)]`` up to pool5."""
    if name == "torch":
        import torch
        import torchvision

        net = torchvision.models.vgg19(weights=None).features.eval()
        kinds = {torch.nn.Conv2d: "conv", torch.nn.ReLU: "relu", torch.nn.MaxPool2d: "pool"}
        layers = []
        for index, layer in enumerate(net):
            if isinstance(layer, torch.nn.Conv2d):
                with torch.no_grad():
                    layer.weight.copy_(torch.from_numpy(weights[index][0]))
                    layer.bias.copy_(torch.from_numpy(weights[index][1]))
                channels = (layer.in_channels, layer.out_channels)
            else:
                channels = (None, None)
            # torchvision's ReLUs work in place: each output is cloned before the next layer can change it.
            layers.append((kinds[type(layer)], *channels, lambda x, layer=layer: layer(x).clone()))
        return layers
    if name == "mxnet":
        from mxnet import nd
        from mxnet.gluon import nn as gnn
        from mxnet.gluon.model_zoo import vision

        net = vision.vgg19(pretrained=False)
        net.initialize()
        net.features(nd.zeros((1, 3, 32, 32)))  # Gluon infers the input channels on a first pass
        layers = []
        for index, layer in enumerate(net.features):
            if isinstance(layer, gnn.Dense):  # Gluon's features go on to the classifier's dense layers
                break
            if isinstance(layer, gnn.Conv2D):
                layer.weight.set_data(nd.array(weights[index][0]))
                layer.bias.set_data(nd.array(weights[index][1]))
                kind, channels = "conv", layer.weight.shape[1::-1]
            else:
                kind = "relu" if isinstance(layer, gnn.Activation) and layer._act_type == "relu" else (
                    "pool" if isinstance(layer, gnn.MaxPool2D) else type(layer).__name__)
                channels = (None, None)
            layers.append((kind, *channels, layer))
        return layers
    if name == "jax":
        pytest.skip("JAX has no VGG-19 of its own (no model zoo): its layers are checked against the oracle")
    if name == "tensorflow":
        return _keras_vgg19(weights)
    import paddle

    net = paddle.vision.models.vgg19(pretrained=False).features
    kinds = {paddle.nn.Conv2D: "conv", paddle.nn.ReLU: "relu", paddle.nn.MaxPool2D: "pool"}
    layers = []
    for index, layer in enumerate(net):
        if isinstance(layer, paddle.nn.Conv2D):
            layer.weight.set_value(weights[index][0])
            layer.bias.set_value(weights[index][1])
            channels = (layer.weight.shape[1], layer.weight.shape[0])
        else:
            channels = (None, None)
        layers.append((kinds.get(type(layer), type(layer).__name__), *channels, layer))
    return layers


def test_the_layer_table_is_the_frameworks_own_vgg19(backend, weights):
    """The oracle and every backend build their network from ``vgg.LAYERS``: here that table meets each
    framework's own VGG-19, layer by layer, all the way to pool5 (kinds, channels and outputs)."""
    layers = _native_vgg19(backend.name, weights)
    assert [(kind, c_in, c_out) for kind, c_in, c_out, _ in layers] == [
        (spec.kind, spec.in_channels, spec.out_channels) if spec.kind == "conv" else (spec.kind, None, None)
        for spec in LAYERS]
    x = RNG.standard_normal((1, 3, 32, 48)).astype(np.float32)  # pool5 is 1x1
    want = oracle.features(x, weights, [spec.name for spec in LAYERS])
    out = backend.asarray(x)
    for spec, (_, _, _, layer) in zip(LAYERS, layers):
        out = layer(out)
        got, ref = backend.to_numpy(out), want[spec.name]
        assert got.shape == ref.shape, spec.name
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max(), err_msg=spec.name)


def _quadratic_closure(backend, g):
    """A loss whose gradient with respect to the image is exactly ``g``."""
    coefficient = backend.asarray(g)
    n = float(g.size)
    return lambda x: backend.mean(x * coefficient) * n


def test_adam_matches_reference_with_step_decay_and_tiny_gradients(backend):
    rng = np.random.default_rng(5)
    start = rng.standard_normal((1, 3, 4, 5)).astype(np.float32)
    grads = []
    for step in range(20):
        g = rng.standard_normal(start.shape) * 10.0 ** rng.integers(-7, 1, start.shape)
        grads.append(g.astype(np.float32))
    optimizer = backend.optimizer("adam", start, lr=0.3, lr_decay=0.8, lr_decay_every=3)
    assert isinstance(optimizer, Optimizer)
    lrs = [0.3 * 0.8 ** (step // 3) for step in range(20)]
    reference = oracle.adam(start, grads, lrs)
    for step, g in enumerate(grads):
        assert optimizer.lr == pytest.approx(lrs[step], rel=1e-6), f"learning rate at step {step}"
        optimizer.step(_quadratic_closure(backend, g))
        optimizer.epoch_end()
        # Tolerance: 1e-5 of how far the steps so far could move a pixel.  MXNet's
        # kernel forms 1 - beta2 in float32 (0.00099998713), so its v is 1.3e-5
        # low and each of its steps 6.5e-6 long; torch and Paddle do better.
        travel = sum(lrs[: step + 1])
        np.testing.assert_allclose(backend.to_numpy(optimizer.image), next(reference), rtol=1e-5, atol=1e-5 * travel,
                                   err_msg=f"parameters after step {step + 1}")


def test_optimizer_returns_the_closure_loss(backend):
    start = np.ones((1, 3, 2, 2), dtype=np.float32)
    optimizer = backend.optimizer("adam", start, lr=0.1, lr_decay=1.0, lr_decay_every=1)
    loss = optimizer.step(lambda x: backend.mean(backend.square(x)))
    assert backend.item(loss) == pytest.approx(1.0)
    assert backend.to_numpy(optimizer.image).max() == pytest.approx(0.9, rel=1e-5)


def test_unknown_optimizer_is_refused(backend):
    with pytest.raises(MultistyleError, match="optimizer"):
        backend.optimizer("sgd-with-wishes", np.zeros((1, 3, 2, 2), np.float32), 0.1, 1.0, 1)


def test_seed_makes_noise_runs_repeatable(backend):
    from multistyle import transfer

    content = np.full((20, 20, 3), 120, np.uint8)
    results = [transfer(content, content, backend=backend, weights="random:1", size=(16, 16), epochs=2,
                        init="noise", seed=seed).array for seed in (3, 3, 4)]
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-5)
    assert np.abs(results[0] - results[2]).mean() > 0.1  # another seed, another start


def test_preprocessed_input_reaches_the_backend_unchanged(backend, monkeypatch):
    """A run hands the backend exactly the content that preprocess() makes of the file, resized and normalised
    once in NumPy, so every backend sees the same input bytes."""
    from PIL import Image

    from multistyle import transfer

    pixels = RNG.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    expected = preprocess(Image.fromarray(pixels), (16, 24))
    received = []
    original = backend.asarray
    monkeypatch.setattr(backend, "asarray", lambda array: received.append(np.array(array)) or original(array))
    transfer(pixels, pixels, backend=backend, weights="random:1", size=(16, 24), epochs=1,
             content_layers=["conv1_1"], style_layers=["conv1_1"])
    inputs = [array for array in received if array.shape == expected.shape]
    assert inputs, "the content never reached the backend as an image"
    np.testing.assert_array_equal(inputs[0], expected)


def _trainable(backend, layers):
    """How many backbone parameters would receive gradients, asked the framework's own way."""
    if backend.name == "jax":
        pytest.skip("JAX layers are functions with no parameters: value_and_grad differentiates the image alone")
    if backend.name == "tensorflow":  # layers are closures: a tape watches every trainable variable they hold
        import tensorflow as tf

        return sum(isinstance(cell.cell_contents, tf.Variable) and cell.cell_contents.trainable
                   for layer in layers for cell in (layer.__closure__ or ()))
    if backend.name == "torch":
        return sum(p.requires_grad for layer in layers for p in layer.parameters())
    if backend.name == "mxnet":
        return sum(p.grad_req != "null" for layer in layers for p in layer.collect_params().values())
    return sum(not p.stop_gradient for layer in layers for p in layer.parameters())


def test_backbone_is_frozen(backend, weights):
    layers = FeatureExtractor(backend, weights, ["conv5_1"]).layers
    assert len(layers) == 29
    assert _trainable(backend, layers) == 0


def _oracle_objective(weights, settings, content_x, style_x):
    names = list(dict.fromkeys(settings.content_layers + settings.style_layers))
    content_targets = oracle.features(content_x, weights, names)
    style_grams = {n: oracle.gram(f) for n, f in oracle.features(style_x, weights, names).items()}

    def terms(x):
        f = oracle.features(x, weights, names)
        out = {"content": settings.content_weight * sum(oracle.content_loss(f[n], content_targets[n])
                                                        for n in settings.content_layers),
               "style": settings.style_weight * sum(oracle.style_loss(f[n], style_grams[n]) for n in settings.style_layers),
               "tv": settings.tv_weight * oracle.tv_loss(x)}
        out["total"] = out["content"] + out["style"] + out["tv"]
        return out

    return terms


def test_loss_and_gradient_match_the_oracle(backend, weights):
    from multistyle.objective import StyleLoss
    from multistyle.settings import Settings

    rng = np.random.default_rng(21)
    content_x, style_x, x = (rng.standard_normal((1, 3, 16, 16)).astype(np.float32) for _ in range(3))
    settings = Settings().resolved()
    objective = StyleLoss(backend, weights, settings, content_x, style_x)
    reference = _oracle_objective(weights, settings, content_x.astype(np.float64), style_x.astype(np.float64))
    want = reference(x.astype(np.float64))
    got = objective.terms(backend.asarray(x))
    for term in ("content", "style", "tv", "total"):
        assert backend.item(got[term]) == pytest.approx(want[term], rel=1e-4), f"{term} loss"
    value, grad = backend.value_and_grad(lambda t: objective.terms(t)["total"], x)
    assert isinstance(grad, np.ndarray) and grad.shape == x.shape and grad.dtype == np.float32
    assert value == pytest.approx(want["total"], rel=1e-4)
    # Central differences in float64 (h small enough to rarely straddle a ReLU kink): at a few chosen pixels
    # (corners, edges, the middle) and at 64 more drawn at random from all 768, the same on every backend.
    numeric = _NUMERIC.get("gradient")
    if numeric is None:
        numeric = _NUMERIC["gradient"] = _central_differences(reference, x.astype(np.float64), GRADIENT_PIXELS)
    for index, value in zip(GRADIENT_PIXELS, numeric):
        assert grad[index] == pytest.approx(value, rel=1e-3, abs=1e-5 * float(np.abs(grad).max())), f"gradient at {index}"


def test_the_compiled_objective_is_the_objective(backend, weights):
    """``compile_objective`` (JAX: jitted per shape, a custom VJP; the others: the identity) gives the same terms,
    and the gradient of any multiple of the total, at two image shapes."""
    from multistyle.objective import StyleLoss
    from multistyle.settings import Settings

    rng = np.random.default_rng(22)
    settings = Settings().resolved()
    for shape in ((1, 3, 16, 16), (1, 3, 16, 24)):
        content_x, style_x, x = (rng.standard_normal(shape).astype(np.float32) for _ in range(3))
        objective = StyleLoss(backend, weights, settings, content_x, style_x)
        compiled = backend.compile_objective(objective.terms)
        got, want = compiled(backend.asarray(x)), objective.terms(backend.asarray(x))
        for term in ("content", "style", "tv", "total"):
            assert backend.item(got[term]) == pytest.approx(backend.item(want[term]), rel=1e-5), (shape, term)
        plain = backend.value_and_grad(lambda t: objective.terms(t)["total"] * 3.0, x)
        fast = backend.value_and_grad(lambda t: compiled(t)["total"] * 3.0, x)
        assert fast[0] == pytest.approx(plain[0], rel=1e-5)
        np.testing.assert_allclose(fast[1], plain[1], rtol=1e-4, atol=1e-5 * float(np.abs(plain[1]).max()))


def test_the_compiled_forward_is_the_function_at_each_shape(backend, weights):
    """``compile_forward`` (JAX: one program per set of image shapes; the others: the identity) gives the
    function's features and Gram matrices of two images, called in turn at several pairs of shapes and back
    (a program kept for one pair must not serve another, even where only the second image's shape differs)."""
    extract = FeatureExtractor(backend, weights, ["conv1_1", "conv3_1"])

    def targets(x, y):
        features = extract(x)
        return [features["conv3_1"]], [losses.gram(backend, extract(y)["conv1_1"])]

    compiled = backend.compile_forward(targets)
    rng = np.random.default_rng(24)
    a, b = (1, 3, 16, 16), (1, 3, 16, 24)
    for shapes in ((a, a), (b, b), (a, b), (a, a)):
        x, y = (backend.asarray(rng.standard_normal(shape).astype(np.float32)) for shape in shapes)
        for got_list, want_list in zip(compiled(x, y), targets(x, y)):
            for got, want in zip(got_list, want_list):
                want = backend.to_numpy(want)
                assert backend.shape(got) == want.shape, shapes
                np.testing.assert_allclose(backend.to_numpy(got), want, rtol=1e-5,
                                           atol=1e-6 * float(np.abs(want).max()))


def test_objectives_at_two_sizes_can_share_one_network(backend, weights):
    """A run builds the network once and each scale's objective reads it (``StyleLoss(..., extract)``): the
    terms at each size are those of an objective with a network of its own; a network that keeps other
    layers than the settings need is refused."""
    from multistyle.objective import StyleLoss
    from multistyle.settings import Settings

    settings = Settings(tv_weight=10.0).resolved()
    shared = StyleLoss.network(backend, weights, settings)
    rng = np.random.default_rng(25)
    for shape in ((1, 3, 16, 24), (1, 3, 32, 48), (1, 3, 16, 24)):
        content_x, style_x, x = (rng.standard_normal(shape).astype(np.float32) for _ in range(3))
        got = StyleLoss(backend, weights, settings, content_x, style_x, shared).terms(backend.asarray(x))
        want = StyleLoss(backend, weights, settings, content_x, style_x).terms(backend.asarray(x))
        for key in ("content", "style", "tv", "total"):
            assert backend.item(got[key]) == pytest.approx(backend.item(want[key]), rel=1e-5), (shape, key)
    other = FeatureExtractor(backend, weights, ["conv1_1", "conv4_2"])
    with pytest.raises(ValueError, match="these settings need"):
        StyleLoss(backend, weights, settings, content_x, style_x, other)


def test_the_compiled_objective_takes_the_smoothing_scale_at_every_call(backend, weights):
    """``terms(x, tv_scale)`` smooths the total variation with ``tv_scale`` × ``--tv-smoothing``, and the
    compiled objective takes that scale as an argument: a new value changes the gradient (JAX must not
    keep the first one as a constant), and each value's gradient is the eager objective's."""
    from multistyle.objective import StyleLoss
    from multistyle.settings import Settings

    rng = np.random.default_rng(23)
    shape = (1, 3, 16, 24)
    content_x, style_x = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    x = (content_x + 0.02 * rng.standard_normal(shape)).astype(np.float32)  # differences near the smoothing
    objective = StyleLoss(backend, weights, Settings(tv_smoothing=0.04, tv_weight=1000.0).resolved(),
                          content_x, style_x)
    half = StyleLoss(backend, weights, Settings(tv_smoothing=0.02, tv_weight=1000.0).resolved(), content_x, style_x)
    compiled = backend.compile_objective(objective.terms)
    grads = {}
    for scale in (1.0, 0.5, 1.0):
        grads[scale] = backend.value_and_grad(lambda t: compiled(t, scale)["total"], x)[1]
        eager = backend.value_and_grad(lambda t: objective.terms(t, scale)["total"], x)[1]
        np.testing.assert_allclose(grads[scale], eager, rtol=1e-4, atol=1e-5 * float(np.abs(eager).max()))
    np.testing.assert_allclose(grads[0.5], backend.value_and_grad(lambda t: half.terms(t)["total"], x)[1],
                               rtol=1e-4, atol=1e-5 * float(np.abs(grads[0.5]).max()))
    assert np.abs(grads[1.0] - grads[0.5]).max() > 0.01 * np.abs(grads[1.0]).max()


_NUMERIC: dict = {}
_CHOSEN = [(0, 0, 0, 0), (0, 1, 7, 9), (0, 2, 15, 3), (0, 0, 8, 8), (0, 1, 3, 14)]
_DRAWN = np.random.default_rng(64).choice(3 * 16 * 16, size=64, replace=False)
GRADIENT_PIXELS = _CHOSEN + [(0, *np.unravel_index(int(k), (3, 16, 16))) for k in _DRAWN]


def _central_differences(reference, x, pixels, h=1e-4):
    out = []
    for index in pixels:
        shifted = [x.copy(), x.copy()]
        shifted[0][index] += h
        shifted[1][index] -= h
        out.append((reference(shifted[0])["total"] - reference(shifted[1])["total"]) / (2 * h))
    return out


def _whitened(rng, channels, n):
    """``(channels, n)`` samples with mean exactly 0 and covariance exactly the identity (divided by n)."""
    z = rng.standard_normal((channels, n))
    z -= z.mean(axis=1, keepdims=True)
    values, vectors = np.linalg.eigh(z @ z.T / n)
    return (vectors / np.sqrt(values)) @ vectors.T @ z


WIDE = RNG.standard_normal((1, 8, 2, 3)).astype(np.float32)  # fewer positions than channels


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("features", [X, WIDE], ids=["positions>channels", "channels>positions"])
def test_mean_std_and_w2_losses_match_the_float64_oracle_in_value_and_gradient(backend, channels_last, features):
    """W2's square root is of the ``c × c`` matrix, or of the ``n × n`` one where the map has fewer positions
    ``n`` than channels ``c``: both must give the oracle's value and gradient."""
    X = features
    y = (RNG.standard_normal(X.shape) * 1.5 + 0.3).astype(np.float32)
    mean, second = oracle.channel_moments(y)
    x = np.ascontiguousarray(X.transpose(0, 2, 3, 1)) if channels_last else X
    cases = (("w2", losses.w2_loss, losses.W2Target(backend, mean, second),
              lambda v: oracle.w2_loss(v, mean, second)),
             ("mean-std", losses.mean_std_loss,
              (backend.asarray(mean.reshape(1, -1).astype(np.float32)),
               backend.asarray(np.diag(second).reshape(1, -1).astype(np.float32))),
              lambda v: oracle.mean_std_loss(v, mean, np.diag(second))))
    for name, loss_fn, target, reference in cases:
        loss, grad = backend.loss_and_grad(lambda t: loss_fn(backend, t, target, channels_last), backend.asarray(x))
        assert backend.item(loss) == pytest.approx(reference(X), rel=1e-4), name
        want = oracle.numeric_gradient(reference, X)
        got = backend.to_numpy(grad)
        got = got.transpose(0, 3, 1, 2) if channels_last else got
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max(), err_msg=name)


def test_the_statistics_of_a_map_against_themselves_give_a_loss_of_about_0(backend):
    x = backend.asarray(X)
    assert abs(backend.item(losses.w2_loss(backend, x, losses.W2Target(backend, *oracle.channel_moments(X))))) < 1e-5
    stats = losses.mean_std_statistics(backend, x)
    assert abs(backend.item(losses.mean_std_loss(backend, x, stats))) < 1e-7


def test_w2_of_two_gaussians_is_the_closed_form(backend):
    """Features with exactly known moments: means μ₁, μ₂ and diagonal covariances D₁², D₂² give
    W2² = |μ₁ − μ₂|² + Σ (d₁ − d₂)² (the covariances commute); a rotated second covariance R D₂² Rᵀ gives
    |μ₁ − μ₂|² + tr D₁² + tr D₂² − 2 tr (D₁ R D₂² Rᵀ D₁)^½."""
    rng = np.random.default_rng(5)
    c, n = 6, 64
    d1, d2 = rng.uniform(0.5, 2.0, c), rng.uniform(0.5, 2.0, c)
    mu1, mu2 = rng.standard_normal(c), rng.standard_normal(c)
    rotation, _ = np.linalg.qr(rng.standard_normal((c, c)))
    f = mu1[:, None] + d1[:, None] * _whitened(rng, c, n)
    for covariance, want in ((np.diag(d2 ** 2), np.sum((mu1 - mu2) ** 2) + np.sum((d1 - d2) ** 2)),
                             (rotation @ np.diag(d2 ** 2) @ rotation.T, None)):
        if want is None:
            cross = oracle.sqrtm_psd(np.diag(d1) @ covariance @ np.diag(d1))
            want = np.sum((mu1 - mu2) ** 2) + np.sum(d1 ** 2) + np.trace(covariance) - 2 * np.trace(cross)
        target = losses.W2Target(backend, mu2, covariance + np.outer(mu2, mu2))
        x = backend.asarray(f.reshape(1, c, 8, 8).astype(np.float32))
        assert backend.item(losses.w2_loss(backend, x, target)) == pytest.approx(want / c, rel=1e-3, abs=1e-5)


def test_w2_of_a_low_rank_map_matches_the_oracle(backend):
    """64 channels of rank 6, as a VGG layer's with dead or copied channels: 58 eigenvalues of the matrix whose
    root W2 takes are 0, which float32 leaves at about ±1e-7 of its norm.  Unshifted, the Newton-Schulz
    iteration drives the negative ones away: measured on a VGG layer's matrix, 20 steps gave 7 % less than the
    exact root's trace and 30 steps NaN; here, unshifted, every backend gave 50.30 for the oracle's 50.20."""
    rng = np.random.default_rng(12)
    mixing = rng.standard_normal((64, 6))
    x = (mixing @ rng.standard_normal((6, 40 * 30)) * 3.0 + rng.standard_normal((64, 1))).reshape(1, 64, 40, 30)
    y = rng.standard_normal((1, 64, 40, 30)) * rng.uniform(0.5, 2.0, (1, 64, 1, 1))
    mean, second = oracle.channel_moments(y)
    want = oracle.w2_loss(x, mean, second)
    got = backend.item(losses.w2_loss(backend, backend.asarray(x.astype(np.float32)),
                                      losses.W2Target(backend, mean, second)))
    assert got == pytest.approx(want, rel=1e-3)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("kind", ["gram", "mean-std", "w2"])
def test_each_style_loss_over_a_masked_region_matches_the_oracle(backend, kind, channels_last):
    """--content-masks: the picture's statistics over the positions a soft mask weights (zeros included)."""
    rng = np.random.default_rng(13)
    X = rng.standard_normal((1, 5, 4, 6)).astype(np.float32)
    y = rng.standard_normal((1, 5, 7, 3)) * 1.3 + 0.2
    mask = rng.uniform(0, 1, (4, 6)) * (rng.uniform(0, 1, (4, 6)) > 0.3)
    p = (mask / mask.sum()).reshape(-1).astype(np.float32)
    mean, second = oracle.channel_moments(y)
    target, reference = {
        "gram": (backend.asarray((second / 5).astype(np.float32)),
                 lambda v: oracle.masked_style_loss(v, second / 5, mask)),
        "mean-std": ((backend.asarray(mean.reshape(1, -1).astype(np.float32)),
                      backend.asarray(np.diag(second).reshape(1, -1).astype(np.float32))),
                     lambda v: oracle.mean_std_loss(v, mean, np.diag(second), p=mask)),
        "w2": (losses.W2Target(backend, mean, second), lambda v: oracle.w2_loss(v, mean, second, p=mask)),
    }[kind]
    x = np.ascontiguousarray(X.transpose(0, 2, 3, 1)) if channels_last else X
    loss, grad = backend.loss_and_grad(
        lambda t: losses.masked_style_term(backend, kind, t, target, p, channels_last), backend.asarray(x))
    assert backend.item(loss) == pytest.approx(reference(X), rel=1e-4)
    want = oracle.numeric_gradient(reference, X)
    got = backend.to_numpy(grad)
    got = got.transpose(0, 3, 1, 2) if channels_last else got
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
    assert np.abs(got[..., mask == 0]).max() < 1e-6 * np.abs(got).max()  # an unmasked position has no say


def test_w2_over_a_one_position_region_has_a_finite_gradient(backend):
    """A mask whose region is one position at a deep layer: the region's covariance is 0, where the square
    root's norm has the gradient 0/0 (a run's image became NaN after its first step)."""
    rng = np.random.default_rng(14)
    y = rng.standard_normal((1, 6, 3, 4))
    p = np.zeros(2, np.float32)
    p[0] = 1.0
    target = losses.W2Target(backend, *oracle.channel_moments(y))
    x = backend.asarray(rng.standard_normal((1, 6, 1, 2)).astype(np.float32))
    loss, grad = backend.loss_and_grad(lambda t: losses.masked_style_term(backend, "w2", t, target, p), x)
    assert np.isfinite(backend.item(loss)) and np.isfinite(backend.to_numpy(grad)).all()


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("masked", [False, True], ids=["every-patch", "masked"])
def test_the_mrf_loss_matches_the_float64_oracle_in_value_and_gradient(backend, channels_last, masked):
    """Li & Wand's loss: 3x3 patches every 2 positions, each against the style patch of largest normalised
    cross-correlation; with a soft mask (zeros included), each patch weighted by its share of the mask.  The
    map is 7x10 (3x4 patches, its last column covered by none) and the style 8x6 (3x2 patches)."""
    if channels_last and not backend.features_channels_last:
        pytest.skip("the mrf loss reads channels-last maps only in the layers' own layout")
    rng = np.random.default_rng(15)
    X = rng.standard_normal((1, 5, 7, 10)).astype(np.float32)
    style = (rng.standard_normal((1, 5, 8, 6)) * 1.3 + 0.2).astype(np.float32)
    mask = rng.uniform(0, 1, (7, 10)) * (rng.uniform(0, 1, (7, 10)) > 0.3) if masked else None
    p = None if mask is None else (mask / mask.sum()).reshape(-1).astype(np.float32)

    def layout(a):
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1)) if channels_last else a
    target = losses.MRFTarget(backend, [layout(style)], channels_last=channels_last)
    loss, grad = backend.loss_and_grad(lambda t: losses.mrf_term(backend, t, target, p, channels_last),
                                       backend.asarray(layout(X)))

    def reference(v):
        return oracle.mrf_loss(v, style, mask)
    assert backend.item(loss) == pytest.approx(reference(X), rel=1e-4)
    want = oracle.numeric_gradient(reference, X)
    got = backend.to_numpy(grad)
    got = got.transpose(0, 3, 1, 2) if channels_last else got
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
    assert np.abs(got[..., :, 9]).max() <= 1e-7 * np.abs(got).max()  # no patch covers the last column


def test_the_mrf_loss_of_a_map_against_its_own_patches_is_about_0(backend):
    """Each patch's nearest by normalised cross-correlation is itself (Cauchy-Schwarz), so the loss is only
    float32's rounding of ``|Ψ|² − 2 <Ψ, Ψ> + |Ψ|²``."""
    rng = np.random.default_rng(16)
    X = rng.standard_normal((1, 6, 9, 11)).astype(np.float32)
    loss = backend.item(losses.mrf_term(backend, backend.asarray(X), losses.MRFTarget(backend, [X])))
    assert abs(loss) < 1e-5 * float(np.mean(X ** 2))
    shifted = backend.item(losses.mrf_term(backend, backend.asarray(X + 0.1), losses.MRFTarget(backend, [X])))
    assert shifted > 1e-3  # and it measures something


def test_argmax_one_hot_marks_each_columns_largest_value_and_passes_no_gradient(backend):
    scores = np.array([[0.1, 2.0, -1.0], [0.3, 1.0, -3.0], [0.2, 1.5, -2.0]], np.float32)
    want = np.array([[0, 1, 1], [1, 0, 0], [0, 0, 0]], np.float32)
    np.testing.assert_array_equal(backend.to_numpy(backend.argmax_one_hot(backend.asarray(scores))), want)
    # d/ds sum(one_hot(s) * s) is the one-hot itself: nothing flows back through the argmax
    _, grad = backend.loss_and_grad(lambda s: backend.sum(backend.argmax_one_hot(s) * s), backend.asarray(scores))
    np.testing.assert_allclose(backend.to_numpy(grad), want, atol=1e-7)


def test_mrf_blends_pool_each_styles_patches_in_proportion_to_its_weight(backend):
    rng = np.random.default_rng(17)
    a = rng.standard_normal((1, 4, 11, 11)).astype(np.float32)  # 5x5 = 25 patches
    b = rng.standard_normal((1, 4, 7, 9)).astype(np.float32)  # 3x4 = 12 patches
    patches_a, patches_b = losses.feature_patches(a), losses.feature_patches(b)
    for shares, counts in (((0.5, 0.5), (12, 12)), ((0.8, 0.2), (25, 6)), ((0.2, 0.8), (3, 12))):
        target = losses.MRFTarget(backend, [a, b], shares)
        pool = backend.to_numpy(target.filters)
        assert len(pool) == sum(counts), shares
        from_a = [any(np.array_equal(patch, other) for other in patches_a) for patch in pool]
        from_b = [any(np.array_equal(patch, other) for other in patches_b) for patch in pool]
        assert (sum(from_a), sum(from_b)) == counts, shares
