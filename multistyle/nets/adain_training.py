"""Training AdaIN's decoder (``multistyle train --arbitrary``) on any backend, as Huang & Belongie train it.

One iteration: a batch of content crops and a batch of style crops (``--contents`` and ``--styles``, each
drawn reproducibly as :class:`multistyle.training.Photos` draws photos, from their own streams of the
seed) go through the frozen encoder; each content's ``relu4_1`` takes its style's statistics
(:func:`.adain.adain`), the decoder turns that into a picture, and the encoder reads the picture again.
The loss is the paper's (and the public port's):

* content: the mean squared error between the picture's ``relu4_1`` and the AdaIN target;
* style: at ``relu1_1``, ``relu2_1``, ``relu3_1`` and ``relu4_1``, the mean squared error between the
  picture's and the style's per-channel means, plus that between their standard deviations (the port's
  ``calc_mean_std``: the unbiased variance plus 1e-5);

weighted 1 and 10 unless ``--content-weight`` / ``--style-weight`` say otherwise.  Only the decoder's
parameters take Adam's steps (:class:`multistyle.optim.ParameterAdam`), at the port's rate
``lr / (1 + 5e-5 · iteration)``.  Crops are multiples of 8 pixels (the encoder pools three times).
Checkpoints, ``resume``, progress and Ctrl-C are :func:`multistyle.training.iterate`'s.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from .. import images, memory
from ..backend import Backend, get_backend
from ..errors import MultistyleError
from ..optim import ParameterAdam
from ..training import Callback, Photos, TrainOptions, checkpoint_path, iterate, resumed
from . import adain
from .arbitrary import ArbitraryNetwork, describe_encoder, load_arbitrary, load_encoder

CONTENT_WEIGHT = 1.0  # the port's defaults
STYLE_WEIGHT = 10.0
LR = 1e-4
LR_DECAY = 5e-5  # lr / (1 + LR_DECAY x iteration), the port's schedule
STYLE_STREAM = (1,)  # the style crops' own stream of the seed (Photos.batch)


class ArbitraryLoss:
    """The loss of one training batch: the frozen encoder's parameters, the weights, the terms."""

    def __init__(self, B: Backend, encoder: Mapping[str, Any], content_weight: float = CONTENT_WEIGHT,
                 style_weight: float = STYLE_WEIGHT) -> None:
        self.B, self.encoder = B, dict(encoder)
        self.content_weight, self.style_weight = content_weight, style_weight

    def terms(self, params: Mapping[str, Any], contents: Any, styles: Any) -> Dict[str, Any]:
        """The weighted terms (``content``, ``style``, ``total``) of the decoder ``params`` on batches of content
        and style crops (NCHW pixels 0..255, as many of each)."""
        target, style = self.targets(contents, styles)
        return self.picture_terms(adain.decode(self.B, params, target), target, style)

    def targets(self, contents: Any, styles: Any) -> Tuple[Any, Dict[str, Any]]:
        """The AdaIN targets (``relu4_1``, the decoder's input) of content crops with style crops (NCHW pixels
        0..255, as many of each), and the styles' features at the loss's layers."""
        B = self.B
        content = adain.encode(B, self.encoder, B.into_layers(contents / 255.0))[adain.LAST]
        style = adain.encode(B, self.encoder, B.into_layers(styles / 255.0), adain.STYLE_LAYERS)
        return B.stop_gradient(adain.adain(B, content, style[adain.LAST])), style

    def picture_terms(self, picture: Any, target: Any, style: Mapping[str, Any]) -> Dict[str, Any]:
        """The weighted terms of pictures (the layers' layout, RGB in [0, 1]) against :meth:`targets`: what the
        decoder is trained on, and what any other picture of the same pair (the optimisation's) scores."""
        B = self.B
        seen = adain.encode(B, self.encoder, picture, adain.STYLE_LAYERS)
        content_term = B.mean(B.square(seen[adain.LAST] - target))
        style_term = None
        for name in adain.STYLE_LAYERS:
            mean, std = adain.statistics(B, adain.rows(B, seen[name])[0])
            style_mean, style_std = adain.statistics(B, adain.rows(B, style[name])[0])
            term = B.mean(B.square(mean - B.stop_gradient(style_mean))) + \
                B.mean(B.square(std - B.stop_gradient(style_std)))
            style_term = term if style_term is None else style_term + term
        out = {"content": self.content_weight * content_term, "style": self.style_weight * style_term}
        out["total"] = out["content"] + out["style"]
        return out


def check_options(options: TrainOptions) -> None:
    """:class:`TrainOptions` checked, and AdaIN's own rule: crops a multiple of 8 pixels."""
    options.check()
    if options.size % 8:
        raise MultistyleError(f"--size: AdaIN's training crops are a multiple of 8 pixels (its encoder pools three "
                              f"times), got {options.size}; try {max(8, options.size // 8 * 8)}")


def check_memory(limit: Optional[int], backend: str, device: str, options: TrainOptions) -> memory.Prediction:
    """The predicted peak of the run; refused, before any work, past ``limit`` bytes, naming a size that fits."""
    predicted = memory.predict_arbitrary_training(backend, device, options.size, options.batch_size)
    if limit is None or predicted.peak <= limit:
        return predicted
    fits = [size for size in range(options.size - 8, 7, -8)
            if memory.predict_arbitrary_training(backend, device, size, options.batch_size).peak <= limit]
    hint = (f"use --size {fits[0]} or a smaller --batch-size, or raise --max-memory" if fits else
            "no crop size fits at this batch size; lower --batch-size or raise --max-memory")
    raise MultistyleError(f"--max-memory: training needs about {memory.format_bytes(predicted.peak)} at --size "
                          f"{options.size} --batch-size {options.batch_size}, more than {memory.format_bytes(limit)}; "
                          f"{hint}")


def train_arbitrary(contents: str, styles: str, *, output: Optional[str] = None,
                    backend: Union[str, Backend] = "torch", device: str = "auto", weights: str = "imagenet",
                    options: Optional[TrainOptions] = None, content_weight: float = CONTENT_WEIGHT,
                    style_weight: float = STYLE_WEIGHT, lr_decay: float = LR_DECAY, seed: int = 0,
                    resume: bool = False, callback: Optional[Callback] = None, progress: bool = False,
                    max_pixels: int = images.DEFAULT_MAX_PIXELS, max_memory: Optional[int] = None,
                    **fields: Any) -> ArbitraryNetwork:
    """Train an AdaIN decoder on the photos of ``contents`` and the paintings of ``styles``; return the network.

    ``options`` (or keywords ``size``, ``batch_size``, ``iterations``, ``lr``, ``checkpoint_every``) shape the
    run; ``lr`` defaults to the port's 1e-4.  ``weights`` is the encoder: ``imagenet`` (the backend's model
    zoo's VGG-19), a VGG-19 file, or a normalised VGG-19 (``vgg_normalised.pth``).  With ``output`` (a
    ``.safetensors`` path) the network, encoder and decoder, is written there at the end, and a checkpoint
    beside it every ``checkpoint_every`` iterations; ``resume`` continues from that checkpoint.
    """
    unknown = sorted(set(fields) - set(TrainOptions.__dataclass_fields__))
    if unknown:
        raise TypeError(f"train_arbitrary() got unknown keywords {unknown}")
    fields.setdefault("lr", LR if options is None else options.lr)
    options = replace(options or TrainOptions(), **fields)
    check_options(options)
    for option, value in (("--content-weight", content_weight), ("--style-weight", style_weight)):
        if not value >= 0:
            raise MultistyleError(f"{option}: expected a number >= 0, got {value!r}")
    if output is not None:
        from .files import StyleNetwork

        StyleNetwork.check_output(output)
    elif resume:
        raise MultistyleError("--resume: needs --output, beside which the checkpoint is kept")
    photos = Photos(contents, options.size, max_pixels)
    paintings = Photos(styles, options.size, max_pixels, option="--styles", what="style images")
    B = get_backend(backend, device) if isinstance(backend, str) else backend
    check_memory(max_memory, B.name, B.device, options)
    encoder, label = load_encoder(weights, B)
    metadata = {
        "encoder": describe_encoder(encoder, label),
        "settings": json.dumps({"content_weight": content_weight, "style_weight": style_weight,
                                "style_layers": list(adain.STYLE_LAYERS)}, sort_keys=True),
        "training": json.dumps({"size": options.size, "batch_size": options.batch_size, "lr": options.lr,
                                "lr_decay": lr_decay, "photos": photos.fingerprint(),
                                "styles": paintings.fingerprint(), "seed": seed}, sort_keys=True),
    }
    network, start = ArbitraryNetwork.fresh(encoder, label, seed), 0
    adam = ParameterAdam(B, options.lr)
    ckpt = checkpoint_path(output) if output is not None else None
    if resume:
        network, start = resumed(ckpt, metadata, options,  # type: ignore[arg-type]
                                 lambda path, option: load_arbitrary(path, option=option))
        adam.restore(network.optimizer)
    loss = ArbitraryLoss(B, B.parameters(encoder), content_weight, style_weight)
    step = B.compile_gradients(loss.terms)
    params = B.parameters({name: value for name, value in network.params.items() if name.startswith("decoder.")})

    def one_step(iteration: int) -> Dict[str, float]:
        nonlocal params
        batch = B.asarray(photos.batch(iteration - 1, options.batch_size, seed))
        style_batch = B.asarray(paintings.batch(iteration - 1, options.batch_size, seed, STYLE_STREAM))
        terms, grads = step(params, batch, style_batch)
        adam.lr = options.lr / (1.0 + lr_decay * (iteration - 1))
        params = adam.step(params, grads)
        return {key: B.item(value) for key, value in terms.items()}

    def snapshot(iteration: int, with_optimizer: bool) -> ArbitraryNetwork:
        decoder = {name: B.to_numpy(value) for name, value in params.items()}
        return ArbitraryNetwork({**encoder, **decoder}, dict(metadata, iterations=str(iteration), backend=B.name),
                                adam.state() if with_optimizer else None)

    return iterate(options, start, one_step, snapshot, ckpt, output, progress, callback)  # type: ignore[no-any-return]
