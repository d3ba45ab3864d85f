"""The d2l chapter's training loop, once per framework, written the way the chapter writes it.

These are references, not part of multistyle: the benchmark times them
against ``multistyle.transfer`` and the tests check that multistyle's first
step matches them.  Each takes NCHW float32 content and style arrays,
:data:`multistyle.vgg.Weights` and an epoch count, builds the framework's zoo
VGG-19 ``features`` cut after layer 28 (parameters left trainable, as in the
chapter), and returns ``(final image, total loss per epoch, seconds per
epoch)``.  Each reads the loss back as a float every epoch, so asynchronous
MXNet is timed like the others.

The chapter's three variants differ: the PyTorch one keeps torchvision's
in-place ReLUs (so it really uses ReLU outputs: multistyle's ``d2l-pytorch``
preset), the MXNet one uses learning rate 0.9 (``d2l-mxnet``), the Paddle one
computes ``d2l``; its ``X.numel()`` is a Tensor on Paddle 3, so sizes come
from the shape here.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

STYLE, CONTENT = [0, 5, 10, 19, 28], [25]
LR, DECAY, EVERY = 0.3, 0.8, 50


def extract_features(net, x):
    """The chapter's ``extract_features``: the same in every framework."""
    contents, styles = [], []
    for i in range(len(net)):
        x = net[i](x)
        if i in STYLE:
            styles.append(x)
        if i in CONTENT:
            contents.append(x)
    return contents, styles


def torch_loop(content_x, style_x, weights, epochs, lr=LR):
    import torch
    import torchvision

    net = torchvision.models.vgg19().features[:29]
    with torch.no_grad():
        for i, (w, b) in ((i, wb) for i, wb in weights.items() if i < len(net)):
            net[i].weight.copy_(torch.from_numpy(w))
            net[i].bias.copy_(torch.from_numpy(b))

    def gram(x):
        c, n = x.shape[1], x.numel() // x.shape[1]
        x = x.reshape((c, n))
        return torch.matmul(x, x.T) / (c * n)

    contents_y, _ = extract_features(net, torch.tensor(content_x))
    _, styles_y = extract_features(net, torch.tensor(style_x))
    styles_y_gram = [gram(y) for y in styles_y]
    x = torch.nn.Parameter(torch.tensor(content_x))
    trainer = torch.optim.Adam([x], lr=lr)
    scheduler = torch.optim.lr_scheduler.StepLR(trainer, EVERY, DECAY)
    times, losses = [], []
    for _ in range(epochs):
        start = time.perf_counter()
        trainer.zero_grad()
        contents_hat, styles_hat = extract_features(net, x)
        contents_l = [torch.square(h - y.detach()).mean() * 1 for h, y in zip(contents_hat, contents_y)]
        styles_l = [torch.square(gram(h) - g.detach()).mean() * 1e3 for h, g in zip(styles_hat, styles_y_gram)]
        tv_l = 0.5 * (torch.abs(x[:, :, 1:, :] - x[:, :, :-1, :]).mean()
                      + torch.abs(x[:, :, :, 1:] - x[:, :, :, :-1]).mean()) * 10
        loss = sum(10 * styles_l + contents_l + [tv_l])
        loss.backward()
        trainer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        times.append(time.perf_counter() - start)
    return x.detach().numpy(), losses, times


def mxnet_loop(content_x, style_x, weights, epochs, lr=0.9, epsilon_after_correction=False):
    """``epsilon_after_correction`` applies multistyle's Gluon epsilon scaling (see its MXNet backend)."""
    import mxnet as mx
    from mxnet import autograd, gluon, init, nd
    from mxnet.gluon.model_zoo import vision

    pretrained = vision.vgg19(pretrained=False)
    net = gluon.nn.Sequential()
    for i in range(29):
        net.add(pretrained.features[i])
    net.initialize(ctx=mx.cpu())
    net(nd.array(content_x))  # materialise deferred shapes before setting weights
    for i, (w, b) in ((i, wb) for i, wb in weights.items() if i < len(net)):
        net[i].weight.set_data(nd.array(w))
        net[i].bias.set_data(nd.array(b))

    def gram(x):
        c, n = x.shape[1], x.size // x.shape[1]
        x = x.reshape((c, n))
        return nd.dot(x, x.T) / (c * n)

    class SynthesizedImage(gluon.nn.Block):
        def __init__(self, shape, **kwargs):
            super().__init__(**kwargs)
            self.weight = self.params.get("weight", shape=shape)

        def forward(self):
            return self.weight.data()

    contents_y, _ = extract_features(net, nd.array(content_x))
    _, styles_y = extract_features(net, nd.array(style_x))
    styles_y_gram = [gram(y) for y in styles_y]
    gen = SynthesizedImage(content_x.shape)
    gen.initialize(init.Constant(nd.array(content_x)), ctx=mx.cpu(), force_reinit=True)
    trainer = gluon.Trainer(gen.collect_params(), "adam", {"learning_rate": lr})
    times, losses = [], []
    for epoch in range(epochs):
        start = time.perf_counter()
        with autograd.record():
            x = gen()
            contents_hat, styles_hat = extract_features(net, x)
            contents_l = [nd.square(h - y).mean() * 1 for h, y in zip(contents_hat, contents_y)]
            styles_l = [nd.square(gram(h) - g).mean() * 1e3 for h, g in zip(styles_hat, styles_y_gram)]
            tv_l = 0.5 * (nd.abs(x[:, :, 1:, :] - x[:, :, :-1, :]).mean()
                          + nd.abs(x[:, :, :, 1:] - x[:, :, :, :-1]).mean()) * 10
            loss = nd.add_n(*10 * styles_l) + nd.add_n(*contents_l) + tv_l
        loss.backward()
        if epsilon_after_correction:
            trainer.optimizer.epsilon = 1e-8 * (1 - trainer.optimizer.beta2 ** (epoch + 1)) ** 0.5
        trainer.step(1)
        if (epoch + 1) % EVERY == 0:
            trainer.set_learning_rate(trainer.learning_rate * DECAY)
        losses.append(float(loss.asscalar()))
        times.append(time.perf_counter() - start)
    return gen().asnumpy(), losses, times


def paddle_loop(content_x, style_x, weights, epochs, lr=LR):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ccache.*")
        import paddle
    from paddle import nn

    net = paddle.vision.models.vgg19(pretrained=False).features[:29]
    for i, (w, b) in ((i, wb) for i, wb in weights.items() if i < len(net)):
        net[i].weight.set_value(w)
        net[i].bias.set_value(b)

    def gram(x):
        c = x.shape[1]
        n = int(np.prod(x.shape)) // c  # the chapter's X.numel() is a Tensor in Paddle 3
        x = x.reshape((c, n))
        return paddle.matmul(x, x.T) / (c * n)

    class SynthesizedImage(nn.Layer):
        def __init__(self, shape):
            super().__init__()
            self.weight = self.create_parameter(shape=shape, dtype="float32")

        def forward(self):
            return self.weight

    contents_y, _ = extract_features(net, paddle.to_tensor(content_x))
    _, styles_y = extract_features(net, paddle.to_tensor(style_x))
    styles_y_gram = [gram(y) for y in styles_y]
    gen = SynthesizedImage(list(content_x.shape))
    gen.weight.set_value(content_x)
    scheduler = paddle.optimizer.lr.StepDecay(learning_rate=lr, gamma=DECAY, step_size=EVERY)
    trainer = paddle.optimizer.Adam(parameters=gen.parameters(), learning_rate=scheduler)
    times, losses = [], []
    for _ in range(epochs):
        start = time.perf_counter()
        x = gen()
        contents_hat, styles_hat = extract_features(net, x)
        contents_l = [paddle.square(h - y.detach()).mean() * 1 for h, y in zip(contents_hat, contents_y)]
        styles_l = [paddle.square(gram(h) - g.detach()).mean() * 1e3 for h, g in zip(styles_hat, styles_y_gram)]
        tv_l = 0.5 * (paddle.abs(x[:, :, 1:, :] - x[:, :, :-1, :]).mean()
                      + paddle.abs(x[:, :, :, 1:] - x[:, :, :, :-1]).mean()) * 10
        loss = sum(10 * styles_l + contents_l + [tv_l])
        loss.backward()
        trainer.step()
        trainer.clear_grad()
        scheduler.step()
        losses.append(float(loss.detach()))
        times.append(time.perf_counter() - start)
    return gen().numpy(), losses, times


LOOPS = {"torch": torch_loop, "mxnet": mxnet_loop, "paddle": paddle_loop}


def paddle_gram_as_written(x):
    """The Paddle chapter's ``gram`` line for line: its size is ``X.numel() // c``.  In Paddle 3 ``numel()``
    is an int64 Tensor, not an int (:func:`paddle_loop` takes sizes from the shape instead)."""
    import paddle

    num_channels, n = x.shape[1], x.numel() // x.shape[1]
    x = x.reshape((num_channels, n))
    return paddle.matmul(x, x.T) / (num_channels * n)


def paddle_gram_effect(job) -> dict:
    """What the chapter's Paddle ``gram`` does on ``job``'s conv1_1 features of the content (``multistyle
    explain``, row ``paddle_numel``): the type ``numel()`` returns, and the error the chapter's line raises or
    how far its Gram matrix is from multistyle's."""
    from multistyle import images, losses
    from multistyle.backend import get_backend
    from multistyle.errors import first_line
    from multistyle.objective import FeatureExtractor
    from multistyle.weightfiles import load_weights

    B = get_backend("paddle", "cpu")
    content = images.load_image(job["content"], "--content")
    x = images.to_input(images.resize_pixels(content, tuple(job["size"])))
    features = FeatureExtractor(B, load_weights(job["weights"], B, 0).arrays, ["conv1_1"])(B.asarray(x))["conv1_1"]
    n = features.numel() // features.shape[1]
    kind = f"{type(n).__module__}.{type(n).__name__}" + (f" ({n.dtype})" if hasattr(n, "dtype") else "")
    ours = B.to_numpy(losses.gram(B, features))
    try:
        chapter = B.to_numpy(paddle_gram_as_written(features))
    except Exception as exc:  # what Paddle 3 does with the chapter's line
        return {"numel_type": kind, "error": f"{type(exc).__name__}: {first_line(exc)}"}
    return {"numel_type": kind, "max_relative_difference": float(np.abs(chapter - ours).max() / np.abs(ours).max())}
