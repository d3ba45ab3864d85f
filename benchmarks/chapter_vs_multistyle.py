"""Seconds per iteration: the d2l chapter's own training loop vs ``multistyle.transfer``.

For each installed framework, in the same process and run, this times a
loop written the way the chapter writes it (the framework's zoo VGG-19
``features`` cut after layer 28, parameters left trainable, the ten-fold
style list, Adam with the chapter's step decay) and then multistyle on the
same synthetic weights, images and settings, and prints the ratio
multistyle / chapter (below 1 means multistyle is faster).  Medians exclude
warm-up iterations.  Every iteration reads the loss back as a Python float
in both loops, so asynchronous MXNet is timed fairly.

    python benchmarks/chapter_vs_multistyle.py --size 150x225 --epochs 12
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import numpy as np
from PIL import Image

import multistyle
from multistyle import images
from multistyle.backend import BackendUnavailable, load_backend_class
from multistyle.vgg import random_weights

STYLE, CONTENT = [0, 5, 10, 19, 28], [25]
LR, DECAY, EVERY = 0.3, 0.8, 50


def chapter_torch(content_x, style_x, weights, epochs):
    import torch
    import torchvision

    net = torchvision.models.vgg19().features[:29]
    with torch.no_grad():
        for i, (w, b) in weights.items():
            net[i].weight.copy_(torch.from_numpy(w))
            net[i].bias.copy_(torch.from_numpy(b))

    def extract(x):
        contents, styles = [], []
        for i in range(len(net)):
            x = net[i](x)
            if i in STYLE:
                styles.append(x)
            if i in CONTENT:
                contents.append(x)
        return contents, styles

    def gram(x):
        c, n = x.shape[1], x.numel() // x.shape[1]
        x = x.reshape((c, n))
        return torch.matmul(x, x.T) / (c * n)

    contents_y, _ = extract(torch.tensor(content_x))
    _, styles_y = extract(torch.tensor(style_x))
    styles_y_gram = [gram(y) for y in styles_y]
    x = torch.nn.Parameter(torch.tensor(content_x))
    trainer = torch.optim.Adam([x], lr=LR)
    scheduler = torch.optim.lr_scheduler.StepLR(trainer, EVERY, DECAY)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        trainer.zero_grad()
        contents_hat, styles_hat = extract(x)
        contents_l = [torch.square(h - y.detach()).mean() * 1 for h, y in zip(contents_hat, contents_y)]
        styles_l = [torch.square(gram(h) - g.detach()).mean() * 1e3 for h, g in zip(styles_hat, styles_y_gram)]
        tv_l = 0.5 * (torch.abs(x[:, :, 1:, :] - x[:, :, :-1, :]).mean()
                      + torch.abs(x[:, :, :, 1:] - x[:, :, :, :-1]).mean()) * 10
        loss = sum(10 * styles_l + contents_l + [tv_l])
        loss.backward()
        trainer.step()
        scheduler.step()
        float(loss.detach())
        times.append(time.perf_counter() - start)
    return times


def chapter_mxnet(content_x, style_x, weights, epochs):
    import mxnet as mx
    from mxnet import autograd, gluon, init, nd
    from mxnet.gluon.model_zoo import vision

    pretrained = vision.vgg19(pretrained=False)
    net = gluon.nn.Sequential()
    for i in range(29):
        net.add(pretrained.features[i])
    net.initialize(ctx=mx.cpu())
    net(nd.array(content_x))  # materialise deferred shapes before setting weights
    for i, (w, b) in weights.items():
        net[i].weight.set_data(nd.array(w))
        net[i].bias.set_data(nd.array(b))

    def extract(x):
        contents, styles = [], []
        for i in range(len(net)):
            x = net[i](x)
            if i in STYLE:
                styles.append(x)
            if i in CONTENT:
                contents.append(x)
        return contents, styles

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

    contents_y, _ = extract(nd.array(content_x))
    _, styles_y = extract(nd.array(style_x))
    styles_y_gram = [gram(y) for y in styles_y]
    gen = SynthesizedImage(content_x.shape)
    gen.initialize(init.Constant(nd.array(content_x)), ctx=mx.cpu(), force_reinit=True)
    trainer = gluon.Trainer(gen.collect_params(), "adam", {"learning_rate": LR})
    times = []
    for epoch in range(epochs):
        start = time.perf_counter()
        with autograd.record():
            x = gen()
            contents_hat, styles_hat = extract(x)
            contents_l = [nd.square(h - y).mean() * 1 for h, y in zip(contents_hat, contents_y)]
            styles_l = [nd.square(gram(h) - g).mean() * 1e3 for h, g in zip(styles_hat, styles_y_gram)]
            tv_l = 0.5 * (nd.abs(x[:, :, 1:, :] - x[:, :, :-1, :]).mean()
                          + nd.abs(x[:, :, :, 1:] - x[:, :, :, :-1]).mean()) * 10
            loss = nd.add_n(*10 * styles_l) + nd.add_n(*contents_l) + tv_l
        loss.backward()
        trainer.step(1)
        if (epoch + 1) % EVERY == 0:
            trainer.set_learning_rate(trainer.learning_rate * DECAY)
        float(loss.asscalar())
        times.append(time.perf_counter() - start)
    return times


def chapter_paddle(content_x, style_x, weights, epochs):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ccache.*")
        import paddle
    from paddle import nn

    paddle.base.core.set_num_threads(len(os.sched_getaffinity(0)))  # as multistyle does: a fair comparison
    net = paddle.vision.models.vgg19(pretrained=False).features[:29]
    for i, (w, b) in weights.items():
        net[i].weight.set_value(w)
        net[i].bias.set_value(b)

    def extract(x):
        contents, styles = [], []
        for i in range(len(net)):
            x = net[i](x)
            if i in STYLE:
                styles.append(x)
            if i in CONTENT:
                contents.append(x)
        return contents, styles

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

    contents_y, _ = extract(paddle.to_tensor(content_x))
    _, styles_y = extract(paddle.to_tensor(style_x))
    styles_y_gram = [gram(y) for y in styles_y]
    gen = SynthesizedImage(list(content_x.shape))
    gen.weight.set_value(content_x)
    scheduler = paddle.optimizer.lr.StepDecay(learning_rate=LR, gamma=DECAY, step_size=EVERY)
    trainer = paddle.optimizer.Adam(parameters=gen.parameters(), learning_rate=scheduler)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        x = gen()
        contents_hat, styles_hat = extract(x)
        contents_l = [paddle.square(h - y.detach()).mean() * 1 for h, y in zip(contents_hat, contents_y)]
        styles_l = [paddle.square(gram(h) - g.detach()).mean() * 1e3 for h, g in zip(styles_hat, styles_y_gram)]
        tv_l = 0.5 * (paddle.abs(x[:, :, 1:, :] - x[:, :, :-1, :]).mean()
                      + paddle.abs(x[:, :, :, 1:] - x[:, :, :, :-1]).mean()) * 10
        loss = sum(10 * styles_l + contents_l + [tv_l])
        loss.backward()
        trainer.step()
        trainer.clear_grad()
        scheduler.step()
        float(loss.detach())
        times.append(time.perf_counter() - start)
    return times


CHAPTER = {"torch": chapter_torch, "mxnet": chapter_mxnet, "paddle": chapter_paddle}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="torch,mxnet,paddle")
    parser.add_argument("--size", default="150x225", help="HxW")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    examples = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples")
    content_image = images.load_image(os.path.join(examples, "content.jpg"))
    style_image = images.load_image(os.path.join(examples, "style.jpg"))
    content = images.preprocess(content_image, (height, width))
    style = images.preprocess(style_image, (height, width))
    weights = random_weights(0, last=28)
    print(f"size {height}x{width}, {args.epochs} iterations, median after {args.warmup} warm-up")
    print(f"{'backend':8} {'chapter s/it':>13} {'multistyle s/it':>16} {'ratio':>7}")
    for name in args.backends.split(","):
        try:
            load_backend_class(name)
        except BackendUnavailable as exc:
            print(f"{name:8} skipped: {exc}")
            continue
        chapter = statistics.median(CHAPTER[name](content, style, weights, args.epochs)[args.warmup:])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", multistyle.UntrainedWeightsWarning)
            result = multistyle.transfer(
                content_image, style_image, backend=name, device="cpu",
                weights="random:0", size=(height, width), epochs=args.epochs)
        ours = statistics.median(r["seconds"] for r in result.history[args.warmup:])
        print(f"{name:8} {chapter:13.4f} {ours:16.4f} {ours / chapter:7.2f}")


if __name__ == "__main__":
    main()
