"""Each preset's first step matches the chapter's own code in the same framework.

The chapter's loops live in ``references/d2l_chapter.py``
(``multistyle.references``; the benchmarks time them).  Same synthetic weights and images; the first loss is compared
before any update, the image after one Adam step, and the loss at the image it reaches.

The image after a *second* step is not compared pixel by pixel: the first step moves every pixel by about the
learning rate, so the content's flat patch becomes pixels a few ulps apart, and its max-pools then choose between
near-ties.  A Gram product computed in another exact order (MXNet's symmetric rank-k product, the one-product
gradients) moves 3-6 % of the pixels of the second step by up to the learning rate there, while every loss agrees
to 1e-5 (the concepts page: why pixels drift).
"""

from __future__ import annotations

import numpy as np
import pytest

from multistyle import images, transfer
from multistyle.references import d2l_chapter

PRESET = {"torch": "d2l-pytorch", "mxnet": "d2l-mxnet", "paddle": "d2l"}


def test_first_step_matches_the_chapter(backend, weights, image_files):
    if backend.name not in d2l_chapter.LOOPS:
        pytest.skip(f"references/d2l_chapter.py has no {backend.framework} loop")
    size = (24, 32)
    content = images.load_image(image_files["content"])
    style = images.load_image(image_files["style"])
    kwargs = {"epsilon_after_correction": True} if backend.name == "mxnet" else {}
    inputs = (images.preprocess(content, size), images.preprocess(style, size), weights)
    chapter_image, _, _ = d2l_chapter.LOOPS[backend.name](*inputs, 1, **kwargs)
    _, chapter_losses, _ = d2l_chapter.LOOPS[backend.name](*inputs, 2, **kwargs)
    ours = transfer(content, style, backend=backend, weights="random:7", size=size, epochs=2,
                    preset=PRESET[backend.name])
    assert ours.history[0]["total"] == pytest.approx(chapter_losses[0], rel=1e-5)
    assert ours.history[1]["total"] == pytest.approx(chapter_losses[1], rel=1e-4)
    first_step = transfer(content, style, backend=backend, weights="random:7", size=size, epochs=1,
                          preset=PRESET[backend.name])
    np.testing.assert_allclose(first_step.array, chapter_image, rtol=1e-4, atol=1e-4)


def test_the_pytorch_variant_differs_from_d2l(weights, image_files):
    """The chapter's in-place ReLUs change what it computes: the presets must not coincide."""
    from support.needs import require

    require("torch")
    content = images.load_image(image_files["content"])
    style = images.load_image(image_files["style"])
    runs = [transfer(content, style, backend="torch", device="cpu", weights="random:7", size=(24, 32), epochs=2,
                     preset=preset).history[1]["total"] for preset in ("d2l", "d2l-pytorch")]
    assert runs[0] != pytest.approx(runs[1], rel=1e-3)
