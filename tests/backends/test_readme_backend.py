"""The README's smallest complete backend, run as a third-party package through a spec-valued entry point."""

from __future__ import annotations

import importlib
import re
import sys

import numpy as np
import pytest

from multistyle import backend as registry
from multistyle import transfer
from support import REPOSITORY
from support.needs import require

README = REPOSITORY / "docs" / "contributing.md"


def _readme_backend() -> str:
    section = README.read_text(encoding="utf-8").split("## Writing a backend", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def mini(monkeypatch, tmp_path):
    require("torch")
    (tmp_path / "multistyle_mini.py").write_text(_readme_backend())
    info = tmp_path / "multistyle_mini-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: multistyle-mini\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[multistyle.backends]\nmini = multistyle_mini:SPEC\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "multistyle_mini", raising=False)
    monkeypatch.setattr(registry.spec, "_LOADED", {})
    importlib.invalidate_caches()
    return tmp_path


def test_the_readme_backend_is_complete_and_registers_through_its_spec(mini):
    assert "mini" in registry.backend_names()
    spec = registry.spec_of("mini")
    assert spec.weight_suffixes == (".mini",) and spec.extra == "multistyle-mini"
    assert registry.backend_for_weights("vgg19.mini") == "mini"  # the spec declares the format
    backend = registry.get_backend("mini", "cpu")
    assert backend.weight_suffixes == (".mini",)
    # No optimizer of its own: all three come from the core, written over the protocol.
    assert backend.optimizers() == {"adam": "multistyle.optim.Adam", "lbfgs": "multistyle.optim.LBFGS",
                                    "rmsprop": "multistyle.optim.RMSprop"}


def test_the_readme_backend_computes_what_torch_computes(mini, image_files, npz_weights):
    runs = {name: transfer(image_files["content"], image_files["style"], backend=name, device="cpu",
                           weights=npz_weights, size=(24, 32), epochs=3) for name in ("mini", "torch")}
    ours, theirs = runs["mini"].history, runs["torch"].history
    # The first evaluation, from the same start: the same network, weights and losses (DESIGN: rtol 1e-4).
    for term in ("content", "style", "tv", "total"):
        assert ours[0][term] == pytest.approx(theirs[0][term], rel=1e-4, abs=1e-9), term
    # Then the core's Adam against torch.optim.Adam: Adam moves each pixel by about lr whatever its gradient,
    # so rounding differences in tiny gradients become visible; the runs agree to DESIGN's 2 % per epoch.
    assert len(ours) == len(theirs) == 3
    for epoch in range(3):
        assert ours[epoch]["total"] == pytest.approx(theirs[epoch]["total"], rel=2e-2), epoch


def test_the_readme_backends_weights_round_trip(mini, weights, tmp_path):
    backend = registry.get_backend("mini", "cpu")
    path = str(tmp_path / "vgg19.mini")
    backend.save_native_weights(weights, path)
    loaded = backend.load_native_weights(path)
    for index, (weight, bias) in weights.items():
        np.testing.assert_allclose(loaded[f"features.{index}.weight"], weight, rtol=1e-7)
        np.testing.assert_allclose(loaded[f"features.{index}.bias"], bias, rtol=1e-7)


def test_the_readme_backend_trains_and_runs_a_style_network(mini, image_files, tmp_path):
    """Its four methods for networks that train: one training step, then the same picture as torch's."""
    import warnings

    from multistyle import images, stylize, train

    folder = tmp_path / "photos"
    folder.mkdir()
    images.save_image(np.random.default_rng(1).integers(0, 256, (32, 32, 3)).astype(np.uint8), str(folder / "a.png"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        network = train(image_files["style"], str(folder), backend="mini", device="cpu", weights="random:1",
                        size=32, batch_size=1, iterations=2, width=4, preset="fast")
    assert network.iterations == 2 and network.metadata["backend"] == "mini"
    ours = stylize(network, image_files["content"], backend="mini", device="cpu").image.astype(int)
    theirs = stylize(network, image_files["content"], backend="torch", device="cpu").image.astype(int)
    assert np.abs(ours - theirs).max() <= 1
