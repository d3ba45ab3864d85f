"""Backends against each other, stage by stage: same weight file, same images, same start.

Runs where several frameworks are installed (tox env ``all``; a pair whose
backend is missing skips, or fails where ``MULTISTYLE_TEST_REQUIRE`` names
it).  Each backend's stages are computed once and every pair is compared;
a failure names the stage, the layer and the size of the difference.

Over many steps pixels drift apart (ReLU, max-pool and |x| have kinks; Adam
moves each pixel by about the learning rate whatever the gradient's size),
while the losses keep agreeing: long runs compare losses only.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
from PIL import Image

from multistyle import get_backend, images
from multistyle.backend import BUILTIN_BACKENDS
from multistyle.objective import FeatureExtractor, StyleLoss
from multistyle.settings import Settings
from multistyle.transfer import initial_image, transfer
from multistyle.vgg import LAYERS
from multistyle.weightfiles import LoadedWeights, read_weights
from support.needs import require

PAIRS = list(itertools.combinations(sorted(BUILTIN_BACKENDS), 2))
SIZE = (32, 48)  # the smallest size whose pool5 is not empty
ALL_LAYERS = [layer.name for layer in LAYERS]


@pytest.fixture(scope="module", params=PAIRS, ids=["-".join(p) for p in PAIRS])
def pair(request):
    for name in request.param:
        require(name)
    return request.param


@pytest.fixture(scope="module")
def stages(image_files, npz_weights):
    return functools.lru_cache(maxsize=None)(lambda name: _stages(name, image_files, npz_weights))


def _stages(name, image_files, npz_weights):
    """Everything compared below, computed once per backend, as NumPy."""
    B = get_backend(name, "cpu")
    settings = Settings(init="noise", seed=4).resolved()
    content_x = images.preprocess(images.load_image(image_files["content"]), SIZE)
    style_x = images.preprocess(images.load_image(image_files["style"]), SIZE)
    weights, _ = read_weights(npz_weights)
    features = FeatureExtractor(B, weights, ALL_LAYERS)(B.asarray(content_x))
    objective = StyleLoss(B, weights, settings, content_x, style_x)
    start = initial_image(settings, content_x)
    total = lambda x: objective.terms(x)["total"]  # noqa: E731
    terms = {key: B.item(value) for key, value in objective.terms(B.asarray(start)).items()}
    value, grad = B.value_and_grad(total, start)
    optimizer = B.optimizer("adam", start, settings.lr, settings.lr_decay, settings.lr_decay_every)
    optimizer.step(total)
    run = transfer(image_files["content"], image_files["style"], backend=B, weights=npz_weights, size=(24, 32),
                   epochs=200, lr_decay_every=50)
    # How far float rounding alone moves the final losses on this backend: the same run with one weight
    # one ulp up, then one ulp down (see test_a_200_step_run_agrees_in_loss).
    spread, nudged_totals = {}, []
    for direction in (np.inf, -np.inf):
        nudged = {index: (w.copy(), b) for index, (w, b) in weights.items()}
        nudged[0][0].flat[0] = np.nextafter(nudged[0][0].flat[0], np.float32(direction))
        history = transfer(image_files["content"], image_files["style"], backend=B, size=(24, 32), epochs=200,
                           lr_decay_every=50, weights=LoadedWeights(nudged, "nudged", False)).history
        nudged_totals.append([record["total"] for record in history])
        final = history[-1]
        for term in ("content", "style", "tv"):
            deviation = abs(final[term] - run.history[-1][term]) / abs(run.history[-1][term])
            spread[term] = max(spread.get(term, 0.0), deviation)
    return {"input": B.to_numpy(B.asarray(content_x)),
            "features": {key: B.to_numpy(value) for key, value in features.items()},
            "grams": {key: B.to_numpy(g) for key, g in zip(settings.style_layers, objective.style_targets)},
            "terms": terms, "value": value, "grad": grad, "step": B.to_numpy(optimizer.image), "run": run.history,
            "spread": spread, "nudged_totals": nudged_totals}


def _close(a, b, rtol, atol_scale, what):
    atol = atol_scale * max(float(np.abs(b).max()), 1e-30)
    diff = float(np.abs(a - b).max())
    assert np.allclose(a, b, rtol=rtol, atol=atol), f"{what}: max difference {diff:.3g} (max abs {np.abs(b).max():.3g})"


def test_preprocessed_input_is_identical(pair, stages):
    a, b = (stages(name) for name in pair)
    np.testing.assert_array_equal(a["input"], b["input"])


def test_features_at_every_layer(pair, stages):
    a, b = (stages(name) for name in pair)
    for layer in ALL_LAYERS:
        _close(a["features"][layer], b["features"][layer], 1e-4, 1e-4, f"{pair} features at {layer}")


def test_gram_matrices(pair, stages):
    a, b = (stages(name) for name in pair)
    for layer in a["grams"]:
        _close(a["grams"][layer], b["grams"][layer], 1e-4, 1e-5, f"{pair} Gram matrix of {layer}")


def test_loss_terms(pair, stages):
    a, b = (stages(name) for name in pair)
    # 1e-5: measured, every pair of the five agrees to 6e-7 or better on each term (float32 sums in other orders).
    for term in ("content", "style", "tv", "total"):
        assert a["terms"][term] == pytest.approx(b["terms"][term], rel=1e-5), f"{pair}: {term} loss"
    assert a["value"] == pytest.approx(a["terms"]["total"], rel=1e-6)


def test_gradient_with_respect_to_the_image(pair, stages):
    a, b = (stages(name) for name in pair)
    _close(a["grad"], b["grad"], 1e-3, 1e-5, f"{pair} gradient of the total loss")


def test_image_after_one_adam_step(pair, stages):
    a, b = (stages(name) for name in pair)
    _close(a["step"], b["step"], 1e-4, 1e-4, f"{pair} image after one Adam step")


def test_adam_with_recorded_gradients(pair):
    rng = np.random.default_rng(8)
    start = rng.standard_normal((1, 3, 5, 6)).astype(np.float32)
    grads = [(rng.standard_normal(start.shape) * 10.0 ** rng.integers(-7, 1, start.shape)).astype(np.float32)
             for _ in range(20)]
    backends = [get_backend(name, "cpu") for name in pair]
    optimizers = [B.optimizer("adam", start, 0.3, 0.8, 4) for B in backends]
    travel = 0.0
    for step, g in enumerate(grads):
        lrs = [opt.lr for opt in optimizers]
        assert lrs[0] == pytest.approx(lrs[1], rel=1e-7), f"{pair}: learning rate at step {step + 1}"
        travel += lrs[0]
        for B, opt in zip(backends, optimizers):
            coefficient = B.asarray(g)
            opt.step(lambda x, B=B, c=coefficient: B.mean(x * c) * float(g.size))
            opt.epoch_end()
        params = [B.to_numpy(opt.image) for B, opt in zip(backends, optimizers)]
        _close(params[0], params[1], 1e-5, 1e-5 * travel / max(np.abs(params[1]).max(), 1e-30),
               f"{pair} Adam parameters after step {step + 1}")


def _calm_epochs(*backends):
    """The leading epochs of the 200-step run where float rounding has not yet been amplified: on each backend,
    the runs with one weight one ulp up and one ulp down keep the total loss within 1e-6 of the run itself."""
    calm = 200
    for stage in backends:
        totals = np.array([record["total"] for record in stage["run"]])
        for nudged in stage["nudged_totals"]:
            drift = np.maximum.accumulate(np.abs(np.array(nudged) - totals) / np.abs(totals))
            calm = min(calm, int(np.argmax(drift > 1e-6)) if (drift > 1e-6).any() else 200)
    return calm


def test_a_200_step_run_agrees_before_rounding_is_amplified(pair, stages):
    """Where the run starts from the content image, whose flat block has equal neighbours, and before Adam has
    amplified rounding into chaos, two backends agree to 1e-5: the same real bugs that the final losses cannot
    tell from chaos show here.  Measured (torch, mxnet, jax, tensorflow): correct pairs within 3.4e-7 after the
    first step; TensorFlow with jnp.abs's derivative at 0 (1) 6e-3, with Keras's Adam epsilon 1.2e-4."""
    a, b = (stages(name) for name in pair)
    calm = _calm_epochs(a, b)
    assert calm >= 2, f"{pair}: one ulp of one weight moves the loss by 1e-6 within {calm} epochs; no calm epochs"
    for ra, rb in zip(a["run"][:calm], b["run"][:calm]):
        assert ra["total"] == pytest.approx(rb["total"], rel=1e-5), (
            f"{pair}: total loss at epoch {ra['epoch']} (before rounding is amplified): {ra['total']:.8g} vs "
            f"{rb['total']:.8g}")


def test_a_200_step_run_agrees_in_loss(pair, stages):
    a, b = (stages(name) for name in pair)
    assert len(a["run"]) == len(b["run"]) == 200
    for ra, rb in zip(a["run"], b["run"]):
        assert ra["lr"] == pytest.approx(rb["lr"], rel=1e-7), f"{pair}: learning rate at epoch {ra['epoch']}"
        assert ra["total"] == pytest.approx(rb["total"], rel=0.02), (
            f"{pair}: total loss at epoch {ra['epoch']}: {ra['total']:.6g} vs {rb['total']:.6g}")
    # The final terms: 2 % (content 10 %: the smallest term follows the drifting pixels most closely), or
    # three times what float rounding alone does to the same run on either backend, where that is more.
    # Measured (torch 2.15, mxnet 1.9.1, paddle 3.3.1): one ulp of one weight moves the final style loss by
    # up to 1.5 % / 3.1 % / 0.4 % and the content loss by up to 7.1 % / 6.0 % / 3.3 %; between backends the
    # final style losses were 1.6-3.7 % apart, so a fixed 2 % was a coin flip between versions.
    for term, floor in (("style", 0.02), ("tv", 0.02), ("content", 0.1)):
        final = a["run"][-1][term], b["run"][-1][term]
        spread = max(a["spread"][term], b["spread"][term])
        assert final[0] == pytest.approx(final[1], rel=max(floor, 3 * spread)), (
            f"{pair}: final {term} loss {final[0]:.6g} vs {final[1]:.6g}, beyond {max(floor, 3 * spread):.3g} "
            f"(one ulp of one weight moves it by up to {spread:.3g})")


@pytest.fixture(scope="module")
def recipe_runs(image_files, npz_weights):
    """For each backend: the pixel-space presets after one iteration and over 50 iterations."""
    def run(name):
        B = get_backend(name, "cpu")
        job = dict(backend=B, weights=npz_weights, size=(24, 32))
        out = {}
        for preset in ("pytorch-tutorial", "viblo"):
            out[f"{preset}-1"] = transfer(image_files["content"], image_files["style"], preset=preset, epochs=1,
                                          **job).array
            out[f"{preset}-50"] = [row["total"] for row in transfer(
                image_files["content"], image_files["style"], preset=preset, epochs=50, **job).history]
        return out
    return functools.lru_cache(maxsize=None)(run)


@pytest.mark.parametrize("preset, optimizer", [("pytorch-tutorial", "L-BFGS"), ("viblo", "RMSprop")])
def test_the_first_lbfgs_iteration_and_rmsprop_step_agree(pair, recipe_runs, preset, optimizer):
    a, b = (recipe_runs(name)[f"{preset}-1"] for name in pair)
    _close(a, b, 1e-4, 1e-4, f"{pair} image after the first {optimizer} iteration ({preset})")


def test_50_iterations_of_the_pixel_space_presets_agree_in_loss(pair, recipe_runs):
    a, b = (recipe_runs(name) for name in pair)
    for epoch, (la, lb) in enumerate(zip(a["viblo-50"], b["viblo-50"]), start=1):
        assert la == pytest.approx(lb, rel=0.02), f"{pair} viblo: total loss at iteration {epoch}: {la:.6g} vs {lb:.6g}"
    # The tutorial's recipe (L-BFGS, fixed step 1, the image clamped inside every evaluation) is chaotic in
    # float32: its own loop started one ulp away drifts from itself by up to 8e-2 within 20 evaluations,
    # and its loss spikes whenever a step overshoots, by an amount rounding decides.  Measured here between
    # frameworks: single iterations up to 64 % apart after the first ten, final losses within 4.3 %.  So:
    # every iteration of the first ten within 2 %, and the loss after 50 within 10 %.
    tutorial = list(zip(a["pytorch-tutorial-50"], b["pytorch-tutorial-50"]))
    for epoch, (la, lb) in enumerate(tutorial[:10], start=1):
        assert la == pytest.approx(lb, rel=0.02), f"{pair} pytorch-tutorial: loss at iteration {epoch}: {la:.6g} vs {lb:.6g}"
    assert tutorial[-1][0] == pytest.approx(tutorial[-1][1], rel=0.1), f"{pair} pytorch-tutorial: final loss"


#: Each control of issue 10, as transfer() keywords ("style": "two" blends the style with the content image).
CONTROLS = {
    "style-blend": {"style": "two", "style_blend": [0.7, 0.3]},
    "style-scale": {"style_scale": 0.75},
    "preserve-color-histogram": {"preserve_color": "histogram"},
    "preserve-color-luminance": {"preserve_color": "luminance"},
    "layer-weights": {"style_layers": ["conv1_1:1", "conv2_1:0.5", "conv3_1:0.25"], "content_layers": ["conv4_4:2"]},
    "init-style": {"init": "style"},
    "pooling-avg": {"pooling": "avg"},
    # Issue 42's style losses; W2's blend is of the moments, its square root by Newton-Schulz in float32.
    "style-loss-mean-std": {"style_loss": "mean-std"},
    "style-loss-w2": {"style_loss": "w2"},
    "style-loss-w2-blend": {"style": "two", "style_loss": "w2", "style_blend": [0.7, 0.3]},
    # MRF's nearest patches are an argmax inside each framework's (compiled) step; its blend pools the patches.
    # Started from noise: started from the content, which is one of the two styles, each patch of the picture
    # has an exact match, whose gradient is 0 but for float32's rounding, which Adam's first step makes a step
    # (4 % of the values moved apart, in the content's flat square, where the total variation's gradient is 0).
    "style-loss-mrf": {"style_loss": "mrf"},
    "style-loss-mrf-blend": {"style": "two", "style_loss": "mrf", "style_blend": [0.7, 0.3], "init": "noise"},
}
SIGN_NOISE = {"style-loss-w2", "style-loss-w2-blend", "content-masks-w2"}
#: Controls whose run takes two styles and two complementary masks (the left and right halves).
MASKED = {"content-masks": {}, "content-masks-w2": {"style_loss": "w2"}, "content-masks-mrf": {"style_loss": "mrf"}}


@pytest.fixture(scope="module")
def control_runs(image_files, npz_weights, tmp_path_factory):
    """For each backend: the first step of a run with each control."""
    folder = tmp_path_factory.mktemp("masks")
    left = np.zeros((24, 32), np.uint8)
    left[:, :13] = 255
    masks = [str(folder / "left.png"), str(folder / "right.png")]
    Image.fromarray(left).save(masks[0])
    Image.fromarray(255 - left).save(masks[1])

    def run(name):
        B = get_backend(name, "cpu")
        out = {}
        for control, overrides in MASKED.items():
            out[control] = transfer(image_files["content"], [image_files["style"], image_files["content"]], backend=B,
                                    weights=npz_weights, size=(24, 32), epochs=1, content_masks=masks, **overrides)
        for control, overrides in CONTROLS.items():
            overrides = dict(overrides)
            two = overrides.pop("style", None) == "two"
            style = [image_files["style"], image_files["content"]] if two else image_files["style"]
            out[control] = transfer(image_files["content"], style, backend=B, weights=npz_weights, size=(24, 32),
                                    epochs=1, **overrides)
        return out
    return functools.lru_cache(maxsize=None)(run)


@pytest.mark.parametrize("control", list(CONTROLS) + list(MASKED))
def test_each_control_agrees_after_the_first_step(pair, control_runs, control):
    a, b = (control_runs(name)[control] for name in pair)
    scale = abs(a.history[0]["total"])  # a term that starts at 0 (content, from the content image) is ~1e-12
    for term in ("content", "style", "tv", "total"):
        assert a.history[0][term] == pytest.approx(b.history[0][term], rel=1e-4, abs=1e-6 * scale), (
            f"{pair} {control}: {term} loss")
    if control in SIGN_NOISE:
        # Adam's first step moves each value by the learning rate times the sign of its gradient; where W2's
        # gradient is below the float32 noise of its square root (about 2e-4 of the largest), the sign is either.
        off = ~np.isclose(a.array, b.array, rtol=1e-4, atol=1e-4 * np.abs(b.array).max())
        assert off.mean() <= 0.002, f"{pair} {control}: {off.sum()} values differ after one Adam step"
        assert (np.abs(a.image.astype(int) - b.image.astype(int)) > 1).mean() <= 0.002, f"{pair} {control}: pixels"
        return
    _close(a.array, b.array, 1e-4, 1e-4, f"{pair} {control}: image after one Adam step")
    assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 1, f"{pair} {control}: saved pixels"
