"""Same name, different maths: where the d2l chapter's code and a framework's defaults differ from what their
names suggest, each with what the chapter does, what multistyle does, and the size of the difference measured on
a job (:func:`measure`; the compare report measures its own job in child processes, so no framework is imported
here).  :mod:`multistyle.explain` puts the table on its page; ``compare`` and ``serve`` render it too.
"""

from __future__ import annotations

import html
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import images
from .errors import first_line
from .measure import cli_seconds


#: The rows: key, title, what the chapter's code does, what multistyle does.
MATHS: List[Tuple[str, str, str, str]] = [
    ("gluon_adam_epsilon", "Adam's epsilon in Gluon",
     "MXNet: <code>gluon.Trainer(..., 'adam')</code>. Gluon folds the bias correction into the rate "
     "(lr·√(1−β₂ᵗ)/(1−β₁ᵗ)) and adds epsilon to √v <i>before</i> it, so its 1e-8 acts as 1e-8/√(1−β₂ᵗ): "
     "3.2e-7 at the first step, against 1e-8 in PyTorch and Paddle.",
     "Sets Gluon's epsilon to 1e-8·√(1−β₂ᵗ) before every step, which is exactly torch's formula, so the "
     "three backends take the same steps."),
    ("keras_adam_epsilon", "Adam's epsilon in Keras",
     "Not in the chapter (it has no TensorFlow variant). TensorFlow: <code>tf.keras.optimizers.Adam</code> "
     "computes, as Gluon does, lr·√(1−β₂ᵗ)/(1−β₁ᵗ)·m/(√v + ε): Kingma &amp; Ba's ε̂, added before the bias "
     "correction, and 1e-7 by default, so it acts as 1e-7/√(1−β₂ᵗ): 3.2e-6 at the first step, 316 times "
     "torch's 1e-8.",
     "TensorFlow runs <code>multistyle.optim.Adam</code>, torch's formula written once over the protocol, "
     "so its steps are the other backends'."),
    ("kink_gradients", "Gradients at kinks in JAX and TensorFlow",
     "Not in the chapter. JAX: <code>jax.grad(jnp.abs)(0.)</code> is 1 and the ReLU "
     "<code>jnp.maximum(x, 0)</code> has derivative 0.5 at 0; TensorFlow's <code>tf.maximum(x, 0)</code> 1. "
     "Torch, MXNet, Paddle, <code>tf.abs</code> and <code>tf.nn.relu</code> give 0. The total-variation "
     "loss takes |x| of neighbour differences, which are exactly 0 wherever neighbouring pixels are equal.",
     "JAX's |x| has a custom derivative, sign(x) (0 at 0), and its ReLU is <code>jax.nn.relu</code>; "
     "TensorFlow uses <code>tf.abs</code> and <code>tf.nn.relu</code>: every backend's derivative is 0 at 0, "
     "tested on each."),
    ("rmsprop_epsilon", "RMSprop's epsilon",
     "Not used by the chapter (it uses Adam); the viblo recipe's RMSprop is torch's <code>lr·g/(√v + ε)</code>. "
     "<code>paddle.optimizer.RMSProp</code> and MXNet's <code>RMSProp</code> compute <code>lr·g/√(v + ε)</code>: "
     "epsilon inside the root, which no option moves.",
     "Paddle and MXNet run <code>multistyle.optim.RMSprop</code>, torch's formula written once over the "
     "protocol; torch runs <code>torch.optim.RMSprop</code>."),
    ("inplace_relu", "torchvision's in-place ReLU",
     "PyTorch: features are taken after the conv layers of torchvision's <code>vgg19().features</code>, whose "
     "ReLUs are <code>inplace=True</code>: the stored conv output is overwritten by the ReLU that follows, so "
     "the loss is on ReLU outputs. The MXNet and Paddle versions take the conv outputs.",
     "No ReLU runs in place. <code>--preset d2l</code> takes conv outputs (the MXNet/Paddle chapter); "
     "<code>--preset d2l-pytorch</code> takes the ReLU outputs, what the PyTorch chapter really computes."),
    ("mxnet_lbfgs", "L-BFGS on MXNet",
     "Not used by the chapter (Adam); the PyTorch tutorial's L-BFGS has no MXNet counterpart: MXNet ships "
     "no L-BFGS.",
     "<code>multistyle.optim.LBFGS</code>: the algorithm of <code>torch.optim.LBFGS</code> (which Paddle's "
     "port follows line for line), written once over the protocol, used on MXNet."),
    ("paddle_numel", "<code>numel()</code> in Paddle 3",
     "Paddle: <code>gram</code> computes <code>n = X.numel() // c</code>. In Paddle 3 <code>numel()</code> "
     "returns an int64 Tensor, not an int, and dividing the float32 Gram matrix by it is refused.",
     "Sizes come from <code>shape</code>, Python ints, on every backend."),
    ("paddle_threads", "Importing Paddle sets OMP_NUM_THREADS=1",
     "Paddle: <code>import paddle</code> sets <code>OMP_NUM_THREADS=1</code> when it is unset "
     "(paddle/base/__init__.py), so the chapter's Paddle loop runs on one core.",
     "Sets <code>OMP_NUM_THREADS</code> to the usable cores before importing Paddle, unless you set it."),
    ("w2_square_root", "W2's matrix square root in float32",
     "Not in the chapter (Gram matrices only). crowsonkb's style-transfer-pytorch takes "
     "(Σ_s^½ Σ Σ_s^½)^½ by 12 Newton–Schulz steps with 1e-4·I added to each covariance. The iteration "
     "multiplies an eigenvalue that float32 rounding left slightly below 0 by 2.25 a step, and VGG layers are "
     "far from full rank: unshifted, it diverges, differently on each framework.",
     "<code>--style-loss w2</code>: 20 steps on the matrix over its norm plus 1e-6·I, so that every eigenvalue "
     "counts √(λ + ε), above the rounding; the five backends agree on a run's first losses to about 1e-4. The "
     "price: where a layer is far from full rank (conv1_1's 64 channels are made from 27 numbers), the zero "
     "eigenvalues' √ε add up, and the term comes out a few per cent under the exact distance. A step costs "
     "1.4 to 2.9 times Gram's (2-core CPU, 150×225 and 300×450, docs: Style losses and masks)."),
    ("mrf_argmax", "MRF's nearest patch: an argmax of float32 sums",
     "Not in the chapter. Li &amp; Wand's MRF loss (<code>--style-loss mrf</code>) matches each 3×3 patch of "
     "the picture's features with the style patch of largest normalised cross-correlation. Each framework's "
     "convolution sums a <code>relu3_1</code> patch's 2304 products in its own order, so two candidates "
     "within rounding of each other can swap.",
     "The argmax is a protocol operation (<code>Backend.argmax_one_hot</code>), native in each framework so "
     "that a compiled step holds it, and the nearest patches are constants of the step. The parity tests "
     "compare runs where no near-tie decides. A step costs 0.95 to 1.34 times Gram's (2-core CPU, 150×225 and "
     "300×450), and grows with the square of the pixels."),
    ("adain_statistics", "A standard deviation in AdaIN",
     "Not in the chapter. The public PyTorch port of AdaIN (its <code>calc_mean_std</code>) takes torch's "
     "<code>var()</code>, the <i>unbiased</i> variance over H·W − 1, plus 1e-5, both in the transform and in "
     "the training loss. Instance normalisation (<code>InstanceNorm2d</code>) and multistyle's "
     "<code>--style-loss mean-std</code> take the biased variance, over H·W.",
     "AdaIN networks (<code>run --model</code>, <code>train --arbitrary</code>) take the port's statistics, so "
     "that its published files give its picture; <code>--style-loss mean-std</code>, an optimisation loss, "
     "keeps the biased variance. In the transform the factor √(n/(n−1)) cancels when the content's and the "
     "style's maps have as many positions; in the training loss, and for maps of different sizes, it does not."),
]

#: The backends each row's measurement runs on (a row not listed: the first usable backend, torch by preference).
MEASURED_WITH: Dict[str, Tuple[str, ...]] = {"mxnet_lbfgs": ("torch", "mxnet"), "paddle_numel": ("paddle",),
                                             "paddle_threads": ("paddle",)}


def _levels(step: np.ndarray, pixel: bool) -> np.ndarray:
    """A step of the image in the preset's domain, in 0..255 levels per pixel and channel."""
    scale = 255.0 if pixel else images.RGB_STD.reshape(1, 3, 1, 1) * 255.0
    return np.abs(step) * scale


def _describe_levels(diff: np.ndarray) -> str:
    moved = float((diff >= 0.5).mean() * 100)
    return (f"first step: max {float(diff.max()):.3g}, mean {float(diff.mean()):.3g} levels of 255; "
            f"{moved:.1f} % of pixel values differ by half a level or more")


def adam_first_steps(g: np.ndarray, lr: float, eps: float = 1e-8, beta2: float = 0.999
                     ) -> Tuple[np.ndarray, np.ndarray]:
    """The first Adam step (torch's formula, Gluon's with its own epsilon) for the gradient ``g``."""
    torch_step = lr * g / (np.abs(g) + eps)
    gluon_step = lr * g / (np.abs(g) + eps / np.sqrt(1.0 - beta2))
    return torch_step, gluon_step


def tv_kink_gradient(x: np.ndarray, tv_weight: float, at_zero: float = 1.0) -> np.ndarray:
    """What a derivative of ``at_zero`` for |0| (JAX's ``jnp.abs``: 1) adds to the gradient of
    ``tv_weight`` · :func:`multistyle.losses.tv_loss` at the image ``x`` (NCHW), against a derivative of 0."""
    extra = np.zeros(x.shape, dtype=np.float64)
    for axis in (2, 3):
        d = np.diff(x.astype(np.float64), axis=axis)
        push = (d == 0) * (0.5 * tv_weight * at_zero / d.size)
        ahead = [slice(None)] * 4
        ahead[axis] = slice(1, None)
        behind = [slice(None)] * 4
        behind[axis] = slice(None, -1)
        extra[tuple(ahead)] += push
        extra[tuple(behind)] -= push
    return extra


def rmsprop_first_steps(g: np.ndarray, lr: float, alpha: float = 0.99, eps: float = 1e-8
                        ) -> Tuple[np.ndarray, np.ndarray]:
    """The first RMSprop step, epsilon outside the root (torch) and inside it (Paddle, MXNet)."""
    v = (1.0 - alpha) * g * g
    return lr * g / (np.sqrt(v) + eps), lr * g / np.sqrt(v + eps)


def _child_gradient(job: Dict[str, Any]) -> Dict[str, Any]:
    from .settings import Settings
    from .transfer import first_gradient

    settings = Settings(**job["settings"]).resolved()
    loss, grad, start = first_gradient(job["content"], job["style"], backend=job["backend"], device="cpu",
                                       weights=job["weights"], size=tuple(job["size"]), settings=settings)
    return {"grad": grad, "pixel": settings.pixel_domain, "lr": settings.lr, "start": start,
            "tv_weight": settings.tv_weight}


def _child_run(job: Dict[str, Any], overrides: Dict[str, Any]) -> Dict[str, Any]:
    import warnings

    from .settings import Settings
    from .transfer import UntrainedWeightsWarning, transfer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)
        result = transfer(job["content"], job["style"], backend=job["backend"], device="cpu", weights=job["weights"],
                          size=tuple(job["size"]), settings=Settings(**job["settings"]), **overrides)
    return {"image": result.image, "history": result.history}


def _child_w2_root(job: Dict[str, Any]) -> Dict[str, Any]:
    """The first W2 term of each style layer at the job's start: as multistyle computes it, with the square
    root unshifted, and in float64 by an eigendecomposition."""
    from . import losses
    from .settings import Settings
    from .transfer import objective_at_start

    settings = Settings(**dict(job["settings"], style_loss="w2")).resolved()
    B, objective, start = objective_at_start(job["content"], job["style"], backend=job["backend"], device="cpu",
                                             weights=job["weights"], size=tuple(job["size"]), settings=settings)
    features = objective.features(B.asarray(start))
    last = B.features_channels_last
    out: Dict[str, Any] = {"layers": [], "shifted": [], "unshifted": [], "float64": []}
    for (name, _), target in zip(objective.style, objective.style_targets):
        out["layers"].append(name)
        out["shifted"].append(B.item(losses.style_term(B, "w2", features[name], target, last)))
        shift, losses.SQRTM_SHIFT = losses.SQRTM_SHIFT, 0.0
        try:
            out["unshifted"].append(B.item(losses.style_term(B, "w2", features[name], target, last)))
        finally:
            losses.SQRTM_SHIFT = shift
        out["float64"].append(_w2_float64(B.to_numpy(features[name]), target, B, last))
    return out


def _w2_float64(features: np.ndarray, target: Any, B: Any, channels_last: bool) -> float:
    """W2 over the channels, in float64, the picture's root by an eigendecomposition."""
    x = np.asarray(features, np.float64)[0]
    matrix = x.reshape(-1, x.shape[-1]).T if channels_last else x.reshape(x.shape[0], -1)
    mean = matrix.mean(axis=1)
    centred = matrix - mean[:, None]
    root = np.asarray(B.to_numpy(target.root), np.float64)
    inner = root @ (centred @ centred.T / matrix.shape[1]) @ root
    values = np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)
    distance = (np.sum((mean - np.asarray(B.to_numpy(target.mean), np.float64).reshape(-1)) ** 2)
                + np.sum(centred ** 2) / matrix.shape[1] + target.trace - 2 * np.sum(np.sqrt(values)))
    return float(distance / matrix.shape[0])


def _child_mrf_ties(job: Dict[str, Any]) -> Dict[str, Any]:
    """For each style layer of an ``mrf`` job at its start: how many of the picture's patches have a runner-up
    style patch whose normalised cross-correlation is within 1e-5 (relative) of their nearest's."""
    from .losses import mrf_scores
    from .settings import Settings
    from .transfer import objective_at_start

    settings = Settings(**dict(job["settings"], style_loss="mrf", style_layers=None, style_layer_weights=None,
                               style_weight=None)).resolved()  # Li & Wand's layers, whatever the job's
    B, objective, start = objective_at_start(job["content"], job["style"], backend=job["backend"], device="cpu",
                                             weights=job["weights"], size=tuple(job["size"]), settings=settings)
    features = objective.features(B.asarray(start))
    out: Dict[str, Any] = {"layers": [], "patches": [], "near_ties": []}
    for (name, _), target in zip(objective.style, objective.style_targets):
        scores = np.asarray(B.to_numpy(mrf_scores(B, features[name], target, B.features_channels_last)[1]),
                            np.float64)
        ranked = np.sort(scores, axis=0)
        best = ranked[-1]
        runner_up = ranked[-2] if len(ranked) > 1 else np.full_like(best, -np.inf)
        gap = (best - runner_up) / np.maximum(np.abs(best), 1e-30)
        out["layers"].append(name)
        out["patches"].append(int(scores.shape[1]))
        out["near_ties"].append(int(np.sum(gap < 1e-5)))
    return out


class _Measurements:
    """Each :data:`MATHS` row's measurement on one job; ``isolated(fn, *args)`` runs ``fn`` in a fresh child
    process.  Each method returns ``(effect, figures)``."""

    def __init__(self, job: Dict[str, Any], usable: Sequence[str], isolated: Callable[..., Any]) -> None:
        self.job, self.isolated = job, isolated
        self.first = "torch" if "torch" in usable else (usable[0] if usable else None)
        self._gradient: Dict[str, Any] = {}

    def gradient(self) -> Dict[str, Any]:
        if not self._gradient:
            self._gradient.update(self.isolated(_child_gradient, dict(self.job, backend=self.first)))
        return self._gradient

    def adam(self) -> Tuple[str, Dict[str, Any]]:
        g = self.gradient()
        lr = g["lr"] if self.job["settings"]["optimizer"] == "adam" else 0.3
        ours, gluon = adam_first_steps(g["grad"], lr)
        diff = _levels(ours - gluon, g["pixel"])
        return _describe_levels(diff) + f" (the job's gradient, lr {lr:g})", {"max": float(diff.max()),
                                                                                "mean": float(diff.mean())}

    def keras_adam(self) -> Tuple[str, Dict[str, Any]]:
        g = self.gradient()
        lr = g["lr"] if self.job["settings"]["optimizer"] == "adam" else 0.3
        ours, _ = adam_first_steps(g["grad"], lr)
        _, keras = adam_first_steps(g["grad"], lr, eps=1e-7)  # Keras's default epsilon, in Gluon's place
        diff = _levels(ours - keras, g["pixel"])
        return _describe_levels(diff) + f" (the job's gradient, lr {lr:g}, Keras's epsilon 1e-7)", \
            {"max": float(diff.max()), "mean": float(diff.mean())}

    def kinks(self) -> Tuple[str, Dict[str, Any]]:
        g = self.gradient()
        lr = g["lr"] if self.job["settings"]["optimizer"] == "adam" else 0.3
        start = np.asarray(g["start"])
        equal = float(np.mean([(np.diff(start, axis=axis) == 0).mean() for axis in (2, 3)]) * 100)
        ours, _ = adam_first_steps(g["grad"], lr)
        jax_abs, _ = adam_first_steps(g["grad"] + tv_kink_gradient(start, g["tv_weight"]), lr)
        diff = _levels(ours - jax_abs, g["pixel"])
        return (f"{equal:.1f} % of neighbour differences are exactly 0 at the start; with jnp.abs's derivative, "
                + _describe_levels(diff) + f" (lr {lr:g})"), {"equal_neighbours_percent": equal,
                                                               "max": float(diff.max()), "mean": float(diff.mean())}

    def rmsprop(self) -> Tuple[str, Dict[str, Any]]:
        g = self.gradient()
        ours, inside = rmsprop_first_steps(g["grad"], 0.01)
        diff = _levels(ours - inside, g["pixel"])
        return _describe_levels(diff) + " (the job's gradient, lr 0.01, alpha 0.99, eps 1e-8)", \
            {"max": float(diff.max()), "mean": float(diff.mean())}

    def relu(self) -> Tuple[str, Dict[str, Any]]:
        runs = [self.isolated(_child_run, dict(self.job, backend=self.first),
                              {"preset": preset, "epochs": 1, "lr": None, "content_layers": None, "style_layers": None})
                for preset in ("d2l", "d2l-pytorch")]
        diff = np.abs(runs[0]["image"].astype(int) - runs[1]["image"].astype(int))
        losses = [run["history"][0]["style"] for run in runs]
        return (f"style loss at the start: {losses[0]:.4g} (conv outputs) vs {losses[1]:.4g} (ReLU outputs); "
                f"after one step the images differ by max {diff.max()}, mean {diff.mean():.3g} levels; "
                f"{(diff > 0).mean() * 100:.1f} % of pixel values differ"), \
            {"style_loss": losses, "max": int(diff.max()), "mean": float(diff.mean())}

    def lbfgs(self) -> Tuple[str, Dict[str, Any]]:
        overrides = {"optimizer": "lbfgs", "lr": 1.0, "epochs": 3}
        runs = {name: self.isolated(_child_run, dict(self.job, backend=name), overrides) for name in ("torch", "mxnet")}
        a, b = (runs[name]["history"][-1]["total"] for name in ("torch", "mxnet"))
        diff = np.abs(runs["torch"]["image"].astype(int) - runs["mxnet"]["image"].astype(int))
        return (f"3 iterations, lr 1: loss {a:.6g} (torch.optim.LBFGS) vs {b:.6g} (multistyle on MXNet), "
                f"relative difference {abs(a - b) / abs(a):.1e}; images differ by max {diff.max()} levels"), \
            {"relative_difference": abs(a - b) / abs(a), "max": int(diff.max())}

    def numel(self) -> Tuple[str, Dict[str, Any]]:
        from .references import d2l_chapter  # the chapter's own Paddle code, beside its loop

        found = self.isolated(d2l_chapter.paddle_gram_effect, self.job)
        if "error" in found:
            return f"numel() returns {found['numel_type']}; the chapter's gram raises {found['error']}", found
        return (f"numel() returns {found['numel_type']}; the chapter's gram agrees with multistyle's to "
                f"{found['max_relative_difference']:.1e}"), found

    def w2_root(self) -> Tuple[str, Dict[str, Any]]:
        found = self.isolated(_child_w2_root, dict(self.job, backend=self.first))
        errors = {kind: max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(found[kind], found["float64"]))
                  for kind in ("shifted", "unshifted")}
        found.update({f"{kind}_error": value for kind, value in errors.items()})
        layers = "; ".join(f"{name} {exact:.4g} / {ours:.4g} / {plain:.4g}" for name, exact, ours, plain
                           in zip(found["layers"], found["float64"], found["shifted"], found["unshifted"]))
        return (f"the first W2 term of each style layer on {self.first} (float64 / shifted / unshifted): {layers}; "
                f"largest relative error: shifted {errors['shifted']:.1e}, unshifted {errors['unshifted']:.1e}"), found

    def mrf_ties(self) -> Tuple[str, Dict[str, Any]]:
        found = self.isolated(_child_mrf_ties, dict(self.job, backend=self.first))
        layers = ", ".join(f"{name} {ties} of {patches}" for name, ties, patches
                           in zip(found["layers"], found["near_ties"], found["patches"]))
        return (f"patches whose runner-up is within 1e-5 of their nearest style patch at the start, on "
                f"{self.first}: {layers}"), found

    def adain_statistics(self) -> Tuple[str, Dict[str, Any]]:
        """Exact, from the job's size: the unbiased standard deviation over the biased one at each of AdaIN's
        layers, √(n/(n−1)) for n positions (relu1_1 at the size; three ceil-mode pools to relu4_1)."""
        height, width = (int(side) for side in self.job["size"])
        layers, ratios = [], []
        for name in ("relu1_1", "relu2_1", "relu3_1", "relu4_1"):
            n = height * width
            layers.append(f"{name} {height}x{width}")
            ratios.append(float(np.sqrt(n / (n - 1))) if n > 1 else float("inf"))
            height, width = -(-height // 2), -(-width // 2)
        text = ", ".join(f"{layer}: {(ratio - 1) * 100:.3g} %" for layer, ratio in zip(layers, ratios))
        return (f"the unbiased std exceeds the biased one by √(n/(n−1)) at this job's size: {text}"), \
            {"layers": layers, "ratios": ratios}

    def threads(self) -> Tuple[str, Dict[str, Any]]:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        one, every = (cli_seconds(dict(self.job, backend="paddle"), threads) for threads in ("1", None))
        return (f"a fresh multistyle run on Paddle: {one:.3f} s/it on one thread (the chapter's), {every:.3f} "
                f"s/it on {cores} cores: {one / every:.2f}x"), {"one_thread": one, "all_cores": every,
                                                               "cores": cores}


def measure(job: Dict[str, Any], usable: Sequence[str], isolated: Callable[..., Any]) -> List[Dict[str, Any]]:
    """The effect of each :data:`MATHS` row on ``job`` (content, style, size, weights, settings), measured with
    the ``usable`` backends; ``isolated(fn, *args)`` runs ``fn`` in a fresh child process.  A row that
    cannot be measured here says why."""
    effects: Dict[str, str] = {}
    figures: Dict[str, Any] = {}
    m = _Measurements(job, usable, isolated)
    first = (m.first or "torch",)
    works = {"gluon_adam_epsilon": m.adam, "keras_adam_epsilon": m.keras_adam, "kink_gradients": m.kinks,
             "rmsprop_epsilon": m.rmsprop, "inplace_relu": m.relu,
             "mxnet_lbfgs": m.lbfgs, "paddle_numel": m.numel, "paddle_threads": m.threads,
             "w2_square_root": m.w2_root, "mrf_argmax": m.mrf_ties, "adain_statistics": m.adain_statistics}
    for key, work in works.items():
        missing = [name for name in MEASURED_WITH.get(key, first) if name not in usable]
        if missing:
            effects[key] = f"not measured: needs the {' and '.join(missing)} backend{'s' if len(missing) > 1 else ''}"
            continue
        try:
            effects[key], figures[key] = work()
        except Exception as exc:  # a measurement that failed does not take the report down
            effects[key] = f"not measured: {type(exc).__name__}: {first_line(exc)}"
    return [{"key": key, "title": title, "chapter": chapter, "multistyle": ours, "effect": effects[key],
             "figures": figures.get(key, {})} for key, title, chapter, ours in MATHS]


def maths_section(rows: Optional[List[Dict[str, Any]]]) -> str:
    """The "same name, different maths" table; without measurements, the effect column says how to get them."""
    e = html.escape
    parts = ["<h2 id='maths'>Same name, different maths</h2>",
             "<p>Where the same name hides different arithmetic. Effects are measured on "
             + ("this report's own job." if rows else "a job by <code>multistyle compare</code>; this page "
                "shows the code only.") + "</p>",
             "<table class='maths'><tr><th>what</th><th>the chapter's code</th><th>multistyle</th>"
             "<th>effect</th></tr>"]
    effects = {row["key"]: row["effect"] for row in rows or []}
    for key, title, chapter, ours in MATHS:
        parts.append(f"<tr><th>{title}</th><td>{chapter}</td><td>{ours}</td>"
                     f"<td>{e(effects.get(key, 'measured in the compare report'))}</td></tr>")
    parts.append("</table>")
    return "\n".join(parts)


#: Why long runs differ in pixels while their losses agree: the prose of ``compare`` and ``explain``.
WHY_PIXELS_DRIFT = ("Why pixels drift apart while losses agree: the frameworks compute the same losses and "
                    "gradients up to float32 rounding, but ReLU, max-pooling and |x| have kinks, and Adam moves "
                    "every pixel by about the learning rate at every step whatever the size of its gradient. A "
                    "rounding difference in a tiny gradient can flip the direction of a whole step, so after a "
                    "few steps the images differ visibly, while each one is an equally good minimiser of the same "
                    "loss: the curves above stay together.")
