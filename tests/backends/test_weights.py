"""Weight files: each framework's native checkpoint, read through its native loader, and the portable .npz.

The checkpoints are synthetic (real ones cannot be downloaded in CI) but are
written with each framework's own save function and key names.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from multistyle.errors import WeightsError
from multistyle.objective import FeatureExtractor
from multistyle.vgg import CONV_INDICES
from multistyle.weightfiles import load_weights

LAST = 28  # conv5_1, the deepest layer of the d2l preset


def _save_torch(weights, path, names):
    import torch

    state = {names(i, k, kind): torch.from_numpy(arr)
             for k, i in enumerate(CONV_INDICES) for kind, arr in zip(("weight", "bias"), weights[i])}
    state["classifier.6.bias"] = torch.zeros(1000)  # a full-model state dict also has the classifier
    torch.save(state, path)


def _save_mxnet(weights, path, names):
    from mxnet import nd

    nd.save(path, {names(i, k, kind): nd.array(arr)
                   for k, i in enumerate(CONV_INDICES) for kind, arr in zip(("weight", "bias"), weights[i])})


def _save_paddle(weights, path, names):
    import paddle

    paddle.save({names(i, k, kind): paddle.to_tensor(arr)
                 for k, i in enumerate(CONV_INDICES) for kind, arr in zip(("weight", "bias"), weights[i])}, path)


def _keras_vgg19(weights, names):
    """Keras's own VGG-19 (its zoo's architecture, untrained) with ``weights``, up to the last convolution whose
    name is not ``head.``: a file of a network cut short."""
    import tensorflow as tf

    model = tf.keras.applications.VGG19(weights=None, include_top=False)
    convs = [layer for layer in model.layers if layer.get_weights()]
    kept = [(layer, i) for layer, i in zip(convs, CONV_INDICES) if not names(i, 0, "weight").startswith("head.")]
    for layer, i in kept:
        layer.set_weights([np.transpose(weights[i][0], (2, 3, 1, 0)), weights[i][1]])  # OIHW -> Keras's HWIO
    return model if len(kept) == len(convs) else tf.keras.Model(model.input, kept[-1][0].output)


def _save_keras_weights(weights, path, names):
    from multistyle.keras_weights import mark

    _keras_vgg19(weights, names).save_weights(path)
    mark(path)  # what multistyle adds: the file holds multistyle's input convention, not Caffe's


def _save_keras_model(weights, path, names):
    from multistyle.keras_weights import mark

    _keras_vgg19(weights, names).save(path)
    mark(path)


FEATURES = lambda i, k, kind: f"features.{i}.{kind}"  # noqa: E731
NATIVE = {
    "torch": [(".pth", _save_torch, FEATURES), (".pth", _save_torch, lambda i, k, kind: f"{i}.{kind}")],
    "mxnet": [(".params", _save_mxnet, FEATURES), (".params", _save_mxnet, lambda i, k, kind: f"vgg0_conv{k}_{kind}")],
    "paddle": [(".pdparams", _save_paddle, FEATURES)],
    # Keras 3 writes weights alone only as .weights.h5; a whole model as .keras, or as Keras 2's .h5.
    "tensorflow": [(".weights.h5", _save_keras_weights, FEATURES), (".keras", _save_keras_model, FEATURES),
                   (".h5", _save_keras_model, FEATURES)],
}


def _native(name):
    """The native checkpoint writers of backend ``name``; a framework without a native format skips."""
    if name not in NATIVE:
        pytest.skip(f"{name} has no native checkpoint format: its weights are .npz files")
    return NATIVE[name]


def test_native_checkpoint_gives_the_same_features_as_npz(backend, weights, npz_weights, tmp_path):
    x = backend.asarray(np.random.default_rng(2).standard_normal((1, 3, 16, 16)).astype(np.float32))
    from_npz, label, untrained = load_weights(npz_weights, backend, LAST)
    assert not untrained and label == npz_weights
    reference = backend.to_numpy(FeatureExtractor(backend, from_npz, ["conv5_1"])(x)["conv5_1"])
    for number, (suffix, save, names) in enumerate(_native(backend.name)):
        path = str(tmp_path / f"vgg19-{number}{suffix}")
        save(weights, path, names)
        loaded, _, _ = load_weights(path, backend, LAST)
        for index in loaded:
            np.testing.assert_array_equal(loaded[index][0], weights[index][0])
            np.testing.assert_array_equal(loaded[index][1], weights[index][1])
        features = backend.to_numpy(FeatureExtractor(backend, loaded, ["conv5_1"])(x)["conv5_1"])
        # The same weights through the same network: equal up to float32 rounding (two forward passes).
        np.testing.assert_allclose(features, reference, rtol=1e-6, atol=1e-6 * np.abs(reference).max())


def test_random_weights_are_the_same_on_every_backend(backend):
    """random:N through a backend, after the framework's own generator was seeded otherwise, is the same as
    random:N read with no framework at all, in a fresh process (so on every backend)."""
    backend.seed(12345)
    a, label, untrained = load_weights("random:9", backend, LAST)
    assert untrained and label == "random:9"
    assert sorted(a) == [i for i in CONV_INDICES if i <= LAST]
    code = ("import sys, hashlib; from multistyle.weightfiles import load_weights; "
            "w = load_weights('random:9', None, 28).arrays; "
            "print(sorted(m for m in ('torch', 'mxnet', 'paddle', 'jax', 'tensorflow') if m in sys.modules)); "
            "print(hashlib.sha256(b''.join(w[i][k].tobytes() for i in sorted(w) for k in (0, 1))).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]"
    digest = hashlib.sha256(b"".join(a[i][k].tobytes() for i in sorted(a) for k in (0, 1))).hexdigest()
    assert digest == out[1]
    other, _, _ = load_weights("random:10", backend, LAST)
    assert np.abs(other[28][0] - a[28][0]).max() > 0  # and the seed matters


def test_native_checkpoint_missing_layers(backend, weights, tmp_path):
    suffix, save, names = _native(backend.name)[0]
    path = str(tmp_path / f"partial{suffix}")
    # Layers from conv4_2 on are saved under names that are not VGG features.
    save(weights, path, lambda i, k, kind: names(i, k, kind) if i < 20 else f"head.{i}.{kind}")

    with pytest.raises(WeightsError, match=r"no features.21.weight/bias \(conv4_2\)"):
        load_weights(path, backend, LAST)


OWN_SUFFIX = {"torch": ".pth", "mxnet": ".params", "paddle": ".pdparams", "tensorflow": ".weights.h5"}


def _arrays_equal(a, b):
    assert sorted(a) == sorted(b)
    for index in a:
        np.testing.assert_array_equal(a[index][0], b[index][0])
        np.testing.assert_array_equal(a[index][1], b[index][1])


def test_native_to_npz_to_native_round_trip(backend, weights, tmp_path, capsys):
    from multistyle.cli import main
    from multistyle.weightfiles import checksum, read_weights

    write = _native(backend.name)[0][1]
    native = str(tmp_path / f"zoo{OWN_SUFFIX[backend.name]}")
    write(weights, native, FEATURES)  # written by the framework itself
    npz = str(tmp_path / "portable.npz")
    back = str(tmp_path / f"again{OWN_SUFFIX[backend.name]}")
    assert main(["weights", "convert", native, npz]) == 0
    assert main(["weights", "convert", npz, back]) == 0
    out = capsys.readouterr().out
    assert f"wrote {npz}: 16 convolutions" in out and f"wrote {back}" in out
    for path in (npz, back):
        loaded, _ = read_weights(path)
        _arrays_equal(loaded, weights)
    assert backend.load_native_weights(back).keys() == {f"features.{i}.{k}" for i in CONV_INDICES for k in ("weight", "bias")}
    assert main(["weights", "info", back]) == 0
    info = capsys.readouterr().out
    assert f"{backend.framework} checkpoint" in info and "16 convolutions, conv1_1 .. conv5_4" in info
    assert checksum(weights) in info and "conv3_1  features.10  weight (256, 128, 3, 3)" in info


def test_conversion_across_all_frameworks_keeps_every_bit(weights, npz_weights, tmp_path, capsys):
    from support.needs import require

    from multistyle.cli import main
    from multistyle.weightfiles import read_weights

    for name in OWN_SUFFIX:
        require(name)
    chain = [npz_weights] + [str(tmp_path / f"w{n}{s}") for n, s in enumerate(
        [".pth", ".params", ".pdparams", ".h5", ".keras", ".weights.h5", ".pth", ".npz"])]
    for source, destination in zip(chain, chain[1:]):
        assert main(["weights", "convert", source, destination]) == 0, capsys.readouterr().err
    checksums = set()
    for path in chain:
        assert main(["weights", "info", path]) == 0
        checksums |= {line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("sha256:")}
    assert len(checksums) == 1
    _arrays_equal(read_weights(chain[-1])[0], weights)


@pytest.mark.parametrize("args, message", [
    (["convert", "{npz}", "{npz}"], "is the source file"),
    (["convert", "{npz}", "{tmp}/out.onnx"], "unknown format '.onnx'"),
    (["convert", "{tmp}/missing.npz", "{tmp}/out.npz"], "file does not exist"),
    (["info", "{tmp}"], "is a directory"),
    (["convert", "{npz}", "{tmp}/no/out.npz"], "does not exist; create it first"),
])
def test_weights_command_errors(args, message, npz_weights, tmp_path, capsys):
    from multistyle.cli import main

    code = main(["weights", *[a.format(npz=npz_weights, tmp=tmp_path) for a in args]])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not list(tmp_path.glob("out*"))


def test_partial_npz_is_refused_by_info(tmp_path, capsys):
    from multistyle.cli import main
    from multistyle.vgg import random_weights, save_npz

    save_npz(random_weights(0, last=10), str(tmp_path / "partial.npz"))
    assert main(["weights", "info", str(tmp_path / "partial.npz")]) == 2
    assert "no features.12.weight/bias (conv3_2)" in capsys.readouterr().err


def test_a_keras_file_in_caffes_convention_is_folded_to_multistyles(weights, tmp_path):
    """A VGG-19 file that multistyle did not write (Keras's zoo, or a user's) expects Keras's input: BGR,
    0..255, Caffe's means subtracted.  Read, its first convolution on multistyle's input (RGB, normalised)
    gives what the file's own convolution gives on Keras's input, except at the one-pixel padding."""
    from support import oracle
    from support.needs import require

    from multistyle.keras_weights import CAFFE_BGR_MEAN
    from multistyle.images import RGB_MEAN, RGB_STD

    require("tensorflow")
    path = str(tmp_path / "keras-own.h5")
    _keras_vgg19(weights, FEATURES).save(path)  # Keras's own writer, no multistyle mark
    loaded, _, _ = load_weights(path, None, LAST)
    pixels = np.random.default_rng(4).uniform(0, 1, (1, 3, 12, 16))  # RGB in 0..1
    keras_input = 255.0 * pixels[:, ::-1] - CAFFE_BGR_MEAN.reshape(1, 3, 1, 1)
    ours = (pixels - RGB_MEAN.reshape(1, 3, 1, 1)) / RGB_STD.reshape(1, 3, 1, 1)
    want = oracle.features(keras_input.astype(np.float32), weights, ["conv1_1"])["conv1_1"]
    got = oracle.features(ours.astype(np.float32), loaded, ["conv1_1"])["conv1_1"]
    inside = (slice(None), slice(None), slice(1, -1), slice(1, -1))
    np.testing.assert_allclose(got[inside], want[inside], rtol=1e-4, atol=1e-4 * np.abs(want).max())
    _arrays_equal({i: loaded[i] for i in loaded if i > 0}, {i: weights[i] for i in weights if 0 < i <= LAST})
