"""Presets and ``Settings``: what each preset sets, and settings that are refused."""

from __future__ import annotations

import numpy as np
import pytest

from multistyle.errors import MultistyleError
from multistyle.loop import scale_epochs
from multistyle.settings import MRF_STYLE_LAYERS, PRESETS, Settings


def test_presets():
    d2l = Settings().resolved()
    assert d2l.style_layers == ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
    assert d2l.content_layers == ("conv4_4",) and d2l.lr == 0.3
    assert (d2l.epochs, d2l.lr_decay, d2l.lr_decay_every) == (500, 0.8, 50)
    assert (d2l.content_weight, d2l.style_weight, d2l.tv_weight) == (1.0, 1e4, 10.0)
    torch_variant = Settings(preset="d2l-pytorch").resolved()
    assert torch_variant.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "conv5_1")
    assert torch_variant.content_layers == ("relu4_4",)
    assert Settings(preset="d2l-mxnet").resolved().lr == 0.9
    assert Settings(preset="d2l-mxnet", lr=0.1).resolved().lr == 0.1
    assert set(PRESETS) == {"d2l", "d2l-pytorch", "d2l-mxnet", "pytorch-tutorial", "viblo", "fast", "crowsonkb"}
    assert d2l.scales == 1
    assert (d2l.optimizer, d2l.clamp) == ("adam", "none")
    tutorial = Settings(preset="pytorch-tutorial").resolved()
    # The tutorial's conv_1..conv_5 and conv_4, named canonically.
    assert tutorial.style_layers == ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1")
    assert tutorial.content_layers == ("conv2_2",)
    assert (tutorial.optimizer, tutorial.lr, tutorial.clamp, tutorial.epochs) == ("lbfgs", 1.0, "closure", 300)
    assert (tutorial.content_weight, tutorial.style_weight, tutorial.tv_weight, tutorial.lr_decay) == (1, 1e6, 0, 1)
    viblo = Settings(preset="viblo").resolved()
    assert (viblo.optimizer, viblo.lr, viblo.style_layers) == ("rmsprop", 0.01, tutorial.style_layers)
    # Each optimizer has its own default rate unless --lr is given.
    assert Settings(optimizer="lbfgs").resolved().lr == 1.0 and Settings(optimizer="rmsprop").resolved().lr == 0.01
    assert Settings(preset="viblo", optimizer="lbfgs", lr=0.5).resolved().lr == 0.5


@pytest.mark.parametrize("preset", ["d2l", "pytorch-tutorial"])
def test_a_style_loss_other_than_the_presets_takes_its_own_weight_unless_one_is_given(preset):
    own = Settings(preset=preset).resolved()
    assert own.style_loss == "gram" and own.style_weight == PRESETS[preset]["style_weight"]
    for loss in ("mean-std", "w2", "mrf"):
        resolved = Settings(preset=preset, style_loss=loss).resolved()
        assert (resolved.style_loss, resolved.style_weight) == (loss, 10.0)
        assert Settings(preset=preset, style_loss=loss, style_weight=3.0).resolved().style_weight == 3.0
        # everything else is the preset's, but mrf's layers: Li & Wand's, unless given
        assert resolved.content_weight == own.content_weight
        assert resolved.style_layers == (MRF_STYLE_LAYERS if loss == "mrf" else own.style_layers)
    given = Settings(preset=preset, style_loss="mrf", style_layers=["relu2_1", "relu5_1"]).resolved()
    assert given.style_layers == ("relu2_1", "relu5_1")


def test_the_fast_preset_changes_how_the_d2l_objective_is_optimised_not_the_objective():
    fast, d2l = PRESETS["fast"], PRESETS["d2l"]
    for key in ("style_layers", "content_layers", "content_weight", "style_weight", "tv_weight", "domain", "clamp"):
        assert fast[key] == d2l[key], key
    resolved = Settings(preset="fast").resolved()
    assert resolved.scales == fast["scales"] > 1 and resolved.epochs == fast["epochs"]
    # Fewer full-size epochs than the chapter's, even with all of its epochs (--until-loss stops it sooner).
    assert scale_epochs(resolved.scales, resolved.epochs, resolved.final_share)[-1] < d2l["epochs"]
    assert Settings(preset="fast", scales=1, epochs=50).resolved().scales == 1  # options still win
    # It descends the total variation smoothed (the reported loss is still |d|) and gives the full size most epochs.
    assert 0 < resolved.tv_smoothing and d2l["tv_smoothing"] == 0 and d2l["final_share"] is None
    assert 0.5 < resolved.final_share < 1
    assert Settings(preset="fast", tv_smoothing=0.0, final_share=0.5).resolved().tv_smoothing == 0.0
    # Its larger scale starts from the content's detail plus the coarse change; d2l has one scale to start.
    assert resolved.scale_start == "content-detail" and d2l["scale_start"] == "upsampled"
    assert Settings(preset="fast", scale_start="upsampled").resolved().scale_start == "upsampled"
    # It starts from the content recoloured to the style's colours; every other preset from the content.
    assert resolved.init == "content-in-style-colors"
    assert {name: Settings(preset=name).resolved().init for name in PRESETS if name != "fast"} == \
        {name: "content" for name in PRESETS if name != "fast"}
    assert Settings(preset="fast", init="content").resolved().init == "content"


@pytest.mark.parametrize("field, value, message", [
    ("epochs", 0, "--epochs: expected a positive integer"),
    ("epochs", -3, "--epochs"),
    ("lr", -0.1, "--lr: expected a positive number"),
    ("lr_decay", 1.5, "--lr-decay"),
    ("lr_decay_every", 0, "--lr-decay-every"),
    ("style_weight", float("nan"), "--style-weight"),
    ("init", "zeros", "--init"),
    ("preset", "gatys", "--preset: unknown preset 'gatys'"),
    ("seed", -1, "--seed"),
    ("optimizer", "sgd", "--optimizer: expected one of adam, lbfgs, rmsprop"),
    ("clamp", "sometimes", "--clamp: expected one of closure, step, end, none"),
    ("line_search", True, "--line-search: only L-BFGS has a line search, not adam"),
    ("lr", 0.0, "--lr: expected a positive number"),
    ("tv_smoothing", -0.01, "--tv-smoothing: expected a number >= 0"),
    ("final_share", 1.0, "--final-share: expected a share of the epochs between 0 and 1"),
    ("final_share", 0, "--final-share"),
    ("scale_start", "nearest", "--scale-start: expected one of upsampled, content-detail"),
    ("style_loss", "mrf2", "--style-loss: expected one of gram, mean-std, w2"),
])
def test_bad_settings_are_refused(field, value, message):
    with pytest.raises(MultistyleError, match=message):
        Settings(**{field: value}).resolved()


def test_the_crowsonkb_preset_is_its_recipe_as_far_as_multistyle_reaches():
    from multistyle.loop import scale_plan

    r = Settings(preset="crowsonkb").resolved()
    assert (r.style_loss, r.style_weight, r.content_layers, r.content_weight, r.tv_weight) == (
        "w2", 1.0, ("relu4_2",), 0.015, 2.0)
    assert r.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    np.testing.assert_allclose(np.array(r.style_layer_weights) * 341, [256, 64, 16, 4, 1], rtol=1e-5)
    assert (r.optimizer, r.lr, r.pixel_domain, r.clamp, r.init) == ("adam", 0.02, True, "step", "content")
    assert [epochs for _, epochs in scale_plan((300, 450), r.scales, r.epochs, r.final_share)] == [1000, 500, 500]
