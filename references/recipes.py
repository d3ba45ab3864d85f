"""The two pixel-space recipes as their own code writes them, in PyTorch.

* :func:`tutorial_loop` -- the PyTorch tutorial "Neural Transfer Using
  PyTorch": a ``Normalization`` module first, then torchvision's VGG-19 layers
  named by counting convolutions (``conv_1`` ...), out-of-place ReLUs, loss
  modules inserted after ``conv_4`` (content) and ``conv_1`` ... ``conv_5``
  (style), the network cut after the last of them; Gram ``F F^T / (a b c d)``;
  ``torch.optim.LBFGS([input_img])`` with its defaults (``max_iter=20``: one
  ``step`` is up to twenty iterations); a closure that clamps the image to
  [0, 1] in place before evaluating; ``while run[0] <= num_steps``; one last
  clamp.
* :func:`viblo_loop` -- the Viblo article's loop over the same model:
  ``torch.optim.RMSprop([input_img])`` with its defaults; each step clamps,
  evaluates, back-propagates and steps; one last clamp.

``tests/backends/test_recipes.py`` checks that multistyle's ``pytorch-tutorial`` and
``viblo`` presets on the torch backend compute what these loops compute.
Inputs are NCHW float32 pixel arrays in [0, 1]; weights map convolution
indices of ``features`` to ``(weight, bias)`` arrays.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

CONTENT_LAYERS = ["conv_4"]
STYLE_LAYERS = ["conv_1", "conv_2", "conv_3", "conv_4", "conv_5"]
STYLE_WEIGHT, CONTENT_WEIGHT = 1000000, 1


def _model(content: np.ndarray, style: np.ndarray, weights: Dict[int, Tuple[np.ndarray, np.ndarray]]):
    import torch
    import torchvision
    from torch import nn
    from torch.nn import functional as F

    class ContentLoss(nn.Module):
        def __init__(self, target):
            super().__init__()
            self.target = target.detach()

        def forward(self, input):
            self.loss = F.mse_loss(input, self.target)
            return input

    def gram_matrix(input):
        a, b, c, d = input.size()
        features = input.view(a * b, c * d)
        G = torch.mm(features, features.t())
        return G.div(a * b * c * d)

    class StyleLoss(nn.Module):
        def __init__(self, target_feature):
            super().__init__()
            self.target = gram_matrix(target_feature).detach()

        def forward(self, input):
            G = gram_matrix(input)
            self.loss = F.mse_loss(G, self.target)
            return input

    class Normalization(nn.Module):
        def __init__(self, mean, std):
            super().__init__()
            self.mean = torch.tensor(mean).view(-1, 1, 1)
            self.std = torch.tensor(std).view(-1, 1, 1)

        def forward(self, img):
            return (img - self.mean) / self.std

    cnn = torchvision.models.vgg19().features.eval()
    with torch.no_grad():
        for index, (w, b) in weights.items():
            if index < len(cnn):
                cnn[index].weight.copy_(torch.from_numpy(w))
                cnn[index].bias.copy_(torch.from_numpy(b))
    content_img, style_img = torch.tensor(content), torch.tensor(style)
    normalization = Normalization([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    content_losses, style_losses = [], []
    model = nn.Sequential(normalization)
    i = 0
    for layer in cnn.children():
        if isinstance(layer, nn.Conv2d):
            i += 1
            name = f"conv_{i}"
        elif isinstance(layer, nn.ReLU):
            name = f"relu_{i}"
            layer = nn.ReLU(inplace=False)
        elif isinstance(layer, nn.MaxPool2d):
            name = f"pool_{i}"
        model.add_module(name, layer)
        if name in CONTENT_LAYERS:
            target = model(content_img).detach()
            content_loss = ContentLoss(target)
            model.add_module(f"content_loss_{i}", content_loss)
            content_losses.append(content_loss)
        if name in STYLE_LAYERS:
            target_feature = model(style_img).detach()
            style_loss = StyleLoss(target_feature)
            model.add_module(f"style_loss_{i}", style_loss)
            style_losses.append(style_loss)
    for i in range(len(model) - 1, -1, -1):
        if isinstance(model[i], (ContentLoss, StyleLoss)):
            break
    model = model[: (i + 1)]
    return model, content_losses, style_losses, content_img


def tutorial_loop(content: np.ndarray, style: np.ndarray, weights, num_steps: int) -> Tuple[np.ndarray, List[float]]:
    """The tutorial's ``run_style_transfer``; returns the image and the loss of every evaluation."""
    import torch
    from torch import optim

    model, content_losses, style_losses, content_img = _model(content, style, weights)
    input_img = content_img.clone()
    input_img.requires_grad_(True)
    model.eval()
    model.requires_grad_(False)
    optimizer = optim.LBFGS([input_img])
    losses: List[float] = []
    run = [0]
    while run[0] <= num_steps:

        def closure():
            with torch.no_grad():
                input_img.clamp_(0, 1)
            optimizer.zero_grad()
            model(input_img)
            style_score = sum(sl.loss for sl in style_losses) * STYLE_WEIGHT
            content_score = sum(cl.loss for cl in content_losses) * CONTENT_WEIGHT
            loss = style_score + content_score
            loss.backward()
            run[0] += 1
            losses.append(loss.item())
            return style_score + content_score

        optimizer.step(closure)
    with torch.no_grad():
        input_img.clamp_(0, 1)
    return input_img.detach().numpy(), losses


def viblo_loop(content: np.ndarray, style: np.ndarray, weights, steps: int) -> Tuple[np.ndarray, List[float]]:
    """The Viblo article's loop: RMSprop with torch's defaults on the tutorial's model."""
    import torch
    from torch import optim

    model, content_losses, style_losses, content_img = _model(content, style, weights)
    input_img = content_img.clone().requires_grad_(True)
    model.requires_grad_(False)
    optimizer = optim.RMSprop([input_img])
    losses: List[float] = []
    for _ in range(steps):
        with torch.no_grad():
            input_img.clamp_(0, 1)
        optimizer.zero_grad()
        model(input_img)
        loss = (sum(sl.loss for sl in style_losses) * STYLE_WEIGHT
                + sum(cl.loss for cl in content_losses) * CONTENT_WEIGHT)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        input_img.clamp_(0, 1)
    return input_img.detach().numpy(), losses
