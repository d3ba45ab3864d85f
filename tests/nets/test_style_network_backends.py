"""The style network on every backend: its forward pass against NumPy float64, and (with every framework
installed) one training step and the model files across frameworks.

Tolerances are those of ``docs/concepts/agreement.md``: outputs after about twenty convolutions rtol 1e-4 and
1e-4 x the largest value; loss terms rtol 1e-4.  A parameter's gradient is compared by its norm (see
:func:`test_one_training_step_agrees`).
"""

from __future__ import annotations

import functools
import itertools
import warnings

import numpy as np
import pytest

from multistyle import get_backend, images
from multistyle.backend import BUILTIN_BACKENDS
from multistyle.nets import StyleNetwork, transformer
from multistyle.nets.stylize import network_pass, stylize
from multistyle.optim import ParameterAdam
from multistyle.settings import Settings
from multistyle.training import Photos, TrainingLoss, train
from multistyle.weightfiles import LoadedWeights
from support import oracle
from support.needs import require
from support.torch_files import write_torch_file

NAMES = sorted(BUILTIN_BACKENDS)
PAIRS = list(itertools.combinations(NAMES, 2))
WIDTH = 4


def _close(a, b, rtol, atol_scale, what):
    atol = atol_scale * max(float(np.abs(b).max()), 1e-30)
    diff = float(np.abs(a - b).max())
    assert np.allclose(a, b, rtol=rtol, atol=atol), f"{what}: max difference {diff:.3g} (max abs {np.abs(b).max():.3g})"


def test_the_forward_pass_matches_numpy_at_an_odd_size(backend):
    """18x22 is not a multiple of 4: the stride-2 convolutions round up, the output is 20x24 before cropping."""
    params = transformer.init_parameters(WIDTH, seed=3)
    params["in2.weight"] = np.linspace(0.5, 1.5, 2 * WIDTH).astype(np.float32)  # norms that are not identities
    params["res1.in1.bias"] = np.linspace(-0.3, 0.3, 4 * WIDTH).astype(np.float32)
    x = np.random.default_rng(1).uniform(0, 255, (2, 3, 18, 22)).astype(np.float32)
    got = backend.to_numpy(backend.out_of_layers(
        transformer.forward(backend, backend.parameters(params), backend.into_layers(backend.asarray(x)))))
    expected = oracle.style_network(x, params)
    assert got.shape == expected.shape == (2, 3, 20, 24)
    _close(got, expected, 1e-4, 1e-4, f"{backend.name} style network output")


def test_one_pass_keeps_the_pictures_size(backend):
    network = StyleNetwork.fresh(WIDTH, seed=1)
    pixels = np.random.default_rng(2).integers(0, 256, (13, 17, 3)).astype(np.uint8)
    result = stylize(network, pixels, backend=backend)
    assert result.image.shape == (13, 17, 3) and result.image.dtype == np.uint8
    raw = network_pass(backend, network, pixels)
    expected = oracle.style_network(pixels.transpose(2, 0, 1)[None].astype(np.float64), network.params)
    np.testing.assert_allclose(raw, expected[0, :, :13, :17].transpose(1, 2, 0), rtol=1e-4,
                               atol=1e-4 * np.abs(expected).max())


def test_a_compiled_training_step_is_the_eager_one_and_lowers_the_loss(backend, image_files, npz_weights):
    """On each backend's own (newest) framework: the step ``compile_gradients`` gives (JAX's XLA program,
    TensorFlow's graph) has the eager gradient (``loss_and_grads``), and five steps on one batch lower the loss."""
    from multistyle.weightfiles import read_weights

    settings = Settings(preset="fast").resolved()
    style = images.resize_pixels(images.load_image(image_files["style"]), (24, 32))
    loss = TrainingLoss(backend, LoadedWeights(read_weights(npz_weights)[0], "synthetic", True), settings, [style])
    batch = backend.asarray(np.random.default_rng(2).uniform(0, 255, (2, 3, 24, 24)).astype(np.float32))
    params = backend.parameters(transformer.init_parameters(WIDTH, seed=4))
    step = backend.compile_gradients(loss.terms)
    terms, grads = step(params, batch)
    _, eager = backend.loss_and_grads(lambda p: loss.terms(p, batch)["total"], params)
    for key in ("conv1.conv2d.weight", "res3.conv1.conv2d.weight", "deconv3.conv2d.bias", "in5.weight"):
        _close(backend.to_numpy(grads[key]), backend.to_numpy(eager[key]), 1e-3, 1e-4, f"{backend.name} {key}")
    adam, first = ParameterAdam(backend, 1e-2), backend.item(terms["total"])
    for _ in range(5):
        params = adam.step(params, step(params, batch)[1])
    assert backend.item(step(params, batch)[0]["total"]) < first


# -- across frameworks (the `all` env) ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def step_of(tmp_path_factory, image_files, npz_weights):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(5)
    for i in range(2):
        images.save_image(rng.integers(0, 256, (24 + 4 * i, 28, 3)).astype(np.uint8), str(folder / f"p{i}.png"))
    return functools.lru_cache(maxsize=None)(lambda name: _one_step(name, str(folder), image_files, npz_weights))


def _one_step(name, folder, image_files, npz_weights):
    """The loss terms, the gradient and the parameters after one Adam step, from the same start and batch."""
    from multistyle.weightfiles import read_weights

    B = get_backend(name, "cpu")
    settings = Settings(preset="fast").resolved()
    photos = Photos(folder, 24)
    style = images.resize_pixels(images.load_image(image_files["style"]), (24, 32))
    loss = TrainingLoss(B, LoadedWeights(read_weights(npz_weights)[0], "synthetic", True), settings, [style])
    params = B.parameters(transformer.init_parameters(WIDTH, seed=0))
    terms, grads = B.compile_gradients(loss.terms)(params, B.asarray(photos.batch(0, 2, seed=0)))
    stepped = ParameterAdam(B, 1e-3).step(params, grads)
    return ({key: B.item(value) for key, value in terms.items()},
            {key: B.to_numpy(value) for key, value in grads.items()},
            {key: B.to_numpy(value) for key, value in stepped.items()})


def _zero_gradient(key):
    """Whether the loss cannot depend on this shift, so that its gradient is 0 and each framework's is float32
    noise: a convolution's bias when an instance norm follows (the norm subtracts each channel's mean), and a
    residual block's last shift (``resN.in2.bias``), a per-channel constant on the residual stream that only
    reaches ``deconv1``, whose instance norm ``in4`` subtracts it again."""
    return (key.endswith(".conv2d.bias") and key != "deconv3.conv2d.bias") or (
        key.startswith("res") and key.endswith(".in2.bias"))


@pytest.mark.cross_backend
@pytest.mark.parametrize("pair", PAIRS, ids=["-".join(p) for p in PAIRS])
def test_one_training_step_agrees(pair, step_of):
    for name in pair:
        require(name)
    (terms_a, grads_a, after_a), (terms_b, grads_b, after_b) = (step_of(name) for name in pair)
    for term in terms_a:
        assert terms_a[term] == pytest.approx(terms_b[term], rel=1e-4), f"{pair}: {term} loss"
    for key in grads_a:
        if _zero_gradient(key):
            scale = np.abs(grads_b[key.replace(".bias", ".weight")]).max()
            assert max(np.abs(grads_a[key]).max(), np.abs(grads_b[key]).max()) < 1e-4 * scale, key
            continue
        # Relative to the whole tensor: each gradient sums over every pixel of the batch, through the network's
        # and VGG-19's ReLUs and max-pools, whose kinks float32 rounding decides differently per framework.
        # Measured: every pair within 2.9e-3 (JAX against the others; MXNet against torch, 1.5e-5).
        relative = np.linalg.norm(grads_a[key] - grads_b[key]) / np.linalg.norm(grads_b[key])
        assert relative < 1e-2, f"{pair}: gradient of {key} differs by {relative:.3g} of its norm"
        # Adam's first step is lr x g / (|g| + eps): about lr x sign(g), whatever |g| is.  Where the gradient is
        # clearly away from 0 the sign is the same, and the parameters agree to float32 rounding.
        decided = np.abs(grads_b[key]) > 1e-2 * np.abs(grads_b[key]).max()
        np.testing.assert_allclose(after_a[key][decided], after_b[key][decided], rtol=0, atol=1e-6,
                                   err_msg=f"{pair}: {key} after one Adam step")


@pytest.mark.cross_backend
def test_a_model_written_by_each_framework_runs_on_every_other(tmp_path, image_files, npz_weights):
    """The five-by-five matrix: each framework trains (two iterations) and writes a file; every framework reads
    each file and stylises the same photo, to the same picture within one level."""
    for name in NAMES:
        require(name)
    folder = tmp_path / "photos"
    folder.mkdir()
    images.save_image(np.random.default_rng(9).integers(0, 256, (32, 32, 3)).astype(np.uint8), str(folder / "a.png"))
    content = np.random.default_rng(4).integers(0, 256, (15, 21, 3)).astype(np.uint8)
    for writer in NAMES:
        path = str(tmp_path / f"{writer}.safetensors")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            train(image_files["style"], str(folder), output=path, backend=writer, device="cpu", weights=npz_weights,
                  size=32, batch_size=1, iterations=2, width=WIDTH, preset="fast")
        pictures = {reader: stylize(path, content, backend=reader, device="cpu").image.astype(int) for reader in NAMES}
        for reader in NAMES:
            worst = int(np.abs(pictures[reader] - pictures[writer]).max())
            assert worst <= 1, f"written by {writer}, read by {reader}: {worst} levels apart"
        assert StyleNetwork.load(path).metadata["backend"] == writer


@pytest.mark.cross_backend
def test_a_published_pth_runs_on_every_framework_to_one_picture(tmp_path):
    """A state dict in the layout of PyTorch's examples (their candy.pth and the others; the zip archive and
    the older stream, with the running statistics older files carry) runs on each framework, read without
    PyTorch, to the same picture within one level, the picture of the same numbers as a safetensors file."""
    for name in NAMES:
        require(name)
    state = transformer.init_parameters(WIDTH, seed=21)
    state["in1.running_mean"], state["in1.running_var"] = np.zeros(WIDTH, np.float32), np.ones(WIDTH, np.float32)
    content = np.random.default_rng(6).integers(0, 256, (19, 23, 3)).astype(np.uint8)
    reference = stylize(StyleNetwork(transformer.init_parameters(WIDTH, seed=21)), content, backend="torch",
                        device="cpu").image.astype(int)
    for legacy in (False, True):
        path = str(tmp_path / f"candy{int(legacy)}.pth")
        write_torch_file(path, state, legacy=legacy)
        for name in NAMES:
            worst = int(np.abs(stylize(path, content, backend=name, device="cpu").image.astype(int) - reference).max())
            assert worst <= 1, f"{name}, {'legacy' if legacy else 'zip'} layout: {worst} levels apart"
