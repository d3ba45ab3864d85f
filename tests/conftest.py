"""Shared fixtures and the markers' requirements.

Fixtures: one ``backend`` per registered framework, tiny images, synthetic weights.  A test marked
``backend``, ``ray``, ``notebook``, ``browser``, ``gpu`` or ``video`` skips where what it needs is missing, or fails
where ``MULTISTYLE_TEST_REQUIRE`` names it (:mod:`support.needs`).  Tests that take the ``backend`` fixture
are marked ``backend(name)`` here, so ``pytest -m "not backend"`` runs what needs no framework.

Where each test runs (tox.ini): a test parametrized by backend runs in that framework's env; ``--backends
NAMES`` keeps only those backends' parametrizations (the ``all`` env keeps JAX and TensorFlow, whose versions
there differ from their own envs').  A test marked ``any_backend`` checks something that does not depend on the
framework (batch, compare, serve, on the first one installed): one env runs it, the others deselect it with
``-m "not any_backend"``.  One marked ``cross_backend`` checks more with more frameworks installed (a column,
a worker or a pair each): the ``all`` env runs it with every framework.
"""

from __future__ import annotations

from typing import FrozenSet

import numpy as np
import pytest
from PIL import Image

from multistyle.backend import BUILTIN_BACKENDS, get_backend
from multistyle.vgg import random_weights, save_npz
from support.needs import require, required

#: Markers whose need is checked before the test's fixtures are set up.
NEEDS = ("ray", "notebook", "browser", "gpu", "video")


def pytest_addoption(parser) -> None:
    parser.addoption("--backends", default="", metavar="NAMES",
                     help="comma-separated: keep only these backends' parametrizations of tests that take the "
                          "backend fixture (the others are deselected); default: every backend")


def _kept_backends(config) -> FrozenSet[str]:
    names = frozenset(n.strip() for n in config.getoption("--backends").split(",") if n.strip())
    unknown = sorted(names - set(BUILTIN_BACKENDS))
    if unknown:
        raise pytest.UsageError(f"--backends names {unknown}, which are not backends; known: "
                                f"{', '.join(sorted(BUILTIN_BACKENDS))}")
    return names or frozenset(BUILTIN_BACKENDS)


def pytest_configure(config) -> None:
    required()  # an unknown name in MULTISTYLE_TEST_REQUIRE stops the run before any test
    _kept_backends(config)  # ... and so does one in --backends


def pytest_collection_modifyitems(config, items) -> None:
    kept_backends = _kept_backends(config)
    kept, deselected = [], []
    for item in items:
        name = getattr(item, "callspec", None) and item.callspec.params.get("backend_name")
        if name:
            item.add_marker(pytest.mark.backend(name))
        (deselected if name and name not in kept_backends else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    for marker in item.iter_markers("backend"):
        for name in marker.args:
            require(name)
    for need in NEEDS:
        if item.get_closest_marker(need):
            require(need)


@pytest.fixture(params=sorted(BUILTIN_BACKENDS), scope="session")
def backend_name(request) -> str:
    require(request.param)
    return request.param


@pytest.fixture(scope="session")
def backend(backend_name):
    return get_backend(backend_name, device="cpu")


@pytest.fixture(scope="session")
def weights():
    """Synthetic VGG-19 weights for every layer, the same on every backend."""
    return random_weights(seed=7)


@pytest.fixture(scope="session")
def image_files(tmp_path_factory):
    """A content and a style image, small, with structure (not pure noise)."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:48, 0:64]
    content = np.stack([yy * 5, xx * 4, (yy + xx) * 2], axis=-1) % 256
    content[10:30, 20:40] = [200, 30, 40]
    style = (np.sin(xx[..., None] / 3.0 + np.arange(3)) * 100 + 128 + rng.normal(0, 20, (48, 64, 3)))
    paths = {"content": folder / "content.png", "style": folder / "style.jpg"}
    Image.fromarray(np.clip(content, 0, 255).astype(np.uint8)).save(paths["content"])
    Image.fromarray(np.clip(style, 0, 255).astype(np.uint8)).save(paths["style"])
    return {key: str(value) for key, value in paths.items()}


@pytest.fixture(scope="session")
def npz_weights(tmp_path_factory, weights):
    path = tmp_path_factory.mktemp("weights") / "vgg19-synthetic.npz"
    save_npz(weights, str(path))
    return str(path)
