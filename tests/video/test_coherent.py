"""A clip optimised frame-coherently (``multistyle.video.coherent``): with the temporal weight 0 and the previous
output not used as the start, each frame is its own ``run``; with them, the warping error falls; the temporal
term joins the loss.  On one framework (the flow and the term's maths are checked elsewhere, per backend)."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from multistyle import transfer
from multistyle.errors import MultistyleError
from multistyle.video.coherent import stylize_clip_coherent
from multistyle.video.frames import write_video
from multistyle.video.job import frame_name
from support.clips import Shape, clip, texture
from support.needs import INSTALLED, needs_a_backend
from video.test_fast_clip import _warping_error

pytestmark = [pytest.mark.video]
ONE = INSTALLED[0] if INSTALLED else "torch"
COUNT, SIZE = 3, (32, 48)
JOB = dict(backend=ONE, device="cpu", weights="random:3", size=SIZE, epochs=8, preset="d2l")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    frames = clip(COUNT, *SIZE, shapes=[Shape(3, (12, 16), (8, 10), (1, 2))], seed=1)
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"in{index}.png")
    style = folder / "style.png"
    Image.fromarray(texture(9, 32, 48, blur=0.5)).save(style)
    return str(folder), frames, str(style)


def _read(folder):
    return [np.asarray(Image.open(os.path.join(folder, frame_name(i))), np.int64) for i in range(COUNT)]


@needs_a_backend
def test_without_the_temporal_term_and_start_each_frame_is_its_own_run(source, tmp_path):
    folder, frames, style = source
    out = str(tmp_path / "independent")
    stylize_clip_coherent(folder, style, out, temporal_weight=0, start_from_previous=False, **JOB)
    for got, frame in zip(_read(out), frames):
        expected = transfer(frame, style, **JOB).image
        assert np.abs(got - expected).max() <= 1


@needs_a_backend
def test_the_coherent_method_lowers_the_warping_error_at_the_same_epochs(source, tmp_path):
    folder, frames, style = source
    independent, coherent = str(tmp_path / "independent"), str(tmp_path / "coherent")
    stylize_clip_coherent(folder, style, independent, temporal_weight=0, start_from_previous=False, **JOB)
    stylize_clip_coherent(folder, style, coherent, **JOB)
    before, after = _warping_error(_read(independent), frames), _warping_error(_read(coherent), frames)
    assert after < 0.5 * before, (before, after)


@needs_a_backend
def test_the_temporal_term_joins_the_loss_and_a_bad_weight_is_one_line(source, tmp_path):
    from multistyle.video.temporal import Temporal

    _, frames, style = source
    warped = np.zeros(SIZE + (3,), np.float32)
    plain = transfer(frames[1], style, **dict(JOB, epochs=1)).history[0]
    held = transfer(frames[1], style, temporal=Temporal(warped, np.ones(SIZE), 10.0, start=False),
                    **dict(JOB, epochs=1)).history[0]
    pixels = frames[1].astype(np.float64) / 255  # the start is the content: its distance to black, weighted
    assert held["total"] - plain["total"] == pytest.approx(10.0 * (pixels ** 2).mean(), rel=1e-3)
    with pytest.raises(MultistyleError, match="--temporal-weight: expected a number >= 0"):
        stylize_clip_coherent(source[0], style, str(tmp_path / "o"), temporal_weight=-1, **JOB)
    path = str(tmp_path / "clip.mp4")
    write_video(iter(frames), path, Fraction(10))
    with pytest.raises(MultistyleError, match="is the input clip"):
        stylize_clip_coherent(path, style, path, **JOB)
