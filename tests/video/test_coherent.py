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


@needs_a_backend
def test_the_long_term_loss_brings_back_what_an_occluder_uncovers_and_resumes_alike(tmp_path):
    """A bar sweeps over a still background, covering columns 16..39 in frame 2: in frame 3 some are disoccluded
    for frame 2, but were seen in frame 1.  Where the consistency check says so, the long-term gaps 1 and 2 bring
    them back as frame 1's output had them; the short-term method leaves them free.  A rerun after frame 2 gives
    the same frames."""
    from multistyle.video import flow

    background = texture(2, 40, 80)
    bar = texture(5, 40, 24, blur=0.7)
    folder = tmp_path / "clip"
    folder.mkdir()
    frames = []
    for t in range(4):
        frame = background.copy()
        left = -24 + 20 * t
        frame[:, max(left, 0):max(left + 24, 0)] = bar[:, max(-left, 0):]
        frames.append(frame)
        Image.fromarray(frame).save(folder / f"in{t}.png")
    style = tmp_path / "style.png"
    Image.fromarray(texture(9, 40, 80, blur=0.5)).save(style)
    job = dict(JOB, size=(40, 80), epochs=6, temporal_weight=1e4)
    short, long = str(tmp_path / "short"), str(tmp_path / "long")
    stylize_clip_coherent(str(folder), str(style), short, **job)
    stylize_clip_coherent(str(folder), str(style), long, long_term=(1, 2), **job)
    _, previous = flow.flows(frames[2], frames[3])
    back, two_back = flow.flows(frames[1], frames[3])
    uncovered = (previous == 0) & (two_back == 1)
    assert uncovered.sum() > 100

    def change(out):
        outputs = [np.asarray(Image.open(os.path.join(out, frame_name(i))), np.float32) for i in (1, 3)]
        return np.abs(outputs[1] - flow.warp(outputs[0], back))[uncovered].mean()

    assert change(long) < 0.5 * change(short), (change(long), change(short))
    # Resumed after frame 2 (frames 3 and 4 missing): the earlier frames' outputs are read back from disk.
    resumed = str(tmp_path / "resumed")
    os.makedirs(resumed)
    for i in range(2):
        Image.open(os.path.join(long, frame_name(i))).save(os.path.join(resumed, frame_name(i)))
    stylize_clip_coherent(str(folder), str(style), resumed, long_term=(1, 2), **job)
    for i in (2, 3):
        got, want = (np.asarray(Image.open(os.path.join(o, frame_name(i))), np.int64) for o in (resumed, long))
        assert np.abs(got - want).max() <= 1
