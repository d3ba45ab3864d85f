"""Backends against each other: same weight file, same images, same start.

Runs where several frameworks are installed (tox env ``all``); each pair is
compared at the stages where float32 agreement is expected.  Over many steps
pixels drift apart (ReLU, max-pool and |x| have kinks; Adam moves each pixel
by about the learning rate whatever the gradient's size) while the losses
keep agreeing, so long runs compare losses only.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from conftest import require
from multistyle import get_backend, transfer
from multistyle.backend import BUILTIN_BACKENDS

PAIRS = list(itertools.combinations(sorted(BUILTIN_BACKENDS), 2))


@pytest.fixture(scope="module", params=PAIRS, ids=["-".join(p) for p in PAIRS])
def pair(request):
    for name in request.param:
        require(name)
    return request.param


def _run(name, image_files, npz_weights, epochs, **kwargs):
    return transfer(image_files["content"], image_files["style"], backend=get_backend(name, "cpu"),
                    weights=npz_weights, size=(24, 32), epochs=epochs, **kwargs)


def test_first_step_agrees(pair, image_files, npz_weights):
    a, b = (_run(name, image_files, npz_weights, 1, init="noise", seed=4) for name in pair)
    for term in ("content", "style", "tv", "total"):
        assert a.history[0][term] == pytest.approx(b.history[0][term], rel=1e-4), f"{pair} {term} loss at step 1"
    np.testing.assert_allclose(a.array, b.array, rtol=1e-4, atol=1e-4, err_msg=f"{pair}: image after one Adam step")


def test_losses_agree_over_a_run(pair, image_files, npz_weights):
    a, b = (_run(name, image_files, npz_weights, 40, lr_decay_every=10) for name in pair)
    for ra, rb in zip(a.history, b.history):
        assert ra["lr"] == pytest.approx(rb["lr"], rel=1e-7), f"{pair}: learning rate at epoch {ra['epoch']}"
        assert ra["total"] == pytest.approx(rb["total"], rel=0.02), f"{pair}: total loss at epoch {ra['epoch']}"
