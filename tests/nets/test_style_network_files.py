"""Style network files and the network's description, without a framework: safetensors, PyTorch's ``.pth``
layouts (written by hand, byte for byte as ``torch.save`` lays them out: :mod:`support.torch_files`, and by torch
itself where it is installed), the layer table, and the training photos."""

from __future__ import annotations

import os
import pickle
import zipfile

import numpy as np
import pytest

from multistyle import images
from multistyle.errors import MultistyleError
from multistyle.nets import StyleNetwork, transformer
from multistyle.safe_pickle import UnsafePickle
from multistyle.torch_pickle import load_torch_state_dict
from multistyle.training import Photos
from support.torch_files import write_torch_file


def _examples_state(width=4, running=False):
    state = transformer.init_parameters(width, seed=11)
    if running:  # older published files: the instance norms' running statistics, which loaders drop
        for name in [n for n in state if n.startswith(("in", "res")) and ".in" in f".{n}" and n.endswith(".weight")
                     and "conv2d" not in n]:
            stem = name[: -len(".weight")]
            state[f"{stem}.running_mean"] = np.zeros_like(state[name])
            state[f"{stem}.running_var"] = np.ones_like(state[name])
    return state


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_the_published_pth_layouts_load(tmp_path, legacy):
    state = _examples_state(running=True)
    assert any(key.endswith("running_mean") for key in state)
    path = str(tmp_path / "candy.pth")
    write_torch_file(path, state, legacy=legacy)
    network = StyleNetwork.load(path)
    assert network.width == 4
    assert sorted(network.params) == sorted(transformer.parameter_shapes(4))
    for name, value in network.params.items():
        np.testing.assert_array_equal(value, state[name])


def test_a_pth_that_asks_to_run_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = str(tmp_path / "mosaic.pth")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"conv1.conv2d.weight": Evil()}, protocol=2))
    with pytest.raises(UnsafePickle, match="refused to load: the file asks to run (posix|os).system"):
        load_torch_state_dict(path)


def test_torch_reads_what_the_hand_writer_writes_and_the_reader_reads_torch_save(tmp_path):
    """Where torch is installed: the hand-written layouts are torch's own, both ways."""
    torch = pytest.importorskip("torch")
    state = _examples_state()
    for legacy in (False, True):
        mine = str(tmp_path / f"mine{legacy}.pth")
        write_torch_file(mine, state, legacy=legacy)
        loaded = torch.load(mine, weights_only=True)
        np.testing.assert_array_equal(loaded["conv1.conv2d.weight"].numpy(), state["conv1.conv2d.weight"])
        theirs = str(tmp_path / f"theirs{legacy}.pth")
        torch.save({k: torch.from_numpy(v) for k, v in state.items()}, theirs,
                   _use_new_zipfile_serialization=not legacy)
        back = load_torch_state_dict(theirs)
        for name, value in state.items():
            np.testing.assert_array_equal(back[name], value)


# -- safetensors --------------------------------------------------------------------------------------------------

def test_safetensors_round_trip_keeps_parameters_metadata_and_optimizer(tmp_path):
    network = StyleNetwork.fresh(4, seed=2)
    network.metadata.update(style_sha256="abc", iterations="7")
    network.optimizer = {"m.in1.weight": np.full(4, 0.5, np.float32), "t": np.array([7.0], np.float32)}
    path = str(tmp_path / "net.safetensors")
    network.save(path, with_optimizer=True)
    back = StyleNetwork.load(path)
    assert back.iterations == 7 and back.metadata["style_sha256"] == "abc" and back.metadata["width"] == "4"
    assert back.metadata["architecture"] == transformer.ARCHITECTURE
    np.testing.assert_array_equal(back.optimizer["m.in1.weight"], network.optimizer["m.in1.weight"])
    for name in network.params:
        np.testing.assert_array_equal(back.params[name], network.params[name])
    network.save(str(tmp_path / "plain.safetensors"))
    assert StyleNetwork.load(str(tmp_path / "plain.safetensors")).optimizer == {}


@pytest.mark.parametrize("content, message", [
    (b"not a safetensors file at all", "is not a readable safetensors file"),
    (None, "not a style network: it has no 4-D 'conv1.conv2d.weight'"),
])
def test_a_file_that_is_not_a_network_is_one_line(tmp_path, content, message):
    path = str(tmp_path / "x.safetensors")
    if content is None:  # a valid safetensors file of something else
        from safetensors.numpy import save_file
        save_file({"features.0.weight": np.zeros((2, 3, 3, 3), np.float32)}, path)
    else:
        with open(path, "wb") as handle:
            handle.write(content)
    with pytest.raises(MultistyleError, match=message) as info:
        StyleNetwork.load(path)
    assert "\n" not in str(info.value)


def test_a_missing_or_misshapen_parameter_is_named(tmp_path):
    params = transformer.init_parameters(4)
    del params["res3.in2.bias"]
    with pytest.raises(MultistyleError, match="'res3.in2.bias' is missing"):
        StyleNetwork(params)
    params = transformer.init_parameters(4)
    params["deconv2.conv2d.weight"] = params["deconv2.conv2d.weight"][:, :1]
    with pytest.raises(MultistyleError, match=r"'deconv2.conv2d.weight' has shape \(4, 1, 3, 3\), expected \(4, 8, 3, 3\)"):
        StyleNetwork(params)


# -- the table ----------------------------------------------------------------------------------------------------

def test_the_table_is_the_published_network():
    shapes = transformer.parameter_shapes(32)
    assert shapes["conv1.conv2d.weight"] == (32, 3, 9, 9) and shapes["conv3.conv2d.weight"] == (128, 64, 3, 3)
    assert shapes["res5.conv2.conv2d.weight"] == (128, 128, 3, 3) and shapes["deconv3.conv2d.weight"] == (3, 32, 9, 9)
    assert sum(int(np.prod(s)) for s in shapes.values()) == 1679235  # TransformerNet's parameter count
    # The figure: 81 GFLOP at 512x512 for the full width, about 22 at width 16.
    assert transformer.flops(32, 512, 512) / 1e9 == pytest.approx(81, rel=0.03)
    assert transformer.flops(16, 512, 512) / 1e9 == pytest.approx(22, rel=0.1)


def test_init_is_torchs_default_from_a_seed():
    a, b = transformer.init_parameters(8, seed=1), transformer.init_parameters(8, seed=1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    w = a["conv2.conv2d.weight"]
    bound = 1 / np.sqrt(8 * 9)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.array_equal(a["in1.weight"], np.ones(8, np.float32)) and not a["in1.bias"].any()


# -- the training photos ------------------------------------------------------------------------------------------

def _photo(path, h, w, seed=0):
    images.save_image(np.random.default_rng(seed).integers(0, 256, (h, w, 3)).astype(np.uint8), str(path))


def test_batches_are_reproducible_and_cover_every_photo(tmp_path):
    for i in range(3):
        _photo(tmp_path / f"p{i}.png", 40 + 8 * i, 36, seed=i)
    photos = Photos(str(tmp_path), 32)
    first = photos.batch(0, 2, seed=0)
    assert first.shape == (2, 3, 32, 32) and first.dtype == np.float32 and first.max() <= 255
    np.testing.assert_array_equal(first, Photos(str(tmp_path), 32).batch(0, 2, seed=0))
    assert not np.array_equal(first, photos.batch(0, 2, seed=1))
    # One epoch (three samples) sees each photo once: their means differ, so three distinct values.
    epoch = np.concatenate([photos.batch(0, 1, 0), photos.batch(1, 1, 0), photos.batch(2, 1, 0)])
    means = sorted(round(float(m), 3) for m in epoch.mean(axis=(1, 2, 3)))
    assert len(set(means)) == 3


@pytest.mark.parametrize("case, message", [
    ("empty", "no photos in"),
    ("unreadable", "cannot read"),
    ("small", "smaller than the 32x32 crop; remove it or lower --size"),
    ("missing", "no such folder"),
])
def test_bad_training_photos_are_one_line(tmp_path, case, message):
    folder = tmp_path / "photos"
    folder.mkdir()
    _photo(folder / "ok.png", 40, 40)
    if case == "empty":
        (folder / "ok.png").unlink()
        (folder / "notes.txt").write_text("no photos here")
    elif case == "unreadable":
        (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    elif case == "small":
        _photo(folder / "tiny.png", 40, 20)
    source = str(folder if case != "missing" else tmp_path / "nowhere")
    with pytest.raises(MultistyleError, match=message) as info:
        Photos(source, 32)
    assert "\n" not in str(info.value)
