"""Training a style network (Johnson et al. 2016) against multistyle's VGG-19 loss, on any backend.

One iteration: a batch of square crops of the training photos goes through the network
(:mod:`multistyle.nets.transformer`), and the network's parameters take one Adam step
(:class:`multistyle.optim.ParameterAdam`) down the loss of :class:`multistyle.objective.StyleLoss`'s
settings, per image of the batch:

* content: the VGG-19 features of each output against those of its own photo;
* style: each output's Gram matrices against the style image's (blended, for several styles);
* total variation of the output;

each weighted as the preset and the options say.  The network's output (pixels 0..255) enters the loss
as ``output / 255`` in the preset's domain.

What a long job needs:

* **The same batches on every run.**  Sample ``k = iteration x batch + j`` is photo ``perm_e[k mod n]`` of
  the photos' permutation ``perm_e`` of epoch ``e = k div n`` (seeded by ``(seed, e)``), cropped at an
  offset seeded by ``(seed, e, k mod n)``.  A photo larger than the crop is first scaled so that its
  shorter side is the crop's; a smaller one is refused.
* **Checkpoints** (``<output stem>.checkpoint.safetensors``, written atomically every
  ``checkpoint_every`` iterations and at the end) hold the parameters, Adam's state and the iteration, so
  that ``resume`` continues to the same parameters as an uninterrupted run.  A checkpoint made with other
  settings, another style or another loss network is refused.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

import numpy as np
from PIL import Image

from . import images, interrupts, memory
from .backend import Backend, get_backend
from .errors import MultistyleError
from .losses import content_loss, style_term, tv_loss
from .nets import transformer
from .nets.files import StyleNetwork
from .objective import StyleLoss, sum_terms
from .optim import ParameterAdam
from .progress import ProgressBar
from .settings import ResolvedSettings, Settings, settings_dict
from .vgg import deepest_index
from .weightfiles import LoadedWeights, checksum, load_weights

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
CACHE_BYTES = 512 * 2 ** 20  # photos kept in memory once scaled (a few thousand 256-pixel crops' sources)
Callback = Callable[[Dict[str, float]], None]


@dataclass(frozen=True)
class TrainOptions:
    """What a training run does besides the loss's settings (``multistyle train``'s own options)."""

    size: int = 256
    batch_size: int = 4
    iterations: int = 2000
    lr: float = 1e-3
    width: int = transformer.DEFAULT_WIDTH
    checkpoint_every: int = 500

    def check(self) -> None:
        for name, value, least in (("--size", self.size, 16), ("--batch-size", self.batch_size, 1),
                                   ("--iterations", self.iterations, 1), ("--width", self.width, 1),
                                   ("--checkpoint-every", self.checkpoint_every, 0)):
            if value < least:
                raise MultistyleError(f"{name}: expected at least {least}, got {value}")
        if not self.lr > 0:
            raise MultistyleError(f"--lr: expected a positive learning rate, got {self.lr:g}")


def checkpoint_path(output: str) -> str:
    """Where a training run to ``output`` keeps its checkpoint: beside it, ``<stem>.checkpoint.safetensors``."""
    stem = output[: -len(".safetensors")] if output.lower().endswith(".safetensors") else output
    return stem + ".checkpoint.safetensors"


class Photos:
    """The training photos of a folder (or a glob pattern), checked up front, cropped reproducibly."""

    def __init__(self, source: str, size: int, max_pixels: int = images.DEFAULT_MAX_PIXELS,
                 option: str = "--contents", what: str = "training photos") -> None:
        self.size, self.max_pixels, self.option = size, max_pixels, option
        if os.path.isdir(source):
            paths = [os.path.join(source, name) for name in sorted(os.listdir(source))]
        else:
            paths = sorted(glob.glob(source)) if glob.has_magic(source) else []
            if not paths and not os.path.exists(source):
                raise MultistyleError(f"{option}: no such folder: {source!r}")
        self.paths = [path for path in paths if os.path.isfile(path) and path.lower().endswith(PHOTO_SUFFIXES)]
        if not self.paths:
            raise MultistyleError(f"{option}: no photos in {source!r} (looked for {', '.join(PHOTO_SUFFIXES)} "
                                  f"files); point it at a folder of {what}")
        for path in self.paths:
            try:
                with Image.open(path) as image:
                    width, height = image.size
            except Exception as exc:  # not an image, truncated header
                raise MultistyleError(f"{option}: cannot read {path!r} as an image ({type(exc).__name__}); "
                                      f"remove it from the folder") from None
            if min(width, height) < size:
                raise MultistyleError(f"{option}: {path} is {height}x{width}, smaller than the {size}x{size} "
                                      f"crop; remove it or lower --size")
        self._cache: Dict[str, np.ndarray] = {}
        self._cached_bytes = 0

    def __len__(self) -> int:
        return len(self.paths)

    def fingerprint(self) -> str:
        """SHA-256 of the photos' names and sizes on disk (what a resumed run must see again)."""
        digest = hashlib.sha256()
        for path in self.paths:
            digest.update(f"{os.path.basename(path)}:{os.path.getsize(path)};".encode())
        return digest.hexdigest()

    def scaled(self, index: int) -> np.ndarray:
        """Photo ``index`` as ``(H, W, 3)`` uint8, its shorter side scaled down to the crop's."""
        path = self.paths[index]
        if path in self._cache:
            return self._cache[path]
        image = images.load_image(path, self.option, self.max_pixels)
        width, height = image.size
        scale = self.size / min(width, height)
        if scale < 1:
            image = image.resize((max(self.size, round(width * scale)), max(self.size, round(height * scale))),
                                 Image.BILINEAR)
        pixels = np.asarray(image, dtype=np.uint8)
        if self._cached_bytes + pixels.nbytes <= CACHE_BYTES:
            self._cache[path] = pixels
            self._cached_bytes += pixels.nbytes
        return pixels

    def batch(self, iteration: int, batch_size: int, seed: int, stream: Sequence[int] = ()) -> np.ndarray:
        """The batch of ``iteration``: ``(batch_size, 3, size, size)`` float32 pixels 0..255.  ``stream`` keys
        another sequence of the same seed (the style images of AdaIN's training draw their own)."""
        out = np.empty((batch_size, 3, self.size, self.size), np.float32)
        n = len(self.paths)
        for j in range(batch_size):
            k = iteration * batch_size + j
            epoch, position = divmod(k, n)
            index = int(np.random.default_rng([seed, *stream, epoch]).permutation(n)[position])
            pixels = self.scaled(index)
            rng = np.random.default_rng([seed, *stream, epoch, position])
            top = int(rng.integers(0, pixels.shape[0] - self.size + 1))
            left = int(rng.integers(0, pixels.shape[1] - self.size + 1))
            crop = pixels[top:top + self.size, left:left + self.size]
            out[j] = crop.transpose(2, 0, 1)
        return out


class TrainingLoss:
    """The loss of one training batch on one backend: :class:`StyleLoss`'s layers, weights and style targets,
    per image of the batch."""

    def __init__(self, backend: Backend, weights: LoadedWeights, settings: ResolvedSettings,
                 style_pixels: Sequence[np.ndarray]) -> None:
        self.B, self.settings = backend, settings
        pixel = settings.pixel_domain
        style_xs = [images.to_input(p, normalize=not pixel) for p in style_pixels]
        # StyleLoss computes the blended style targets and builds the network; its content target (the first
        # style, here) is not used: each photo of a batch is its own.
        self.objective = StyleLoss(backend, weights.arrays, settings, style_xs[0], style_xs)
        self.mean = backend.asarray(images.RGB_MEAN.reshape(1, 3, 1, 1))
        self.std = backend.asarray(images.RGB_STD.reshape(1, 3, 1, 1))
        self.pixel = pixel

    def domain(self, pixels: Any) -> Any:
        """Pixels 0..255 (NCHW) as the preset's input: [0, 1], or normalised by ImageNet's mean and std."""
        x = pixels / 255.0
        return x if self.pixel else (x - self.mean) / self.std

    def terms(self, params: Mapping[str, Any], batch: Any) -> Dict[str, Any]:
        """The weighted loss terms (``content``, ``style``, ``tv``, ``total``) of ``params`` on ``batch``."""
        B, settings, objective = self.B, self.settings, self.objective
        size = B.shape(batch)
        out = B.out_of_layers(transformer.forward(B, params, B.into_layers(batch)))
        out = out[:, :, : size[2], : size[3]]  # a size not divisible by 4 comes back up to 3 pixels larger
        y = self.domain(out)
        features = objective.features(y)
        targets = objective.features(self.domain(batch))
        last = B.features_channels_last
        content = sum_terms([_scaled(weight, content_loss(B, features[name], B.stop_gradient(targets[name])))
                             for name, weight in objective.content])
        per_image = []
        for i in range(size[0]):
            per_image.append(sum_terms([_scaled(weight, style_term(B, settings.style_loss, features[name][i:i + 1],
                                                                   target, last))
                                        for (name, weight), target in zip(objective.style, objective.style_targets)]))
        style = sum_terms(per_image) / float(size[0])
        terms = {"content": settings.content_weight * content, "style": settings.style_weight * style}
        terms["total"] = terms["content"] + terms["style"]
        if settings.tv_weight:
            terms["tv"] = settings.tv_weight * tv_loss(B, y)
            terms["total"] = terms["total"] + terms["tv"]
        return terms


def _scaled(weight: float, term: Any) -> Any:
    return term if weight == 1 else weight * term


def _style_pixels(style: Union[str, Image.Image], size: int, scale: Optional[float], max_pixels: int) -> np.ndarray:
    image = style if isinstance(style, Image.Image) else images.load_image(os.fspath(style), "--style", max_pixels)
    shape = images.fit_long_edge(image.size, max(16, round((scale or 1.0) * size)))
    if min(shape) < 16:  # VGG-19's fourth pooling would leave nothing of it
        raise MultistyleError(f"--size: the style image would be {shape[0]}x{shape[1]} at this size, smaller than "
                              f"16 pixels; use a larger --size or --style-scale")
    return images.resize_pixels(image, shape)


def _file_hash(style: Union[str, Image.Image]) -> str:
    if isinstance(style, Image.Image):
        return hashlib.sha256(np.asarray(style.convert("RGB")).tobytes()).hexdigest()
    with open(style, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _record(iteration: int, terms: Mapping[str, float], seconds: float) -> Dict[str, float]:
    return {"epoch": float(iteration), "iteration": float(iteration), "total": terms["total"],
            "content": terms["content"], "style": terms["style"], "tv": terms.get("tv", 0.0), "seconds": seconds}


def train(style: Union[str, Image.Image, Sequence[Union[str, Image.Image]]], contents: str, *,
          output: Optional[str] = None, backend: Union[str, Backend] = "torch", device: str = "auto",
          weights: Union[str, LoadedWeights] = "imagenet", options: Optional[TrainOptions] = None,
          settings: Optional[Union[Settings, ResolvedSettings]] = None, resume: bool = False,
          callback: Optional[Callback] = None, progress: bool = False,
          max_pixels: int = images.DEFAULT_MAX_PIXELS, max_memory: Optional[int] = None,
          **overrides: Any) -> StyleNetwork:
    """Train a style network for ``style`` on the photos of ``contents`` and return it.

    ``options`` (or keywords ``size``, ``batch_size``, ``iterations``, ``lr``, ``width``,
    ``checkpoint_every``) shape the run; any field of :class:`Settings` may be passed as a keyword too
    (``preset``, ``style_weight``, ``style_layers``...).  With ``output`` (a ``.safetensors`` path) the
    network is written there at the end, and a checkpoint beside it every ``checkpoint_every`` iterations;
    ``resume`` continues from that checkpoint.  ``callback(record)`` is called after every iteration with
    its losses.  ``max_memory`` (bytes) refuses, before any work, a run predicted to need more
    (:func:`multistyle.memory.predict_training`).
    """
    train_fields = {name: overrides.pop(name) for name in list(overrides) if name in TrainOptions.__dataclass_fields__}
    options = replace(options or TrainOptions(), **train_fields)
    options.check()
    known = set(Settings.__dataclass_fields__)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"train() got unknown settings {unknown}; known: {sorted(known)} and "
                        f"{sorted(TrainOptions.__dataclass_fields__)}")
    resolved = (settings if isinstance(settings, ResolvedSettings) else
                replace(settings or Settings(), **overrides).resolved())
    if isinstance(settings, ResolvedSettings) and overrides:
        raise TypeError("train(): settings already resolved; pass overrides in a Settings instead")
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    if output is not None:
        StyleNetwork.check_output(output)
    elif resume:
        raise MultistyleError("--resume: needs --output, beside which the checkpoint is kept")
    photos = Photos(contents, options.size, max_pixels)
    style_pixels = [_style_pixels(one, options.size, resolved.style_scale, max_pixels) for one in styles]
    B = get_backend(backend, device) if isinstance(backend, str) else backend
    check_memory(max_memory, B.name, B.device, options, resolved.layers)
    loaded = weights if isinstance(weights, LoadedWeights) else load_weights(weights, B, deepest_index(resolved.layers))
    metadata = {
        "style_sha256": ",".join(_file_hash(one) for one in styles),
        "loss_network": f"VGG-19 {loaded.label} sha256:{checksum(loaded.arrays)[:16]}",
        "settings": json.dumps(settings_dict(resolved), sort_keys=True),
        "training": json.dumps({"size": options.size, "batch_size": options.batch_size, "lr": options.lr,
                                "width": options.width, "photos": photos.fingerprint(), "seed": resolved.seed},
                               sort_keys=True),
    }
    network, start = StyleNetwork.fresh(options.width, resolved.seed), 0
    adam = ParameterAdam(B, options.lr)
    ckpt = checkpoint_path(output) if output is not None else None
    if resume:
        network, start = resumed(ckpt, metadata, options, StyleNetwork.load)  # type: ignore[arg-type]
        adam.restore(network.optimizer)
    loss = TrainingLoss(B, loaded, resolved, style_pixels)
    step = B.compile_gradients(loss.terms)
    params = B.parameters(network.params)

    def one_step(iteration: int) -> Dict[str, float]:
        nonlocal params
        batch = B.asarray(photos.batch(iteration - 1, options.batch_size, resolved.seed))
        terms, grads = step(params, batch)
        params = adam.step(params, grads)
        return {key: B.item(value) for key, value in terms.items()}

    def snapshot(iteration: int, with_optimizer: bool) -> StyleNetwork:
        return StyleNetwork({name: B.to_numpy(value) for name, value in params.items()},
                            dict(metadata, iterations=str(iteration), backend=B.name),
                            adam.state() if with_optimizer else None)

    return iterate(options, start, one_step, snapshot, ckpt, output, progress, callback)


def iterate(options: TrainOptions, start: int, one_step: Callable[[int], Dict[str, float]],
            snapshot: Callable[[int, bool], Any], ckpt: Optional[str], output: Optional[str], progress: bool,
            callback: Optional[Callback]) -> Any:
    """Iterations ``start + 1 .. options.iterations`` of a training run, and the trained network.

    ``one_step(iteration)`` gives the terms as floats; a progress bar and ``callback`` follow them; a loss that
    is not finite stops the run.  ``snapshot(iteration, with_optimizer)`` is the network as it stands (with
    Adam's state for a checkpoint): written to ``ckpt`` every ``checkpoint_every`` iterations and at the end,
    and, without the state, to ``output`` at the end."""
    bar = ProgressBar(options.iterations, enabled=progress, notebook=True, unit="it", initial=start)
    try:
        # Ctrl-C stops the training between two steps (a checkpoint being written is finished first), even
        # one that the framework swallows: see multistyle/interrupts.py.
        with interrupts.watched(), interrupts.deferred():
            for iteration in range(start + 1, options.iterations + 1):
                interrupts.check()
                started = time.perf_counter()
                values = one_step(iteration)
                if not np.isfinite(values["total"]):
                    raise MultistyleError(f"training diverged at iteration {iteration} (loss {values['total']}); "
                                          f"lower --lr or the style weight")
                record = _record(iteration, values, time.perf_counter() - started)
                bar.update(record)
                if callback is not None:
                    callback(record)
                if ckpt and options.checkpoint_every and iteration % options.checkpoint_every == 0 \
                        and iteration < options.iterations:
                    snapshot(iteration, True).save(ckpt, with_optimizer=True)
    finally:
        bar.close()
    if ckpt:
        snapshot(options.iterations, True).save(ckpt, with_optimizer=True)
    final = snapshot(options.iterations, False)
    if output:
        final.save(output)
    return final


def check_memory(limit: Optional[int], backend: str, device: str, options: TrainOptions,
                 layers: Sequence[str]) -> None:
    """Refuse, before any work, training predicted to need more than ``limit`` bytes; name a size that fits."""
    predicted = memory.predict_training(backend, device, options.size, options.batch_size, options.width, layers)
    if limit is None or predicted.peak <= limit:
        return
    fits = [size for size in range(options.size - 4, 15, -4)
            if memory.predict_training(backend, device, size, options.batch_size, options.width, layers).peak <= limit]
    hint = (f"use --size {fits[0]} or a smaller --batch-size, or raise --max-memory" if fits else
            "no crop size fits at this batch size; lower --batch-size or raise --max-memory")
    raise MultistyleError(f"--max-memory: training needs about {memory.format_bytes(predicted.peak)} at --size "
                          f"{options.size} --batch-size {options.batch_size}, more than {memory.format_bytes(limit)}; "
                          f"{hint}")


#: What a checkpoint's metadata must share with the run that resumes it, and how the refusal names it.
RESUME_CHECKS = (("style_sha256", "another style image"), ("loss_network", "another loss network (VGG-19 weights)"),
                 ("encoder", "another encoder (VGG-19 weights)"), ("settings", "other loss settings"),
                 ("training", "other training options or photos"))


def resumed(path: str, metadata: Mapping[str, str], options: TrainOptions, load: Callable[[str, str], Any]
            ) -> "tuple[Any, int]":
    """The checkpoint at ``path`` (read by ``load(path, option)``) and its iteration, refused when it was made
    for another run: any of :data:`RESUME_CHECKS` that ``metadata`` has differs."""
    if not os.path.isfile(path):
        raise MultistyleError(f"--resume: no checkpoint at {path!r}; start without --resume")
    network = load(path, "--resume")
    for key, what in RESUME_CHECKS:
        if key in metadata and network.metadata.get(key) != metadata[key]:
            raise MultistyleError(f"--resume: {path} was made with {what}; resume with the same options, or "
                                  f"start again without --resume")
    if network.iterations >= options.iterations:
        raise MultistyleError(f"--resume: {path} has already done {network.iterations} iterations; ask for more "
                              f"with --iterations")
    return network, network.iterations
