"""Shared fixtures: one ``backend`` per registered framework, tiny images, synthetic weights.

A backend whose framework is not installed is skipped, unless the
environment variable ``MULTISTYLE_TEST_BACKENDS`` (comma-separated) names it:
then its absence fails the run, so a tox env that lost its framework cannot
pass by testing nothing.
"""

from __future__ import annotations

import os
from typing import List

import numpy as np
import pytest
from PIL import Image

from multistyle.backend import BUILTIN_BACKENDS, get_backend, load_backend_class
from multistyle.errors import BackendUnavailable
from multistyle.vgg import random_weights, save_npz


def required_backends() -> List[str]:
    names = [n.strip() for n in os.environ.get("MULTISTYLE_TEST_BACKENDS", "").split(",") if n.strip()]
    unknown = [n for n in names if n not in BUILTIN_BACKENDS]
    if unknown:
        raise pytest.UsageError(f"MULTISTYLE_TEST_BACKENDS names unknown backends {unknown}")
    return names


def require(name: str) -> None:
    """Skip (or fail, if required) when backend ``name`` cannot be loaded."""
    try:
        load_backend_class(name)
    except BackendUnavailable as exc:
        if name in required_backends():
            pytest.fail(f"backend {name} is required by MULTISTYLE_TEST_BACKENDS but unusable: {exc}")
        pytest.skip(str(exc))


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
