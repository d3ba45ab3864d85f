"""The objective of one job on one backend: VGG-19 features, Gram targets and the weighted loss terms.

The formulas live in :mod:`multistyle.losses`; this module decides which
layers feed which term, with what weight, and computes the targets once.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import images
from .backend import Backend
from .errors import MultistyleError
from .losses import (MRF_PATCH, MRFTarget, content_loss, masked_style_term, patch_grid, patch_shares,
                     style_statistics, style_target, style_term, tv_loss)
from .settings import ResolvedSettings, blend_mismatch
from .vgg import LAYER_BY_NAME, LAYERS, Weights, deepest_index


class FeatureExtractor:
    """Runs VGG-19 up to the deepest requested layer and keeps named outputs."""

    def __init__(self, backend: Backend, weights: Weights, layer_names: Sequence[str], pooling: str = "max") -> None:
        self.backend = backend
        self.last = deepest_index(layer_names)
        self.layers = backend.vgg19_layers(weights, self.last, pooling=pooling)
        self.wanted = {LAYER_BY_NAME[name].index: name for name in layer_names}

    def __call__(self, x: Any, for_losses: bool = False) -> Dict[str, Any]:
        """The wanted layers' outputs of the NCHW image ``x``, NCHW; ``for_losses``: in the layout the losses read
        (the layers' own where the backend's losses read that: :attr:`Backend.features_channels_last`)."""
        outputs = {}
        back = self.backend.out_of_layers
        if for_losses and self.backend.features_channels_last:
            back = _as_is
        x = self.backend.into_layers(x)
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index in self.wanted:
                outputs[self.wanted[index]] = back(x)
        return outputs


def _as_is(t: Any) -> Any:
    return t


class StyleLoss:
    """The objective of one job on one backend: targets computed once, loss terms per image.

    ``terms(x)`` returns native scalar tensors ``content``, ``style`` and
    ``tv``, each already multiplied by its weight, and their sum ``total``
    (``tv`` is ``None`` when its weight is 0: the term is then not computed).
    ``x`` and the images given here are in the preset's domain: normalised, or
    pixels in [0, 1] that the objective normalises first.  ``style_x`` is one
    image or a list: each style layer's target is the blend of their Gram
    matrices (``settings.style_blend``, equal by default).  A layer whose
    weight is 0 is left out, as if it had not been named.

    ``masks`` (spatial control, Gatys et al. 2017): one ``(H, W)`` array in [0, 1] per style, at the content's
    size.  Each style is then not blended but matched in its own region: the style term is the sum over the
    styles of its loss between the picture's statistics over the positions its mask weights (the mask taken
    to each layer's size as the network's pooling takes the picture: :func:`layer_masks`) and the style's own.
    """

    def __init__(self, backend: Backend, weights: Weights, settings: ResolvedSettings,
                 content_x: np.ndarray, style_x: Union[np.ndarray, Sequence[np.ndarray]],
                 extract: Optional[FeatureExtractor] = None, masks: Optional[Sequence[np.ndarray]] = None,
                 temporal: Optional[Tuple[float, Any]] = None) -> None:
        self.B = backend
        #: ``(weight, TemporalTarget)``: a video frame's temporal term (:mod:`multistyle.video.temporal`), or None.
        self.temporal = temporal
        self.settings = settings
        self.pixel = settings.pixel_domain
        if self.pixel:
            self.mean = backend.asarray(images.RGB_MEAN.reshape(1, 3, 1, 1))
            self.std = backend.asarray(images.RGB_STD.reshape(1, 3, 1, 1))
        self.content = _weighted(settings.content_layers, settings.content_layer_weights)
        self.style = _weighted(settings.style_layers, settings.style_layer_weights)
        self.layer_names = _layer_names(settings)
        if extract is None:
            extract = self.network(backend, weights, settings)
        elif sorted(extract.wanted.values()) != sorted(self.layer_names):
            raise ValueError(f"the feature extractor given keeps {sorted(extract.wanted.values())}; "
                             f"these settings need {sorted(self.layer_names)}")
        self.extract = extract
        styles = [style_x] if isinstance(style_x, np.ndarray) else list(style_x)
        blend = settings.style_blend or [1.0 / len(styles)] * len(styles)
        if len(blend) != len(styles):
            raise MultistyleError(blend_mismatch(len(blend), len(styles)))
        used = [(image, share) for image, share in zip(styles, blend) if share != 0]
        check_mrf_sizes(settings, np.shape(content_x)[2:], "picture")
        for image in styles:
            check_mrf_sizes(settings, np.shape(image)[2:], "style image")
        self.regions: Optional[List[List[np.ndarray]]] = None
        if masks is not None:
            if len(masks) != len(styles):
                raise MultistyleError(masks_mismatch(len(masks), len(styles)))
            used = [(image, 1.0) for image in styles]
            self.regions = [layer_masks(mask, [name for name, _ in self.style], settings.style_loss == "mrf")
                            for mask in masks]
        # One call, one program where the backend compiles it: the content's features and every style's Grams.
        self.content_targets, per_style = backend.compile_forward(self._targets)(
            backend.asarray(content_x), *(backend.asarray(image) for image, _ in used))
        if self.regions is not None:  # each style its own targets, in its own region: nothing blends
            self.region_targets = [[style_target(backend, settings.style_loss, tuple(layer),
                                                 backend.features_channels_last) for layer in statistics]
                                   for statistics in per_style]
            per_style, self.style_targets = [], []
        elif settings.style_loss == "mrf":  # the styles' patches pooled, each style's share of the pool its weight
            self.style_targets = [MRFTarget(backend, [backend.to_numpy(statistics[k][0]) for statistics in per_style],
                                            [share for _, share in used], backend.features_channels_last)
                                  for k in range(len(self.style))]
            per_style = []
        blended: List[Any] = [None] * len(self.style)
        for statistics, (_, share) in zip(per_style, used):
            for k, layer in enumerate(statistics):
                terms = [value if share == 1 else share * value for value in layer]
                blended[k] = terms if blended[k] is None else [a + b for a, b in zip(blended[k], terms)]
        if per_style:
            self.style_targets = [style_target(backend, settings.style_loss, tuple(layer),
                                               backend.features_channels_last) for layer in blended]

    @staticmethod
    def network(backend: Backend, weights: Weights, settings: ResolvedSettings) -> FeatureExtractor:
        """The network an objective with these settings runs: built once, it can serve every scale of a job
        (``extract``), so that the weights are placed on the device once."""
        return FeatureExtractor(backend, weights, _layer_names(settings), settings.pooling)

    def _targets(self, content_x: Any, *style_xs: Any) -> Tuple[List[Any], List[List[Any]]]:
        """The content targets (the content layers' features of ``content_x``) and each style image's
        statistics (Gram matrices, or those of ``--style-loss``), which blend into the style targets."""
        return self._content_features(content_x), [self._style_statistics(x) for x in style_xs]

    def _content_features(self, x: Any) -> List[Any]:
        """The content layers' features of ``x``: the content image's are the content targets."""
        features = self.features(x)
        return [features[name] for name, _ in self.content]

    def _style_statistics(self, x: Any) -> List[Any]:
        """The style layers' statistics of ``x`` (:func:`~multistyle.losses.style_statistics`): a style image's
        blend into the style targets."""
        features = self.features(x)
        return [style_statistics(self.B, self.settings.style_loss, features[name], self.B.features_channels_last)
                for name, _ in self.style]

    def features(self, x: Any) -> Dict[str, Any]:
        """VGG-19 features of an image in the preset's domain, in the layout the losses read
        (:attr:`Backend.features_channels_last`)."""
        return self.extract((x - self.mean) / self.std if self.pixel else x, for_losses=True)

    def terms(self, x: Any, tv_scale: Any = None) -> Dict[str, Any]:
        """The loss terms at ``x``.  ``tv_scale`` (a number, or a scalar a compiled program passes in)
        multiplies ``--tv-smoothing`` for this evaluation: the loop shrinks it with the learning rate."""
        B, settings = self.B, self.settings
        smoothing = settings.tv_smoothing
        if smoothing and tv_scale is not None:
            smoothing = smoothing * tv_scale
        features = self.features(x)
        content = sum_terms([_scaled(weight, content_loss(B, features[name], target))
                             for (name, weight), target in zip(self.content, self.content_targets)])
        if self.regions is None:
            style = sum_terms([_scaled(weight, style_term(B, settings.style_loss, features[name], target,
                                                          B.features_channels_last))
                               for (name, weight), target in zip(self.style, self.style_targets)])
        else:
            style = sum_terms([_scaled(weight, masked_style_term(B, settings.style_loss, features[name], target, p,
                                                                 B.features_channels_last))
                               for weights, targets in zip(self.regions, self.region_targets)
                               for (name, weight), target, p in zip(self.style, targets, weights)])
        out = {"content": settings.content_weight * content, "style": settings.style_weight * style,
               "tv": settings.tv_weight * tv_loss(B, x, smoothing) if settings.tv_weight else None}
        out["total"] = out["content"] + out["style"] if out["tv"] is None else out["content"] + out["style"] + out["tv"]
        if self.temporal is not None:  # a video frame's: held where the previous output, carried here, is reliable
            from .video.temporal import temporal_loss

            out["temporal"] = self.temporal[0] * temporal_loss(B, x, self.temporal[1])
            out["total"] = out["total"] + out["temporal"]
        return out


def masks_mismatch(masks: int, styles: int) -> str:
    return (f"--content-masks: {masks} mask{'s' if masks != 1 else ''} for {styles} style image"
            f"{'s' if styles != 1 else ''}; give one mask per style, in the same order")


def layer_masks(mask: np.ndarray, layers: Sequence[str], patches: bool = False) -> List[np.ndarray]:
    """A mask at the content's size taken to each layer's size, as position weights that sum to 1 (NumPy,
    ``h·w`` positions in row order).

    Gatys et al. (2017) offer two ways to carry a guidance channel down the network: "simple", resized to each
    layer's size, and "inside", eroded so that only the positions whose receptive field lies inside the region
    count.  This is "simple", with each 2x2 pooling of the network averaging the mask alike (and its odd last
    row or column dropped alike), so that a soft mask stays a share.  "inside" would leave a region narrower
    than a layer's receptive field (about 200 pixels at conv5_1) empty at that layer, and the seam between
    two regions matched by neither style.  ``patches`` (the ``mrf`` loss): the region must also reach one of
    the layer's patches (:func:`~multistyle.losses.patch_shares`)."""
    out = []
    for name in layers:
        weights = np.asarray(mask, np.float64)
        for layer in LAYERS[:LAYER_BY_NAME[name].index]:
            if layer.kind == "pool":
                h, w = weights.shape[0] // 2, weights.shape[1] // 2
                weights = weights[:2 * h, :2 * w].reshape(h, 2, w, 2).mean(axis=(1, 3))
        total = weights.sum()
        if not total > 0:
            raise MultistyleError(f"--content-masks: a mask covers nothing at {name} ({weights.shape[0]}x"
                                  f"{weights.shape[1]}); make its white region larger")
        if patches and not patch_shares(weights.reshape(-1), *weights.shape).sum() > 0:
            raise MultistyleError(f"--content-masks: a mask covers no patch of the mrf loss at {name} "
                                  f"({weights.shape[0]}x{weights.shape[1]}); make its white region larger")
        out.append((weights / total).reshape(-1).astype(np.float32))
    return out


def layer_shape(shape: Sequence[int], name: str) -> Tuple[int, int]:
    """The ``(h, w)`` of layer ``name``'s output for an image of ``shape``: each 2x2 pooling before it halves
    them, an odd last row or column dropped."""
    h, w = int(shape[0]), int(shape[1])
    for layer in LAYERS[:LAYER_BY_NAME[name].index]:
        if layer.kind == "pool":
            h, w = h // 2, w // 2
    return h, w


def check_mrf_sizes(settings: ResolvedSettings, shape: Sequence[int], what: str = "picture") -> None:
    """Refuse an image (``shape``: its ``(H, W)``) whose map at a style layer is too small for one of the ``mrf``
    loss's patches; nothing to check for another loss."""
    if settings.style_loss != "mrf":
        return
    for name, weight in zip(settings.style_layers, settings.style_layer_weights):
        h, w = layer_shape(shape, name)
        if weight and min(patch_grid(h, w)) == 0:
            raise MultistyleError(f"--style-loss mrf: the {what} is {h}x{w} at {name}, too small for a "
                                  f"{MRF_PATCH}x{MRF_PATCH} patch; give a larger --size (or --style-scale), or "
                                  f"shallower --style-layers")


def _layer_names(settings: ResolvedSettings) -> List[str]:
    """The layers the objective reads, each once: the content's, then the style's, those of weight 0 left out."""
    return list(dict.fromkeys(name for name, _ in _weighted(settings.content_layers, settings.content_layer_weights)
                              + _weighted(settings.style_layers, settings.style_layer_weights)))


def _weighted(names: Sequence[str], weights: Sequence[float]) -> List[Tuple[str, float]]:
    """``(layer, weight)`` pairs of a resolved setting, layers of weight 0 left out."""
    return [(name, float(weight)) for name, weight in zip(names, weights) if weight != 0]


def _scaled(weight: float, term: Any) -> Any:
    return term if weight == 1 else weight * term


def sum_terms(terms: Sequence[Any]) -> Any:
    """Sum a non-empty list of loss tensors."""
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total
