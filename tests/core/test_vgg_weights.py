"""VGG-19 in the core: the layer table, seeded random weights, weight keys and files."""

from __future__ import annotations

import numpy as np
import pytest

from multistyle.errors import MultistyleError, WeightsError
from multistyle.vgg import (
    CONV_INDICES,
    LAYER_BY_NAME,
    LAYERS,
    canonical_weights,
    expected_shapes,
    parse_weights_spec,
    random_weights,
    resolve_layers,
)


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
