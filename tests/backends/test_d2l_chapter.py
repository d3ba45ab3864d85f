"""Each preset's first step matches the chapter's own code in the same framework.

The chapter's loops live in ``references/d2l_chapter.py``
(``multistyle.references``; the benchmarks time them).  Same synthetic weights and images; the first loss is compared
before any update, then the image after one Adam step.
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
    chapter_image, chapter_losses, _ = d2l_chapter.LOOPS[backend.name](
        images.preprocess(content, size), images.preprocess(style, size), weights, 2, **kwargs)
    ours = transfer(content, style, backend=backend, weights="random:7", size=size, epochs=2,
                    preset=PRESET[backend.name])
    assert ours.history[0]["total"] == pytest.approx(chapter_losses[0], rel=1e-5)
    assert ours.history[1]["total"] == pytest.approx(chapter_losses[1], rel=1e-4)
    np.testing.assert_allclose(ours.array, chapter_image, rtol=1e-4, atol=1e-4)


def test_the_pytorch_variant_differs_from_d2l(weights, image_files):
    """The chapter's in-place ReLUs change what it computes: the presets must not coincide."""
    from support.needs import require

    require("torch")
    content = images.load_image(image_files["content"])
    style = images.load_image(image_files["style"])
    runs = [transfer(content, style, backend="torch", device="cpu", weights="random:7", size=(24, 32), epochs=2,
                     preset=preset).history[1]["total"] for preset in ("d2l", "d2l-pytorch")]
    assert runs[0] != pytest.approx(runs[1], rel=1e-3)
