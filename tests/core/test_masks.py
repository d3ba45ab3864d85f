"""Spatial control (``--content-masks``, issue 42): each style in its own region, the masks carried down to
every layer as the network pools the picture."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from multistyle.cli import main
from multistyle.errors import MultistyleError
from multistyle.objective import check_mrf_sizes, layer_masks
from multistyle.settings import Settings
from multistyle.transfer import UntrainedWeightsWarning, first_gradient, transfer
from support.needs import INSTALLED, needs_a_backend

BACKEND = "torch" if "torch" in INSTALLED else (INSTALLED[0] if INSTALLED else "torch")
SIZE = (24, 32)


def _save(path, pixels):
    Image.fromarray(np.asarray(pixels, np.uint8)).save(path)
    return str(path)


@pytest.fixture(scope="module")
def masks(tmp_path_factory):
    """All white, the left half and the right half, at 30x40 (not the working size: each is resized)."""
    folder = tmp_path_factory.mktemp("masks")
    left = np.zeros((30, 40), np.uint8)
    left[:, :20] = 255
    return {"white": _save(folder / "white.png", np.full((30, 40), 255)), "left": _save(folder / "left.png", left),
            "right": _save(folder / "right.png", 255 - left), "black": _save(folder / "black.png", np.zeros((30, 40)))}


def _run(image_files, style, **overrides):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)
        return transfer(image_files["content"], style, backend=BACKEND, device="cpu", weights="random:0",
                        size=SIZE, **dict({"epochs": 3}, **overrides))


def test_a_mask_reaches_each_layer_as_the_network_pools_the_picture():
    mask = np.random.default_rng(2).uniform(0, 1, (13, 22))
    conv1, conv2, conv3 = layer_masks(mask, ["conv1_1", "conv2_1", "conv3_1"])
    np.testing.assert_allclose(conv1, (mask / mask.sum()).reshape(-1), rtol=1e-6)
    pooled = np.array([[mask[2 * i:2 * i + 2, 2 * j:2 * j + 2].mean() for j in range(11)] for i in range(6)])
    np.testing.assert_allclose(conv2, (pooled / pooled.sum()).reshape(-1), rtol=1e-5)  # row 13 dropped, as pool1 does
    twice = np.array([[pooled[2 * i:2 * i + 2, 2 * j:2 * j + 2].mean() for j in range(5)] for i in range(3)])
    np.testing.assert_allclose(conv3, (twice / twice.sum()).reshape(-1), rtol=1e-5)
    for weights in (conv1, conv2, conv3):
        assert weights.sum() == pytest.approx(1.0, rel=1e-6)
    last_row = np.zeros((13, 22))
    last_row[12] = 1.0  # the row pool1 drops
    with pytest.raises(MultistyleError, match="a mask covers nothing at conv2_1 \\(6x11\\)"):
        layer_masks(last_row, ["conv1_1", "conv2_1"])
    last_column = np.zeros((13, 24))
    last_column[:, 20:] = 1.0  # at relu3_1 (3x6), the column no 3x3 patch every 2 positions reaches
    layer_masks(last_column, ["relu3_1"])
    with pytest.raises(MultistyleError, match="a mask covers no patch of the mrf loss at relu3_1 \\(3x6\\)"):
        layer_masks(last_column, ["relu3_1"], patches=True)


@needs_a_backend
@pytest.mark.parametrize("loss", ["gram", "mean-std", "w2", "mrf"])
def test_one_all_white_mask_is_the_unmasked_objective(image_files, masks, loss):
    """The first loss and its gradient: after a step, Adam's sign-like first step turns float32 noise in
    the tiny gradients into whole steps (tests/backends/test_parity.py says more)."""
    found = []
    for extra in ({}, {"content_masks": [masks["white"]]}):
        settings = Settings(style_loss=loss, **extra)
        found.append(first_gradient(image_files["content"], image_files["style"], backend=BACKEND, device="cpu",
                                    weights="random:0", size=SIZE, settings=settings))
    (plain, plain_grad, _), (masked, masked_grad, _) = found
    assert masked == pytest.approx(plain, rel=1e-5)
    np.testing.assert_allclose(masked_grad, plain_grad, rtol=1e-3, atol=1e-4 * np.abs(plain_grad).max())


def _redness(result):
    """How much redder than blue each half of the result is, in pixel levels."""
    pixels = result.image.astype(float)
    half = pixels.shape[1] // 2
    return [float(np.mean(part[..., 0] - part[..., 2])) for part in (pixels[:, :half], pixels[:, half:])]


@needs_a_backend
def test_two_complementary_masks_give_each_half_its_own_styles_character(image_files, masks, tmp_path):
    rng = np.random.default_rng(4)
    red = np.clip(rng.normal(0, 40, (48, 64, 3)) + [220, 40, 40], 0, 255)  # red noise
    xx = np.mgrid[0:48, 0:64][1]
    blue = np.stack([20 + 0 * xx, 60 + 0 * xx, 120 + 120 * (xx // 4 % 2)], axis=-1)  # blue stripes
    styles = [_save(tmp_path / "red.png", red), _save(tmp_path / "blue.png", blue)]
    split = _run(image_files, styles, content_masks=[masks["left"], masks["right"]], epochs=150, init="noise")
    left, right = _redness(split)
    assert left - right > 60, (left, right)  # the left half takes the red style, the right half the blue one
    blended = _run(image_files, styles, epochs=150, init="noise")  # unmasked: both halves take the blend
    assert abs(np.subtract(*_redness(blended))) < (left - right) / 3, (_redness(blended), left, right)
    swapped = _run(image_files, styles, content_masks=[masks["right"], masks["left"]], epochs=150, init="noise")
    assert np.subtract(*_redness(swapped)) < -60, _redness(swapped)


@pytest.mark.parametrize("extra, message", [
    (["--content-masks", "{white}"], "--content-masks: 1 mask for 2 style images; give one mask per style"),
    (["--content-masks", "{white},{white},{white}"], "--content-masks: 3 masks for 2 style images"),
    (["--content-masks", "{white},missing.png"], "--content-masks: file 'missing.png' does not exist"),
    (["--content-masks", "{white},{unreadable}"], "--content-masks: "),
    (["--content-masks", "{white},{black}"], "is black everywhere, so its style applies nowhere"),
    (["--content-masks", "{left},{right}", "--style-blend", "1,1"],
     "--content-masks and --style-blend: a mask says where each style applies"),
], ids=["fewer", "more", "missing", "unreadable", "covers-nothing", "with-blend"])
def test_bad_masks_are_one_line_errors_and_write_nothing(image_files, masks, tmp_path, monkeypatch, capsys, extra,
                                                         message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "unreadable.png").write_bytes(b"not an image")
    names = dict(masks, unreadable="unreadable.png")
    output = tmp_path / "out"
    output.mkdir()
    args = ["run", "--content", image_files["content"], "--style", f"{image_files['style']},{image_files['style']}",
            "--output", str(output / "out.png"), "--weights", "random:0", "--size", "24x32", "--epochs", "2",
            *[part.format(**names) for part in extra]]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert list(output.iterdir()) == []


def test_an_mrf_layer_too_small_for_a_patch_is_a_one_line_error(image_files, tmp_path, monkeypatch, capsys):
    """At 16x24, relu4_1 is 2x3: no 3x3 patch fits."""
    monkeypatch.chdir(tmp_path)
    args = ["run", "--content", image_files["content"], "--style", image_files["style"], "--output", "out.png",
            "--weights", "random:0", "--size", "16x24", "--epochs", "1", "--style-loss", "mrf"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the picture is 2x3 at relu4_1, too small for a 3x3 patch" in err[0], err
    assert not (tmp_path / "out.png").exists()
    check_mrf_sizes(Settings(style_loss="mrf").resolved(), (24, 32))  # relu4_1 3x4: one patch, no error
