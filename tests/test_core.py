"""The core without any framework: layer names, weight formats, images, registry, imports."""

from __future__ import annotations

import importlib
import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from multistyle import backend as registry
from multistyle import images
from multistyle.errors import BackendUnavailable, MultistyleError, WeightsError
from multistyle.settings import PRESETS, Settings
from multistyle.vgg import (CONV_INDICES, LAYER_BY_NAME, LAYERS, canonical_weights, expected_shapes,
                            parse_weights_spec, random_weights, resolve_layers)


# -- VGG-19 layers and weights ----------------------------------------------------

def test_d2l_indices_map_to_canonical_names():
    assert [LAYERS[i].name for i in (0, 5, 10, 19, 28)] == ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
    assert LAYERS[25].name == "conv4_4" and LAYERS[26].name == "relu4_4"
    assert len(LAYERS) == 37 and LAYERS[-1].name == "pool5"
    assert len(CONV_INDICES) == 16
    assert expected_shapes(LAYER_BY_NAME["conv3_1"].index) == ((256, 128, 3, 3), (256,))


def test_unknown_layer_names_are_refused_with_the_option():
    assert resolve_layers(["relu4_2", "pool3"], "--style-layers") == ["relu4_2", "pool3"]
    with pytest.raises(MultistyleError, match=r"--style-layers: unknown VGG-19 layer 'conv6_1'"):
        resolve_layers(["conv1_1", "conv6_1"], "--style-layers")
    with pytest.raises(MultistyleError, match="--content-layers"):
        resolve_layers([""], "--content-layers")


def test_random_weights_are_seeded_he_normal_and_depth_independent():
    a, b = random_weights(4, last=10), random_weights(4)
    assert sorted(a) == [0, 2, 5, 7, 10]
    for index in a:
        np.testing.assert_array_equal(a[index][0], b[index][0])
    assert not np.array_equal(random_weights(5, last=0)[0][0], a[0][0])
    w = b[LAYER_BY_NAME["conv4_1"].index][0]
    assert w.dtype == np.float32
    assert w.std() == pytest.approx(np.sqrt(2.0 / (256 * 9)), rel=0.02)


def _state(weights, key):
    state = {}
    for k, index in enumerate(sorted(weights)):
        w, b = weights[index]
        state[key(index, k, "weight")] = w
        state[key(index, k, "bias")] = b
    return state


@pytest.mark.parametrize("key", [
    lambda i, k, kind: f"features.{i}.{kind}",
    lambda i, k, kind: f"{i}.{kind}",
    lambda i, k, kind: f"vgg0_conv{k}_{kind}",
    lambda i, k, kind: f"arg:vgg0_conv{k}_{kind}",
], ids=["features", "bare", "gluon-legacy", "gluon-export"])
def test_every_key_style_gives_the_same_weights(key):
    weights = random_weights(1, last=12)
    state = _state(weights, key)
    state["classifier.0.weight"] = np.zeros((4, 4), np.float32)
    loaded = canonical_weights(state, "test", last=12)
    assert sorted(loaded) == sorted(weights)
    for index in weights:
        np.testing.assert_array_equal(loaded[index][0], weights[index][0])


def test_weights_with_missing_or_wrong_layers_are_refused():
    weights = random_weights(1, last=5)
    state = _state(weights, lambda i, k, kind: f"features.{i}.{kind}")
    with pytest.raises(WeightsError, match=r"no features.7.weight/bias \(conv2_2\)"):
        canonical_weights(state, "f.npz", last=7)
    state["features.5.weight"] = np.zeros((128, 64, 5, 5), np.float32)
    with pytest.raises(WeightsError, match=r"conv2_1 \(features.5\) has weight \(128, 64, 5, 5\)"):
        canonical_weights(state, "f.npz", last=5)


def test_weights_spec_parsing(tmp_path):
    assert parse_weights_spec("imagenet") == ("imagenet", None)
    assert parse_weights_spec("random") == ("random", 0)
    assert parse_weights_spec("random:42") == ("random", 42)
    with pytest.raises(MultistyleError, match="random:SEED"):
        parse_weights_spec("random:x")
    with pytest.raises(WeightsError, match="does not exist"):
        parse_weights_spec(str(tmp_path / "nope.npz"))
    with pytest.raises(WeightsError, match="is a directory"):
        parse_weights_spec(str(tmp_path))


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
    assert set(PRESETS) == {"d2l", "d2l-pytorch", "d2l-mxnet", "pytorch-tutorial", "viblo", "fast"}
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


def test_the_fast_preset_changes_how_the_d2l_objective_is_optimised_not_the_objective():
    fast, d2l = PRESETS["fast"], PRESETS["d2l"]
    for key in ("style_layers", "content_layers", "content_weight", "style_weight", "tv_weight", "domain", "clamp"):
        assert fast[key] == d2l[key], key
    resolved = Settings(preset="fast").resolved()
    assert resolved.scales == fast["scales"] > 1 and resolved.epochs == fast["epochs"] < d2l["epochs"]
    assert Settings(preset="fast", scales=1, epochs=50).resolved().scales == 1  # options still win


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
])
def test_bad_settings_are_refused(field, value, message):
    with pytest.raises(MultistyleError, match=message):
        Settings(**{field: value}).resolved()


# -- images -------------------------------------------------------------------------

def _save(tmp_path, name, image, **kwargs):
    path = tmp_path / name
    image.save(path, **kwargs)
    return str(path)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    loaded = images.load_image(_save(tmp_path, "rotated.jpg", image, exif=exif.tobytes()))
    assert loaded.size == (20, 40)


@pytest.mark.parametrize("mode, fill, expected", [
    ("L", 100, (100, 100, 100)),
    ("CMYK", (0, 0, 0, 0), (255, 255, 255)),
    ("RGBA", (255, 0, 0, 0), (255, 255, 255)),  # fully transparent red composites to white
    ("LA", (0, 128), (128, 128, 128)),  # half-transparent black on white
    ("I;16", 65535, (255, 255, 255)),
])
def test_colour_modes_become_rgb(tmp_path, mode, fill, expected):
    image = Image.new(mode, (8, 6), fill)
    extension = "tif" if mode in ("CMYK", "I;16") else "png"
    loaded = images.load_image(_save(tmp_path, f"image.{extension}", image))
    assert loaded.mode == "RGB"
    np.testing.assert_allclose(np.asarray(loaded)[0, 0], expected, atol=1)


def test_palette_with_transparency_composites_on_white(tmp_path):
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0] * 256)
    image.info["transparency"] = 0
    loaded = images.load_image(_save(tmp_path, "palette.png", image, transparency=0))
    assert np.asarray(loaded)[0, 0].tolist() == [255, 255, 255]


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing.png", "does not exist"),
    (lambda p: p, "is a directory"),
    (lambda p: _write(p / "empty.png", b""), "empty file"),
    (lambda p: _write(p / "notes.png", b"hello"), "not an image"),
    (lambda p: _write(p / "cut.png", _png_bytes()[:60]), "cannot read image"),
])
def test_bad_image_files_are_refused(tmp_path, make, message):
    with pytest.raises(MultistyleError, match=f"--content: .*{message}"):
        images.load_image(str(make(tmp_path)), "--content")


def _write(path, data):
    path.write_bytes(data)
    return path


def _png_bytes():
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_decompression_bomb_limit(tmp_path):
    path = _save(tmp_path, "big.png", Image.new("RGB", (100, 100)))
    assert images.load_image(path, max_pixels=10_000).size == (100, 100)
    with pytest.raises(MultistyleError, match="more than 4000 pixels; raise --max-pixels"):
        images.load_image(path, max_pixels=4000)


def test_size_parsing():
    assert images.parse_size("300x450") == ((300, 450), None)
    assert images.parse_size("512") == (None, 512)
    for bad in ("0x10", "-5", "abc", "3x4x5", ""):
        with pytest.raises(MultistyleError, match="--size"):
            images.parse_size(bad)
    assert images.fit_long_edge((400, 300), 200) == (150, 200)  # PIL (W, H) in, (H, W) out


def test_preprocess_is_bilinear_normalised_nchw_and_postprocess_inverts_it():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    x = images.preprocess(image, (15, 20))
    assert x.shape == (1, 3, 15, 20) and x.dtype == np.float32
    resized = np.asarray(image.resize((20, 15), Image.BILINEAR), dtype=np.float32) / 255
    np.testing.assert_allclose(x[0].transpose(1, 2, 0), (resized - images.RGB_MEAN) / images.RGB_STD, rtol=1e-6)
    same = images.preprocess(image, (30, 40))
    np.testing.assert_array_equal(images.postprocess(same), pixels)
    assert images.postprocess(np.full((1, 3, 2, 2), 50.0, np.float32)).max() == 255  # clipped, not wrapped


def test_atomic_save_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with images.atomic_write(str(target)) as handle:
            handle.write(b"partial")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.png"]
    pixels = np.zeros((4, 5, 3), np.uint8)
    for extension in ("png", "jpg", "webp", "tif"):
        images.save_image(pixels, str(tmp_path / f"o.{extension}"))
        assert Image.open(tmp_path / f"o.{extension}").size == (5, 4)
    with pytest.raises(MultistyleError, match="cannot tell the image format"):
        images.save_image(pixels, str(tmp_path / "o.xyz"))


# -- registry and imports --------------------------------------------------------------

def test_importing_multistyle_and_the_cli_loads_no_framework():
    code = textwrap.dedent("""
        import sys, contextlib, io
        import multistyle, multistyle.cli
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                multistyle.cli.main(["--help"])
            except SystemExit:
                pass
        print(",".join(m for m in ("torch", "torchvision", "mxnet", "paddle") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _fake_backend(monkeypatch, tmp_path, module_source, modules=("fakefw",)):
    (tmp_path / "fakebackend.py").write_text(textwrap.dedent(module_source))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    monkeypatch.delitem(sys.modules, "fakebackend", raising=False)
    spec = registry.BackendSpec("fake", "fakebackend:Fake", modules, "fake", "pin fakefw<2")
    monkeypatch.setitem(registry.BUILTIN_BACKENDS, "fake", spec)


def test_missing_framework_names_the_pip_extra(monkeypatch, tmp_path):
    _fake_backend(monkeypatch, tmp_path, "import fakefw\n")
    with pytest.raises(BackendUnavailable, match=r"backend 'fake' is not installed: fakefw is missing; "
                                                 r"install it with pip install 'multistyle\[fake\]'"):
        registry.load_backend_class("fake")


def test_broken_framework_is_reported_as_broken_with_the_fix(monkeypatch, tmp_path):
    (tmp_path / "fakefw.py").write_text("raise AttributeError(\"module 'numpy' has no attribute 'bool'\")\n")
    _fake_backend(monkeypatch, tmp_path, "import fakefw\n")
    monkeypatch.delitem(sys.modules, "fakefw", raising=False)
    with pytest.raises(BackendUnavailable, match=r"installed but broken: .*AttributeError: module 'numpy' has no "
                                                 r"attribute 'bool'; pin fakefw<2"):
        registry.load_backend_class("fake")
    rows = {row["name"]: row for row in registry.describe_backends(["fake"])}
    assert rows["fake"]["usable"] is False and "broken" in rows["fake"]["reason"]


def test_incomplete_backend_fails_at_construction(monkeypatch, tmp_path):
    _fake_backend(monkeypatch, tmp_path, """
        from multistyle.backend import Backend
        class Fake(Backend):
            name = "fake"
    """)
    cls = registry.load_backend_class("fake")
    with pytest.raises(TypeError, match="abstract"):
        cls()


def test_third_party_backends_register_through_entry_points(monkeypatch, tmp_path):
    (tmp_path / "thirdparty.py").write_text("from multistyle.backend import Backend\nclass Jax(Backend):\n    name = 'jax'\n")
    info = tmp_path / "multistyle_jax-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: multistyle-jax\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[multistyle.backends]\njax = thirdparty:Jax\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    assert "jax" in registry.backend_names()
    assert registry.load_backend_class("jax").__name__ == "Jax"


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(MultistyleError, match=r"--backend: unknown backend 'tensorflow'; choose from torch, mxnet, paddle"):
        registry.load_backend_class("tensorflow")


@pytest.mark.parametrize("device, expected", [("auto", "gpu:0"), ("cpu", "cpu"), ("gpu", "gpu:0"), ("gpu:1", "gpu:1")])
def test_device_resolution(device, expected):
    assert registry.resolve_device(device, ["cpu", "gpu:0", "gpu:1"], "x") == expected


def test_device_errors():
    assert registry.resolve_device("auto", ["cpu"], "x") == "cpu"
    with pytest.raises(MultistyleError, match="--device: x cannot use gpu:0; it sees cpu"):
        registry.resolve_device("gpu", ["cpu"], "x")
    for bad in ("cuda", "cpu:1", "gpu:a"):
        with pytest.raises(MultistyleError, match="--device: expected auto, cpu, gpu or gpu:N"):
            registry.resolve_device(bad, ["cpu"], "x")


def test_stop_rules_ignore_a_single_spike():
    from multistyle.loop import stop_reason

    def history(totals):
        return [{"epoch": i + 1, "total": t} for i, t in enumerate(totals)]

    settings = Settings(tol=0.01).resolved()
    improving = [100.0 * 0.99 ** i for i in range(30)]  # 1 % an epoch: 18 % over 20 epochs
    assert stop_reason(settings, history(improving)) == ""
    spiky = improving[:29] + [1e6]  # an L-BFGS blow-up on the last epoch: the window's best still improved
    assert stop_reason(settings, history(spiky)) == ""
    flat = improving[:10] + [improving[9] * (1 - 0.001)] * 20  # 0.1 % over the last 20 epochs
    assert "(< --tol 0.01) over the 20 epochs to epoch 30" in stop_reason(settings, history(flat))
    assert stop_reason(settings, history(flat[:20])) == ""  # no full window before epoch 21
    # A spike just before the window is not the baseline either: the best loss before it is.
    stalled = improving[:9] + [1e6] + [improving[8] * (1 - 0.001)] * 20
    assert "(< --tol 0.01) over the 20 epochs to epoch 30" in stop_reason(settings, history(stalled))
    target = Settings(until_loss=50.0).resolved()
    assert stop_reason(target, history([80.0, 50.0])) == "the loss reached 50 <= --until-loss 50 at epoch 2"
    assert stop_reason(target, history([80.0, 50.1])) == ""


def test_scale_plan_halves_sizes_and_favours_coarse_scales():
    from multistyle.loop import scale_plan

    assert scale_plan((300, 450), 1, 500) == [((300, 450), 500)]
    plan = scale_plan((300, 450), 3, 500)
    assert [size for size, _ in plan] == [(75, 112), (150, 225), (300, 450)]
    assert [epochs for _, epochs in plan] == [287, 142, 71] and sum(e for _, e in plan) == 500
    assert [e for _, e in scale_plan((64, 64), 3, 3)] == [1, 1, 1]  # every scale gets an epoch
    with pytest.raises(MultistyleError, match="--scales: 3 scales of 40x60 make the coarsest 10x15, smaller than 16"):
        scale_plan((40, 60), 3, 10)
    with pytest.raises(MultistyleError, match="--scales: 4 scales need at least as many epochs, got 3"):
        Settings(scales=4, epochs=3).resolved()


def test_resize_array_is_bilinear_per_channel():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 3, 8, 12)).astype(np.float32)
    np.testing.assert_allclose(images.resize_array(x, (8, 12)), x, rtol=1e-6, atol=1e-6)  # same size: unchanged
    flat = np.broadcast_to(np.array([1.5, -2.0, 0.25], np.float32)[None, :, None, None], (1, 3, 5, 7))
    up = images.resize_array(flat, (10, 14))
    assert up.shape == (1, 3, 10, 14) and up.dtype == np.float32
    np.testing.assert_allclose(up, np.broadcast_to(flat[:, :, :1, :1], up.shape), rtol=1e-6)
