"""The controls users of neural-style expect: style blends and scale, colour preservation, layer weights,
start images, pooling, progress and animations; their properties on every backend, and their errors."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest
from PIL import Image

from multistyle import color, images
from multistyle.backend import get_backend
from multistyle.cli import main
from multistyle.progress import ProgressBar
from multistyle.settings import Settings
from multistyle.transfer import UntrainedWeightsWarning, transfer

SIZE = (24, 32)


def run(backend_name, image_files, style=None, **overrides):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)
        return transfer(image_files["content"], style if style is not None else image_files["style"],
                        backend=get_backend(backend_name, "cpu"), weights="random:0", size=SIZE,
                        **dict({"epochs": 3}, **overrides))


def close(a, b, what):
    np.testing.assert_allclose(a.array, b.array, rtol=1e-5, atol=1e-5, err_msg=what)
    for key in ("total", "content", "style"):
        np.testing.assert_allclose([r[key] for r in a.history], [r[key] for r in b.history], rtol=1e-5,
                                   err_msg=f"{what}: {key} loss")


@pytest.fixture(scope="module")
def second_style(tmp_path_factory):
    """Another style image, of another size than the content and the first style."""
    path = tmp_path_factory.mktemp("style2") / "stripes.png"
    yy, xx = np.mgrid[0:40, 0:30]
    pixels = np.stack([(xx * 8) % 256, (yy * 6) % 256, ((xx + yy) * 5) % 256], axis=-1).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return str(path)


# -- properties, on every backend ---------------------------------------------------------------------------

def test_a_blend_weighted_1_0_is_the_first_style_alone(backend_name, image_files, second_style):
    alone = run(backend_name, image_files)
    blend = run(backend_name, image_files, style=[image_files["style"], second_style], style_blend=[1, 0])
    close(blend, alone, "blend 1,0 vs the first style")
    other = run(backend_name, image_files, style=second_style)
    assert np.abs(other.array - alone.array).max() > 1e-3  # the second style does change the result


def test_a_style_blended_with_itself_is_that_style(backend_name, image_files):
    alone = run(backend_name, image_files)
    twice = run(backend_name, image_files, style=[image_files["style"], image_files["style"]])
    close(twice, alone, "a style blended with itself")
    assert twice.settings.style_blend is None  # equal weights by default


def test_preserving_luminance_keeps_the_content_colours_and_the_result_luminance(backend_name, image_files):
    plain = run(backend_name, image_files)
    kept = run(backend_name, image_files, preserve_color="luminance")
    np.testing.assert_allclose(kept.array, plain.array, rtol=1e-5, atol=1e-5)  # the optimisation is the same
    content = images.postprocess(images.preprocess(images.load_image(image_files["content"]), SIZE))
    yuv_kept, yuv_plain, yuv_content = (color.rgb_to_yuv(image / 255.0)
                                        for image in (kept.image, plain.image, content))
    # Where the recombined colour is inside the RGB cube (no clipping), 8-bit rounding is the only change.
    unclipped = np.all((color.yuv_to_rgb(np.concatenate([yuv_plain[..., :1], yuv_content[..., 1:]], -1)) >= 0)
                       & (color.yuv_to_rgb(np.concatenate([yuv_plain[..., :1], yuv_content[..., 1:]], -1)) <= 1), -1)
    assert unclipped.mean() > 0.5
    level = 1.0 / 255
    assert np.abs(yuv_kept[..., 1:] - yuv_content[..., 1:])[unclipped].max() <= 1.5 * level
    assert np.abs(yuv_kept[..., 0] - yuv_plain[..., 0])[unclipped].max() <= 1.5 * level
    assert np.abs(yuv_plain[..., 1:] - yuv_content[..., 1:])[unclipped].max() > 5 * level  # it did change colours


def test_a_layer_of_weight_0_is_the_layer_left_out(backend_name, image_files):
    left_out = run(backend_name, image_files, style_layers=["conv1_1", "conv2_1", "conv3_1"])
    zero = run(backend_name, image_files, style_layers=["conv1_1", "conv2_1", "conv3_1", "conv5_1:0"])
    close(zero, left_out, "conv5_1:0 vs conv5_1 left out")
    halved = run(backend_name, image_files, style_layers=["conv1_1", "conv2_1:0.5", "conv3_1"])
    assert halved.history[0]["style"] < left_out.history[0]["style"]


def test_the_preset_layers_with_weight_1_are_todays_results(backend_name, image_files):
    today = run(backend_name, image_files)
    weighted = run(backend_name, image_files, content_layers=["conv4_4:1"],
                   style_layers=[f"{name}:1" for name in Settings().resolved().style_layers])
    close(weighted, today, "explicit weights of 1")


def test_init_from_the_content_file_is_init_content(backend_name, image_files):
    close(run(backend_name, image_files, init=image_files["content"]), run(backend_name, image_files),
          "--init FILE (the content image) vs --init content")


def test_init_style_starts_from_the_style_image(backend_name, image_files):
    result = run(backend_name, image_files, init="style", epochs=1)
    start = images.preprocess(images.load_image(image_files["style"]), SIZE)
    first = run(backend_name, image_files, init=image_files["style"], epochs=1)
    close(result, first, "--init style vs --init the style file")
    content_start = run(backend_name, image_files, epochs=1)
    assert np.abs(result.array - start).max() < np.abs(content_start.array - start).max()


def test_style_scale_changes_the_style_target_and_avg_pooling_the_network(backend_name, image_files):
    plain = run(backend_name, image_files, epochs=1)
    scaled = run(backend_name, image_files, epochs=1, style_scale=2.0)
    pooled = run(backend_name, image_files, epochs=1, pooling="avg")
    assert scaled.history[0]["content"] == pytest.approx(plain.history[0]["content"], rel=1e-6)
    assert abs(scaled.history[0]["style"] - plain.history[0]["style"]) > 1e-3 * plain.history[0]["style"]
    assert abs(pooled.history[0]["content"] - plain.history[0]["content"]) > 0 or \
        abs(pooled.history[0]["style"] - plain.history[0]["style"]) > 1e-3 * plain.history[0]["style"]


def test_animation_frames_and_the_log_records_the_settings(backend_name, image_files, tmp_path, capsys):
    log, gif = tmp_path / "log.json", tmp_path / "run.gif"
    args = ["run", "--content", image_files["content"], "--style", f"{image_files['style']},{image_files['style']}",
            "--style-blend", "3,1", "--style-scale", "1.5", "--preserve-color", "histogram", "--pooling", "avg",
            "--style-layers", "conv1_1:1,conv2_1:0.5", "--init", "style", "--output", str(tmp_path / "out.png"),
            "--backend", backend_name, "--device", "cpu", "--weights", "random:0", "--size", "32x48",
            "--epochs", "6", "--scales", "2", "--animate", str(gif), "--animate-every", "2", "--log", str(log)]
    assert main(args) == 0, capsys.readouterr().err
    settings = json.loads(log.read_text())["meta"]["settings"]
    assert settings["style_blend"] == [0.75, 0.25] and settings["style_scale"] == 1.5
    assert (settings["preserve_color"], settings["pooling"], settings["init"]) == ("histogram", "avg", "style")
    assert settings["style_layers"] == ["conv1_1", "conv2_1"] and settings["style_layer_weights"] == [1.0, 0.5]
    with Image.open(gif) as animation:
        assert animation.size == (48, 32) and animation.n_frames >= 3  # epochs 2 and 4 (both scales), the result
        assert animation.info.get("loop") == 0
    assert not list(tmp_path.glob(".*tmp*"))


# -- pure NumPy ---------------------------------------------------------------------------------------------

def test_histogram_matching_gives_the_content_mean_and_covariance():
    rng = np.random.default_rng(0)
    style = rng.random((30, 40, 3)).astype(np.float32) ** 2 * np.array([1.0, 0.5, 0.8], np.float32)
    content = np.clip(rng.normal(0.5, 0.15, (20, 25, 3)) @ np.array([[1, .3, 0], [0, 1, .2], [.1, 0, 1]]), 0, 1)
    matched = color.match_color(style, content)
    flat, reference = matched.reshape(-1, 3).astype(np.float64), content.reshape(-1, 3)
    np.testing.assert_allclose(flat.mean(axis=0), reference.mean(axis=0), rtol=1e-3)
    np.testing.assert_allclose(np.cov(flat, rowvar=False), np.cov(reference, rowvar=False), rtol=1e-3,
                               atol=1e-3 * np.abs(np.cov(reference, rowvar=False)).max())
    assert matched.shape == style.shape


def test_yuv_round_trips_and_luminance_transfer_keeps_chrominance():
    rng = np.random.default_rng(1)
    rgb = rng.random((8, 8, 3))
    np.testing.assert_allclose(color.yuv_to_rgb(color.rgb_to_yuv(rgb)), rgb, atol=1e-12)
    gray = np.full((4, 4, 3), 128, np.uint8)
    assert np.abs(color.keep_luminance(gray, gray).astype(int) - 128).max() <= 1


def test_the_progress_bar_shows_rate_eta_and_losses():
    stream = io.StringIO()
    bar = ProgressBar(10, stream, enabled=True, label="torch")
    for epoch in range(1, 4):
        bar.update({"epoch": epoch, "total": 5.0 / epoch, "content": 1.0, "style": 2.0, "tv": 0.5})
    bar.close()
    text = stream.getvalue()
    assert "torch" in text and "3/10" in text and "total 1.667" in text
    assert "epoch/s" in text or "s/epoch" in text  # tqdm's rate; its ETA follows it
    silent = io.StringIO()
    ProgressBar(10, silent, enabled=False).update({"epoch": 1, "total": 1, "content": 1, "style": 1, "tv": 1})
    assert silent.getvalue() == ""


def test_a_result_shows_itself_as_a_png(backend_name, image_files):
    result = run(backend_name, image_files, epochs=1)
    with Image.open(io.BytesIO(result._repr_png_())) as picture:
        assert picture.format == "PNG" and np.array_equal(np.asarray(picture.convert("RGB")), result.image)


# -- one-line errors, nothing written ----------------------------------------------------------------------

@pytest.mark.parametrize("extra, message", [
    (["--style", "{style},{style}", "--style-blend", "1"], "--style-blend: 1 weight for 2 style images"),
    (["--style-blend", "-1"], "--style-blend: expected numbers >= 0, not all 0"),
    (["--style", "{style},{style}", "--style-blend", "0,0"], "--style-blend: expected numbers >= 0, not all 0"),
    (["--style-blend", "a"], "argument --style-blend: expected comma-separated numbers"),
    (["--preserve-color", "hue"], "argument --preserve-color: invalid choice: 'hue'"),
    (["--style-scale", "0"], "--style-scale: expected a positive number"),
    (["--style-scale", "-2"], "--style-scale: expected a positive number"),
    (["--init", "missing.png"], "--init: expected content, content-in-style-colors, noise, style or an image file"),
    (["--animate", "run.mp4"], "--animate: 'run.mp4' is not an animation format; use a .gif or .webp"),
    (["--style-layers", "conv1_1:-1"], "--style-layers: the weight of conv1_1 must be a number >= 0"),
    (["--style-layers", "conv1_1:0,conv2_1:0"], "--style-layers: every layer has weight 0"),
    (["--pooling", "min"], "argument --pooling: invalid choice: 'min'"),
], ids=["blend-count", "blend-negative", "blend-zero", "blend-text", "color-mode", "scale-0", "scale-negative",
        "init-missing", "animate-format", "layer-negative", "layers-zero", "pooling"])
def test_bad_controls_are_one_line_errors_and_write_nothing(image_files, tmp_path, monkeypatch, capsys, extra,
                                                            message):
    monkeypatch.chdir(tmp_path)
    extra = [part.format(style=image_files["style"]) for part in extra]
    args = ["run", "--content", image_files["content"], "--style", image_files["style"], "--output", "out.png",
            "--weights", "random:0", "--size", "24x32", "--epochs", "2", "--animate", "run.gif"]
    for option, value in zip(extra[::2], extra[1::2]):  # an option given again replaces the default one
        if option in args:
            args[args.index(option) + 1] = value
        else:
            args += [option, value]
    try:
        code = main(args)
    except SystemExit as exit_info:  # argparse's own errors (a choice, a type) exit from inside main
        code = exit_info.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


# -- each control against the NumPy float64 oracle, its target computed here, independently ---------------

def _pixels(path, size):
    """An image file resized to ``size`` = (H, W) as (H, W, 3) floats in [0, 1]."""
    return images.resize_pixels(images.load_image(path), size)


def _normalised(pixels):
    return ((pixels - images.RGB_MEAN) / images.RGB_STD).transpose(2, 0, 1)[None].astype(np.float64)


def _sqrtm(covariance):
    values, vectors = np.linalg.eigh(covariance)
    return vectors @ np.diag(np.sqrt(values)) @ vectors.T


def _colour_matched(style, content):
    """Gatys et al. 2016, section 2: x' = C_c^(1/2) C_s^(-1/2) (x - mu_s) + mu_c, per pixel."""
    s, c = style.reshape(-1, 3).astype(np.float64), content.reshape(-1, 3).astype(np.float64)
    transform = _sqrtm(np.cov(c.T)) @ np.linalg.inv(_sqrtm(np.cov(s.T)))
    return ((s - s.mean(0)) @ transform.T + c.mean(0)).reshape(style.shape)


def _oracle_first_losses(content, styles, shares, start, content_layers, style_layers, pooling="max"):
    """The d2l objective's terms at ``start``: the style target is the ``shares``-weighted sum of the styles'
    Gram matrices; layers are ``(name, weight)`` pairs."""
    from support import oracle

    from multistyle.vgg import random_weights

    weights = random_weights(0)  # what --weights random:0 reads, on every backend
    names = list(dict.fromkeys([n for n, _ in content_layers] + [n for n, _ in style_layers]))
    feats = lambda x: oracle.features(x, weights, names, pooling)  # noqa: E731
    content_f, start_f = feats(content), feats(start)
    style_f = [feats(style) for style in styles]
    targets = {n: sum(share * oracle.gram(f[n]) for f, share in zip(style_f, shares)) for n, _ in style_layers}
    content_loss = sum(w * oracle.content_loss(start_f[n], content_f[n]) for n, w in content_layers)
    style_loss = 1e4 * sum(w * oracle.style_loss(start_f[n], targets[n]) for n, w in style_layers)
    tv = 10.0 * oracle.tv_loss(start)
    return {"content": content_loss, "style": style_loss, "tv": tv, "total": content_loss + style_loss + tv}


D2L_STYLE = [(name, 1.0) for name in ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")]
D2L_CONTENT = [("conv4_4", 1.0)]
ORACLE_CONTROLS = ["blend 3,1", "style-scale 0.75", "histogram", "init FILE", "init style", "init noise",
                   "init content-in-style-colors", "layer weights", "avg pooling", "luminance"]


@pytest.mark.parametrize("control", ORACLE_CONTROLS)
def test_each_control_against_the_numpy_oracle(backend_name, image_files, second_style, control):
    content_pixels = _pixels(image_files["content"], SIZE)
    content = _normalised(content_pixels)
    style = _normalised(_pixels(image_files["style"], SIZE))
    styles, shares, start = [style], [1.0], content
    content_layers, style_layers, pooling, options = D2L_CONTENT, D2L_STYLE, "max", {}
    style_arg = None
    if control == "blend 3,1":
        style_arg, options = [image_files["style"], second_style], {"style_blend": [3, 1]}
        styles, shares = [style, _normalised(_pixels(second_style, SIZE))], [0.75, 0.25]
    elif control == "style-scale 0.75":
        options = {"style_scale": 0.75}
        width, height = Image.open(image_files["style"]).size
        long_edge = round(0.75 * max(SIZE))  # of the working size, not of the style image
        size = (round(height * long_edge / max(width, height)), round(width * long_edge / max(width, height)))
        assert size == (18, 24) and size != SIZE  # the style keeps its own aspect ratio
        styles = [_normalised(_pixels(image_files["style"], size))]
    elif control == "histogram":
        options = {"preserve_color": "histogram"}
        styles = [_normalised(_colour_matched(_pixels(image_files["style"], SIZE), content_pixels))]
    elif control == "init FILE":
        options, start = {"init": second_style}, _normalised(_pixels(second_style, SIZE))
    elif control == "init style":
        options, start = {"init": "style"}, style
    elif control == "init content-in-style-colors":  # the content's layout, the style's colour statistics
        style_pixels = _pixels(image_files["style"], SIZE)
        options = {"init": "content-in-style-colors"}
        start = _normalised(_colour_matched(content_pixels, style_pixels))
    elif control == "init noise":
        options = {"init": "noise", "seed": 5}
        start = np.random.default_rng(5).standard_normal(content.shape, dtype=np.float32).astype(np.float64)
    elif control == "layer weights":
        content_layers, style_layers = [("conv4_4", 3.0)], [("conv1_1", 1.0), ("conv2_1", 0.5), ("conv3_1", 2.0)]
        options = {"content_layers": ["conv4_4:3"], "style_layers": ["conv1_1", "conv2_1:0.5", "conv3_1:2"]}
    elif control == "avg pooling":
        options, pooling = {"pooling": "avg"}, "avg"
    else:  # luminance: the optimisation is the plain one; the result keeps the content's chrominance
        options = {"preserve_color": "luminance"}
    result = run(backend_name, image_files, style=style_arg, epochs=1, **options)
    want = _oracle_first_losses(content, styles, shares, start, content_layers, style_layers, pooling)
    for term in ("content", "style", "tv", "total"):
        # The content term is 0 where the start is the content image; compare it on the total's scale then.
        assert result.history[0][term] == pytest.approx(want[term], rel=1e-4, abs=1e-6 * want["total"]), \
            f"{control}: {term} loss at the start"
    if control == "luminance":
        # BT.601 luminance Y = 0.299 R + 0.587 G + 0.114 B.  Keeping the content's chrominance (U, V) and
        # the result's Y moves each of the content's R, G and B by the same amount: Y(result) - Y(content).
        rgb = images.postprocess(result.array) / 255.0
        luma = lambda p: p @ np.array([0.299, 0.587, 0.114])  # noqa: E731
        expected = np.round(np.clip(content_pixels + (luma(rgb) - luma(content_pixels))[..., None], 0, 1) * 255)
        assert np.abs(result.image.astype(float) - expected).max() <= 1.0
        assert np.abs(result.image.astype(float) - images.postprocess(result.array)).max() > 10  # colours moved
