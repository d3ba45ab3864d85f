"""AdaIN (arbitrary style) on every backend: the statistics and the transform against NumPy float64, the
encoder and decoder passes against the oracle, the public PyTorch port's two files read and run, and the
run-time controls (alpha, blends, masks); bad inputs as one line, on one framework or none.

The oracle (``support.oracle``) spells the port's ``nn.Sequential`` indices out by hand; the module under test
derives them from VGG-19's layer table.  Tolerances are those of ``docs/concepts/agreement.md``: after about
twenty convolutions rtol 1e-4 and 1e-4 x the largest value.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from multistyle.cli import main
from multistyle.nets import adain
from multistyle.nets.arbitrary import ArbitraryNetwork, ArbitraryRunner, load_arbitrary
from multistyle.nets.stylize import load_model, stylize
from support import oracle
from support.cli import one_error_line
from support.needs import INSTALLED, needs_a_backend
from support.torch_files import write_torch_file

#: The full file goes on past relu4_1 (to relu5_4); these are its next modules' keys, which AdaIN ignores.
BEYOND = {"32.weight": (512, 512, 3, 3), "32.bias": (512,)}
ONE_BACKEND = "torch" if "torch" in INSTALLED else (INSTALLED[0] if INSTALLED else "torch")


def _close(got, expected, what, rtol=1e-4, atol_scale=1e-4):
    atol = atol_scale * float(np.abs(expected).max())
    worst = float(np.abs(got - expected).max())
    assert got.shape == expected.shape, f"{what}: shape {got.shape}, expected {expected.shape}"
    assert np.allclose(got, expected, rtol=rtol, atol=atol), f"{what}: max difference {worst:.3g}"


def _published(folder, seed=0):
    """The port's two files, synthetic, keyed as its ``nn.Sequential`` modules are (no prefix)."""
    rng = np.random.default_rng(seed)
    encoder = adain.random_encoder(seed)
    # Its first module as the authors' conversion has it: RGB in [0, 1] to mean-subtracted BGR in [0, 255].
    encoder["encoder.0.weight"] = (255.0 * np.eye(3)[::-1]).astype(np.float32).reshape(3, 3, 1, 1)
    encoder["encoder.0.bias"] = -np.array([103.939, 116.779, 123.68], np.float32)
    encoder["encoder.2.weight"] /= 255.0  # keeps the activations at the scale of the other layers
    state = {name[len("encoder."):]: value for name, value in encoder.items()}
    state.update({key: rng.standard_normal(shape).astype(np.float32) * 0.01 for key, shape in BEYOND.items()})
    # He-normal, not torch's default init (under which nine layers shrink the signal, and the picture is
    # nearly the last bias whatever the features): a wrong transform must show in the picture.
    decoder = {name: (rng.standard_normal(shape) * np.sqrt(2.0 / (9 * shape[1])) if len(shape) == 4 else
                      rng.normal(0, 0.01, shape)).astype(np.float32)
               for name, shape in adain.decoder_shapes().items()}
    vgg, dec = folder / "vgg_normalised.pth", folder / "decoder.pth"
    write_torch_file(str(vgg), state)
    write_torch_file(str(dec), {name[len("decoder."):]: value for name, value in decoder.items()})
    return str(vgg), str(dec), {**encoder, **decoder}


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    return _published(tmp_path_factory.mktemp("adain"))


def _pixels(seed, h, w):
    return np.random.default_rng(seed).uniform(0, 1, (h, w, 3)).astype(np.float32)


def _nchw(pixels):
    return pixels.transpose(2, 0, 1)[None].astype(np.float64)


def _oracle_picture(params, content, styles, weights=None, alpha=1.0):
    """The port's ``style_transfer``: AdaIN to each style, the outputs blended by ``weights``, then alpha."""
    c = oracle.adain_encoder(_nchw(content), params)["relu4_1"]
    weights = weights or [1.0 / len(styles)] * len(styles)
    t = sum(w * oracle.adain(c, oracle.adain_encoder(_nchw(s), params)["relu4_1"]) for w, s in zip(weights, styles))
    t = alpha * t + (1 - alpha) * c
    h, w = content.shape[:2]
    return oracle.adain_decoder(t, params)[0, :, :h, :w].transpose(1, 2, 0)


def test_adain_matches_numpy_float64(backend):
    """Per image and channel (a batch of two, each its own style): the unbiased statistics plus 1e-5."""
    rng = np.random.default_rng(4)
    content = rng.normal(1.0, 2.0, (2, 5, 3, 4)).astype(np.float32)
    style = rng.gamma(2.0, 1.5, (2, 5, 6, 5)).astype(np.float32)  # a size unlike the content's: n and n - 1 differ
    got = backend.out_of_layers(adain.adain(backend, backend.into_layers(backend.asarray(content)),
                                            backend.into_layers(backend.asarray(style))))
    _close(backend.to_numpy(got), oracle.adain(content, style), f"{backend.name} AdaIN", 1e-5, 1e-6)


def test_the_encoder_and_decoder_match_the_oracle_at_odd_sizes(backend, published):
    """19x26: ceil-mode pools give relu4_1 3x4 (floor mode would give 2x3), and the decoder 24x32."""
    params = published[2]
    x = _pixels(1, 19, 26).transpose(2, 0, 1)[None]
    got = adain.encode(backend, backend.parameters(params), backend.into_layers(backend.asarray(x)),
                       adain.STYLE_LAYERS)
    expected = oracle.adain_encoder(x, params)
    for name in adain.STYLE_LAYERS:
        _close(backend.to_numpy(backend.out_of_layers(got[name])), expected[name], f"{backend.name} {name}")
    assert expected["relu4_1"].shape[2:] == adain.feature_size(19, 26) == (3, 4)
    t = np.random.default_rng(2).uniform(0, 2, (1, 512, 3, 4))
    out = adain.decode(backend, backend.parameters(params), backend.into_layers(backend.asarray(t.astype(np.float32))))
    _close(backend.to_numpy(backend.out_of_layers(out)), oracle.adain_decoder(t, params), f"{backend.name} decoder")


def test_the_published_files_give_the_ports_picture(backend, published):
    """decoder.pth with vgg_normalised.pth (which goes on past relu4_1), read without torch: the port's
    ``style_transfer`` picture, cropped to the content's size, on every framework."""
    vgg, dec, params = published
    network = load_model(dec, vgg)
    assert isinstance(network, ArbitraryNetwork) and network.metadata["encoder"].startswith("vgg_normalised.pth")
    for name, value in params.items():  # the files' arrays, bit for bit
        assert np.array_equal(network.params[name], value), name
    content, style = _pixels(5, 21, 30), _pixels(6, 26, 18)
    got = ArbitraryRunner(backend, network)(content, [style])
    _close(got, _oracle_picture(params, content, [style]), f"{backend.name} picture")


def test_a_network_passed_again_reuses_its_runner_and_the_compiled_pass_agrees(backend, published):
    """``stylize`` keeps a network object's runner (a server's warm worker passes the same network again): the
    second pass at a size is the compiled one (JAX's program, TensorFlow's graph), and gives the first's
    picture; another backend instance gets its own runner."""
    from multistyle.nets.stylize import runner_for

    network = load_model(published[1], published[0])
    content, style = (Image.fromarray((_pixels(seed, 21, 30) * 255).astype(np.uint8)) for seed in (7, 8))
    first = stylize(network, content, style=style, backend=backend)
    runner = runner_for(backend, network)
    assert runner._seen, "stylize did not keep the network's runner"
    second = stylize(network, content, style=style, backend=backend)
    assert runner_for(backend, network) is runner
    assert np.abs(first.image.astype(int) - second.image.astype(int)).max() <= 1
    assert runner_for(type(backend)(device="cpu"), network) is not runner


@needs_a_backend
def test_alpha_zero_decodes_the_contents_own_features_and_blends_weigh_styles(published):
    """One framework: alpha 0 is the decoding of the content's features, alpha 0.4 the port's mix; a 1,0 blend
    is the first style alone, and 0.3,0.7 the port's weighted interpolation."""
    from multistyle import get_backend

    B = get_backend(ONE_BACKEND, "cpu")
    params = published[2]
    run = ArbitraryRunner(B, ArbitraryNetwork(params))
    content, first = _pixels(7, 16, 24), _pixels(8, 16, 24)
    second = 0.8 + 0.2 * _pixels(9, 24, 16) ** 4  # bright and flat: statistics far from the first's
    c = oracle.adain_encoder(_nchw(content), params)["relu4_1"]
    _close(run(content, [first], alpha=0.0), oracle.adain_decoder(c, params)[0].transpose(1, 2, 0), "alpha 0")
    _close(run(content, [first], alpha=0.4), _oracle_picture(params, content, [first], alpha=0.4), "alpha 0.4")
    alone = run(content, [first])
    _close(run(content, [first, second], blend=[1.0, 0.0]), alone, "blend 1,0")
    _close(run(content, [first, second], blend=[0.3, 0.7]),
           _oracle_picture(params, content, [first, second], [0.3, 0.7]), "blend 0.3,0.7")
    assert np.abs(run(content, [first, second], blend=[0.3, 0.7]) - alone).max() > 0.05 * np.abs(alone).max()


@needs_a_backend
def test_masks_give_each_region_its_styles_statistics():
    """Two styles, left and right halves of relu4_1's columns: each half of the features is that half of the
    content normalised over itself and given its own style's statistics."""
    from multistyle import get_backend

    B = get_backend(ONE_BACKEND, "cpu")
    rng = np.random.default_rng(11)
    content = rng.normal(0.5, 1.0, (1, 6, 4, 6)).astype(np.float32)
    styles = [rng.gamma(2.0, s, (1, 6, 5, 5)).astype(np.float32) for s in (0.5, 3.0)]
    left = np.zeros((4, 6))
    left[:, :3] = 1.0
    got = B.to_numpy(B.out_of_layers(adain.stylised_features(
        B, B.into_layers(B.asarray(content)), [B.into_layers(B.asarray(s)) for s in styles], masks=[left, 1 - left])))
    for columns, style in ((slice(0, 3), styles[0]), (slice(3, 6), styles[1])):
        expected = oracle.adain(content[:, :, :, columns], style)
        _close(got[:, :, :, columns], expected, f"region {columns}", 1e-5, 1e-6)
    # A mask that covers only part: the rest keeps the content's own features.
    part = np.zeros((4, 6))
    part[:2, :] = 1.0
    got = B.to_numpy(B.out_of_layers(adain.stylised_features(
        B, B.into_layers(B.asarray(content)), [B.into_layers(B.asarray(styles[0]))], masks=[part])))
    _close(got[:, :, 2:], content[:, :, 2:].astype(np.float64), "uncovered rows", 1e-6, 1e-7)
    _close(got[:, :, :2], oracle.adain(content[:, :, :2], styles[0]), "covered rows", 1e-5, 1e-6)


def test_the_mask_at_relu4_1_follows_the_ceil_pools():
    """An odd size: a 17-pixel-wide mask is 3 columns at relu4_1 (ceil(17/8)); the last column averages the
    one odd pixel column the pools carry alone (17 = 16 + 1)."""
    mask = np.zeros((9, 17))
    mask[:, 16] = 1.0
    small = adain.mask_at_features(mask)
    assert small.shape == adain.feature_size(9, 17) == (2, 3)
    np.testing.assert_allclose(small[:, 2], 1.0)
    np.testing.assert_allclose(small[:, :2], 0.0, atol=1e-12)


@needs_a_backend
def test_run_with_the_published_files_from_the_command_line(published, image_files, tmp_path, capsys):
    vgg, dec, params = published
    out = tmp_path / "out.png"
    assert main(["run", "--model", dec, "--weights", vgg, "--content", image_files["content"], "--style",
                 image_files["style"], "--output", str(out), "--backend", ONE_BACKEND, "--device", "cpu",
                 "--alpha", "0.8"]) == 0
    assert "wrote" in capsys.readouterr().out
    from multistyle import images
    from multistyle.transfer import style_pixels
    from multistyle.settings import Settings

    content = images.resize_pixels(images.load_image(image_files["content"]), (48, 64))
    style = style_pixels(images.load_image(image_files["style"]), (48, 64), Settings().resolved(), content)
    expected = np.clip(np.rint(_oracle_picture(params, content, [style], alpha=0.8) * 255), 0, 255)
    picture = np.asarray(Image.open(out)).astype(float)
    assert picture.shape == (48, 64, 3)
    assert np.abs(picture - expected).max() <= 1  # a value at .5 may round either way


@needs_a_backend
def test_a_multistyle_file_carries_its_encoder(published, image_files, tmp_path):
    """The .safetensors holds both halves and names the encoder; it runs without --weights, and refuses one."""
    vgg, dec, params = published
    network = load_model(dec, vgg)
    path = tmp_path / "adain.safetensors"
    network.save(str(path))
    again = load_model(str(path))
    assert isinstance(again, ArbitraryNetwork) and again.metadata["encoder"] == network.metadata["encoder"]
    for name in params:
        assert np.array_equal(again.params[name], network.params[name]), name
    a = stylize(str(path), image_files["content"], style=image_files["style"], backend=ONE_BACKEND, device="cpu")
    b = stylize(dec, image_files["content"], style=image_files["style"], backend=ONE_BACKEND, device="cpu",
                weights=vgg)
    assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 1
    with pytest.raises(Exception, match="carries the encoder"):
        load_arbitrary(str(path), weights=vgg)


@pytest.mark.parametrize("case, message", [
    ("no-style", "--style: "),
    ("no-encoder", "an AdaIN decoder without its encoder"),
    ("alpha", "--alpha: expected a number in [0, 1]"),
    ("torchvision-vgg", "not a normalised VGG-19"),
    ("encoder-as-model", "a normalised VGG-19 (AdaIN's encoder), not a network"),
    ("truncated-decoder", "not a complete AdaIN decoder: '28.weight' is missing"),
    ("alpha-per-style", "--alpha: "),
])
def test_bad_adain_input_is_one_line(published, npz_weights, image_files, tmp_path, capsys, case, message):
    """Each is refused before any framework is needed (so in the core env too), and nothing is written."""
    vgg, dec, params = published
    model, weights, extra = dec, vgg, ["--style", image_files["style"]]
    if case == "no-style":
        extra = []
    elif case == "no-encoder":
        weights = "imagenet"
    elif case == "alpha":
        extra += ["--alpha", "1.5"]
    elif case == "torchvision-vgg":
        weights = npz_weights
    elif case == "encoder-as-model":
        model = vgg
    elif case == "truncated-decoder":
        model = str(tmp_path / "short.pth")
        write_torch_file(model, {name[len("decoder."):]: value for name, value in params.items()
                                 if name.startswith("decoder.") and not name.startswith("decoder.28.")})
    elif case == "alpha-per-style":
        from multistyle.nets import StyleNetwork

        model = str(tmp_path / "johnson.safetensors")
        StyleNetwork.fresh(4).save(model)
        weights, extra = "imagenet", ["--alpha", "0.5"]
    out = tmp_path / "o.png"
    assert main(["run", "--model", model, "--weights", weights, "--content", image_files["content"],
                 "--output", str(out), *extra]) == 2
    one_error_line(capsys.readouterr().err, message)
    assert not out.exists()


# -- training (train --arbitrary) ----------------------------------------------------------------------------------

def _crops(seed, n=2, size=16):
    return np.random.default_rng(seed).uniform(0, 255, (n, 3, size, size)).astype(np.float32)


def test_a_compiled_training_step_is_the_eager_one_and_lowers_the_loss(backend, published):
    """On each backend: the step ``compile_gradients`` gives (JAX's program, TensorFlow's graph) has the eager
    gradient, and five Adam steps on one batch lower the loss."""
    from multistyle.nets.adain_training import ArbitraryLoss
    from multistyle.optim import ParameterAdam

    params = published[2]
    loss = ArbitraryLoss(backend, backend.parameters({k: v for k, v in params.items() if k.startswith("encoder.")}))
    decoder = backend.parameters({k: v for k, v in params.items() if k.startswith("decoder.")})
    contents, styles = backend.asarray(_crops(1)), backend.asarray(_crops(2))
    step = backend.compile_gradients(loss.terms)
    terms, grads = step(decoder, contents, styles)
    _, eager = backend.loss_and_grads(lambda p: loss.terms(p, contents, styles)["total"], decoder)
    for key in ("decoder.1.weight", "decoder.14.bias", "decoder.28.weight"):
        got, expected = backend.to_numpy(grads[key]), backend.to_numpy(eager[key])
        assert np.linalg.norm(got - expected) < 1e-3 * np.linalg.norm(expected), f"{backend.name} {key}"
    # 1e-5: the test's He-normal decoder overshoots at the port's 1e-4 (8.2 -> 10.5 -> 7.2 ... on torch).
    adam, first = ParameterAdam(backend, 1e-5), backend.item(terms["total"])
    for _ in range(5):
        decoder = adam.step(decoder, step(decoder, contents, styles)[1])
    assert backend.item(step(decoder, contents, styles)[0]["total"]) < first


@needs_a_backend
def test_the_training_loss_is_the_papers(published):
    """NumPy float64 of the port's ``Net.forward``: content MSE at relu4_1 against the AdaIN target, and the
    mean/std MSEs at relu1_1..relu4_1, weighted 1 and 10."""
    from multistyle import get_backend
    from multistyle.nets.adain_training import ArbitraryLoss

    B = get_backend(ONE_BACKEND, "cpu")
    params = published[2]
    contents, styles = _crops(3), _crops(4)
    loss = ArbitraryLoss(B, B.parameters({k: v for k, v in params.items() if k.startswith("encoder.")}))
    got = {k: B.item(v) for k, v in loss.terms(B.parameters({k: v for k, v in params.items()
                                                             if k.startswith("decoder.")}),
                                               B.asarray(contents), B.asarray(styles)).items()}
    style = oracle.adain_encoder(styles / 255.0, params)
    target = oracle.adain(oracle.adain_encoder(contents / 255.0, params)["relu4_1"], style["relu4_1"])
    seen = oracle.adain_encoder(oracle.adain_decoder(target, params), params)
    content = np.mean((seen["relu4_1"] - target) ** 2)
    style_term = sum(np.mean((a - b) ** 2) for name in adain.STYLE_LAYERS
                     for a, b in zip(oracle.calc_mean_std(seen[name]), oracle.calc_mean_std(style[name])))
    assert got["content"] == pytest.approx(content, rel=1e-4)
    assert got["style"] == pytest.approx(10 * style_term, rel=1e-4)
    assert got["total"] == pytest.approx(content + 10 * style_term, rel=1e-4)


@pytest.fixture(scope="module")
def one_step_of(published):
    import functools

    return functools.lru_cache(maxsize=None)(lambda name: _one_step(name, published[2]))


def _one_step(name, params):
    from multistyle import get_backend
    from multistyle.nets.adain_training import ArbitraryLoss
    from multistyle.optim import ParameterAdam

    B = get_backend(name, "cpu")
    loss = ArbitraryLoss(B, B.parameters({k: v for k, v in params.items() if k.startswith("encoder.")}))
    decoder = B.parameters({k: v for k, v in params.items() if k.startswith("decoder.")})
    terms, grads = B.compile_gradients(loss.terms)(decoder, B.asarray(_crops(5)), B.asarray(_crops(6)))
    stepped = ParameterAdam(B, 1e-4).step(decoder, grads)
    return ({k: B.item(v) for k, v in terms.items()}, {k: B.to_numpy(v) for k, v in grads.items()},
            {k: B.to_numpy(v) for k, v in stepped.items()})


PAIRS = [("torch", other) for other in ("jax", "mxnet", "paddle", "tensorflow")]


@pytest.mark.cross_backend
@pytest.mark.parametrize("pair", PAIRS, ids=["-".join(p) for p in PAIRS])
def test_one_training_step_agrees_across_frameworks(pair, one_step_of):
    """The same start and batches: the terms to rtol 1e-4, each gradient to 1e-2 of its norm (it sums over the
    batch through about forty ReLUs and twelve max pools, whose kinks float32 decides per framework), and the
    decoder after one Adam step to float32 rounding where the gradient is clearly away from 0."""
    from support.needs import require

    for name in pair:
        require(name)
    (terms_a, grads_a, after_a), (terms_b, grads_b, after_b) = (one_step_of(name) for name in pair)
    for term in terms_a:
        assert terms_a[term] == pytest.approx(terms_b[term], rel=1e-4), f"{pair}: {term} loss"
    for key in grads_a:
        relative = np.linalg.norm(grads_a[key] - grads_b[key]) / np.linalg.norm(grads_b[key])
        assert relative < 1e-2, f"{pair}: gradient of {key} differs by {relative:.3g} of its norm"
        decided = np.abs(grads_b[key]) > 1e-2 * np.abs(grads_b[key]).max()
        np.testing.assert_allclose(after_a[key][decided], after_b[key][decided], rtol=0, atol=1e-7,
                                   err_msg=f"{pair}: {key} after one Adam step")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Three photos (at least 24 on a side) and three style images (one 16x17), of unequal sizes."""
    root = tmp_path_factory.mktemp("adain-train")
    rng = np.random.default_rng(12)
    for kind, shapes in (("photos", ((26, 28), (24, 32), (30, 24))), ("styles", ((24, 26), (16, 17), (30, 24)))):
        (root / kind).mkdir()
        for i, shape in enumerate(shapes):
            Image.fromarray(rng.integers(0, 256, (*shape, 3)).astype(np.uint8)).save(root / kind / f"{i}.png")
    return str(root / "photos"), str(root / "styles")


def _train_arbitrary(folders, output, **options):
    from multistyle.nets.adain_training import train_arbitrary

    return train_arbitrary(*folders, output=str(output), backend=ONE_BACKEND, device="cpu", weights="random:2",
                           size=16, batch_size=2, **options)


@needs_a_backend
def test_train_arbitrary_then_run_with_any_style(folders, image_files, tmp_path, capsys):
    model = tmp_path / "adain.safetensors"
    assert main(["train", "--arbitrary", "--contents", folders[0], "--styles", folders[1], "--output", str(model),
                 "--size", "16", "--batch-size", "2", "--iterations", "2", "--weights", "random:2", "--backend",
                 ONE_BACKEND, "--device", "cpu", "--quiet"]) == 0
    assert "wrote" in capsys.readouterr().out
    network = load_model(str(model))
    assert isinstance(network, ArbitraryNetwork) and network.iterations == 2
    from multistyle.nets.arbitrary import describe_encoder

    assert network.metadata["encoder"] == describe_encoder(adain.random_encoder(2), "random:2")
    fresh = adain.init_decoder(0)
    assert max(float(np.abs(network.params[k] - fresh[k]).max()) for k in fresh) > 0  # the decoder trained
    out = tmp_path / "out.png"
    assert main(["run", "--model", str(model), "--content", image_files["content"], "--style", image_files["style"],
                 "--output", str(out), "--backend", ONE_BACKEND, "--device", "cpu"]) == 0
    assert np.asarray(Image.open(out)).shape == (48, 64, 3)
    assert "the AdaIN encoder has random weights" in capsys.readouterr().err


def test_the_training_benchmarks_plain_loop_takes_the_same_steps(backend, folders):
    """``benchmarks/adain_training.py`` times ``train_arbitrary`` against a plain loop in the framework's idiom
    (``references/adain_training.py``): on the same crops and decoder, both have the same loss at the first
    iteration and, after one Adam step each, at the second, so the benchmark compares the same work."""
    from multistyle.nets.adain_training import LR, STYLE_STREAM, train_arbitrary
    from multistyle.references.adain_training import LOOPS, Job
    from multistyle.training import Photos

    photos, paintings = Photos(folders[0], 16), Photos(folders[1], 16)
    job = Job([photos.batch(i, 2, 0) for i in range(2)], [paintings.batch(i, 2, 0, STYLE_STREAM) for i in range(2)],
              adain.random_encoder(2), adain.init_decoder(0), lr=LR)
    LOOPS[backend.name](job, 2)
    ours = []
    train_arbitrary(*folders, backend=backend, weights="random:2", size=16, batch_size=2, iterations=2,
                    callback=lambda record: ours.append(record["total"]))
    assert ours[0] == pytest.approx(job.losses[0], rel=1e-4)
    assert ours[1] == pytest.approx(job.losses[1], rel=1e-3)
    assert abs(ours[1] - ours[0]) > 1e-3 * ours[0]  # the step moved the loss: the second comparison tells


@needs_a_backend
def test_resume_equals_an_uninterrupted_arbitrary_run(folders, tmp_path):
    straight = _train_arbitrary(folders, tmp_path / "a.safetensors", iterations=4, checkpoint_every=0)
    first = _train_arbitrary(folders, tmp_path / "b.safetensors", iterations=2)
    again = _train_arbitrary(folders, tmp_path / "b.safetensors", iterations=4, resume=True)
    assert first.iterations == 2 and again.iterations == 4
    moved = max(float(np.abs(straight.params[k] - first.params[k]).max()) for k in straight.params)
    assert moved > 1e-6  # the last two iterations changed something, so equality below means something
    for name in straight.params:
        np.testing.assert_allclose(again.params[name], straight.params[name], rtol=1e-6, atol=1e-8, err_msg=name)
    with pytest.raises(Exception, match="another encoder"):
        from multistyle.nets.adain_training import train_arbitrary

        train_arbitrary(*folders, output=str(tmp_path / "b.safetensors"), backend=ONE_BACKEND, device="cpu",
                        weights="random:3", size=16, batch_size=2, iterations=6, resume=True)


@pytest.mark.parametrize("case, message", [
    ("no-styles", "--styles: required with --arbitrary"),
    ("with-style", "--style: does not apply to --arbitrary"),
    ("size", "--size: AdaIN's training crops are a multiple of 8"),
    ("small-style", "1.png is 16x17, smaller than the 24x24 crop"),
    ("styles-without-arbitrary", "--styles: a per-style network learns one --style"),
])
def test_bad_train_arbitrary_input_is_one_line(folders, image_files, tmp_path, capsys, case, message):
    output = tmp_path / "n.safetensors"
    args = ["train", "--arbitrary", "--contents", folders[0], "--styles", folders[1], "--output", str(output),
            "--size", "16", "--weights", "random:1", "--iterations", "1"]
    if case == "no-styles":
        args = args[:4] + args[6:]
    elif case == "with-style":
        args += ["--style", image_files["style"]]
    elif case == "size":
        args[args.index("--size") + 1] = "20"
    elif case == "small-style":
        args[args.index("--size") + 1] = "24"  # every photo is at least 24 on a side, one style image 16x17
    elif case == "styles-without-arbitrary":
        args = [a for a in args if a != "--arbitrary"] + ["--style", image_files["style"]]
    assert main(args) == 2
    one_error_line(capsys.readouterr().err, message)
    assert not output.exists()


@needs_a_backend
def test_the_onnx_export_matches(published, tmp_path, capsys):
    """``export --onnx`` of the port's files: onnxruntime's picture for a content and a style of other (odd)
    sizes, at alpha 1 and 0.3, is the oracle's, and the backend's."""
    from support.needs import require

    require("onnx")
    import onnxruntime

    vgg, dec, params = published
    graph = tmp_path / "adain.onnx"
    assert main(["export", dec, "--weights", vgg, "--onnx", str(graph)]) == 0
    assert "'content' and 'style'" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["content", "style", "alpha"]
    content, style = _pixels(13, 19, 26), _pixels(14, 30, 17)
    from multistyle import get_backend

    run = ArbitraryRunner(get_backend(ONE_BACKEND, "cpu"), load_model(dec, vgg))
    for alpha in (1.0, 0.3):
        (y,) = session.run(None, {"content": content.transpose(2, 0, 1)[None], "alpha": np.array(alpha, np.float32),
                                  "style": style.transpose(2, 0, 1)[None]})
        got = y[0].transpose(1, 2, 0)
        expected = np.clip(_oracle_picture(params, content, [style], alpha=alpha), 0, 1)
        _close(got, expected, f"onnxruntime at alpha {alpha}")
        _close(got, np.clip(run(content, [style], alpha=alpha), 0, 1), f"onnxruntime against {ONE_BACKEND}")


@needs_a_backend
def test_batch_runs_every_content_with_every_style_and_resumes(published, image_files, tmp_path, capsys):
    """``batch --model`` with an AdaIN network: contents x styles, the pictures ``stylize`` gives; run again,
    everything is skipped; a new --alpha is another job (its key differs)."""
    import json

    from multistyle import images

    vgg, dec, _ = published
    model = str(tmp_path / "adain.safetensors")
    load_model(dec, vgg).save(model)
    folder = tmp_path / "styles"
    folder.mkdir()
    for i in range(2):
        images.save_image(np.random.default_rng(20 + i).integers(0, 256, (20 + 4 * i, 28, 3)).astype(np.uint8),
                          str(folder / f"s{i}.png"))
    args = ["batch", "--model", model, "--contents", image_files["content"], "--styles", str(folder), "--output",
            str(tmp_path / "out"), "--backend", ONE_BACKEND, "--device", "cpu", "--quiet", "--alpha", "0.7"]
    assert main(args) == 0
    assert "2 jobs: 2 done" in capsys.readouterr().out
    results = json.loads((tmp_path / "out" / "results.json").read_text())["jobs"]
    for row in results:
        style = row["style"] if os.path.isabs(row["style"]) else os.path.join(str(folder), row["style"])
        expected = stylize(model, image_files["content"], style=style, backend=ONE_BACKEND, device="cpu", alpha=0.7)
        picture = np.asarray(Image.open(tmp_path / "out" / row["output"])).astype(int)
        assert np.abs(picture - expected.image.astype(int)).max() <= 1, row["style"]
    assert main(args) == 0
    assert "2 skipped" in capsys.readouterr().out
    args[args.index("--alpha") + 1] = "0.5"
    assert main(args) == 0
    assert "2 jobs: 2 done" in capsys.readouterr().out


@needs_a_backend
def test_compare_runs_the_network_with_a_style_on_each_backend(published, image_files, tmp_path, capsys):
    """``compare --model`` with an AdaIN network and a style: each backend's picture in the report, which names
    the style and alpha; the picture is ``stylize``'s."""
    import json

    vgg, dec, _ = published
    out = tmp_path / "report"
    assert main(["compare", "--model", dec, "--weights", vgg, "--content", image_files["content"], "--style",
                 image_files["style"], "--alpha", "0.6", "--backends", ONE_BACKEND, "--device", "cpu", "--output",
                 str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["styles"] == ["style.jpg"] and report["alpha"] == 0.6
    assert "alpha 0.6" in (out / "index.html").read_text()
    expected = stylize(dec, image_files["content"], style=image_files["style"], backend=ONE_BACKEND, device="cpu",
                       weights=vgg, alpha=0.6).image.astype(int)
    picture = np.asarray(Image.open(out / f"{ONE_BACKEND}.png")).astype(int)
    assert np.abs(picture - expected).max() <= 1


def test_the_flop_count_is_the_layers(published):
    """Counted from the port's layout (the oracle's module lists and the files' shapes) at 20x12: the encoder
    on the picture and on a 9x17 style (ceil-mode pools), the decoder from relu4_1's 3x2 back up to 24x16."""
    params = published[2]

    def encoder(h, w):
        total = 2 * h * w * 9  # the 1x1 convolution, 3 to 3 channels
        for step in oracle.ADAIN_ENCODER:
            if step == "M":
                h, w = (h + 1) // 2, (w + 1) // 2
            else:
                out, cin = params[f"encoder.{step}.weight"].shape[:2]
                total += 2 * h * w * out * cin * 9
        return total

    h, w, decoder = 3, 2, 0
    for step in oracle.ADAIN_DECODER:
        if step == "U":
            h, w = 2 * h, 2 * w
        else:
            out, cin = params[f"decoder.{step}.weight"].shape[:2]
            decoder += 2 * h * w * out * cin * 9
    assert adain.flops(20, 12, style=(9, 17)) == encoder(20, 12) + encoder(9, 17) + decoder
