"""A clip stylised by a trained network (``multistyle.video.fast``): the count, rate and size kept; ``temporal
0`` is each frame's own pass; temporal blending lowers the warping error; a rerun after an interruption gives
the same frames; bad outputs are one-line errors.  On one framework (the property does not depend on which)."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from multistyle.errors import MultistyleError
from multistyle.nets import StyleNetwork
from multistyle.nets.stylize import stylize
from multistyle.video import flow
from multistyle.video.fast import stylize_clip
from multistyle.video.job import frame_name
from multistyle.video.frames import Clip, write_video
from support.clips import Shape, clip
from support.needs import INSTALLED, needs_a_backend

pytestmark = [pytest.mark.video]
ONE = INSTALLED[0] if INSTALLED else "torch"
COUNT = 5


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A clip of a shape moving over a background, as a video file and as its frames."""
    folder = tmp_path_factory.mktemp("clip")
    frames = clip(COUNT, 48, 64, shapes=[Shape(3, (16, 20), (10, 12), (2, 3))], seed=1)
    path = str(folder / "clip.mp4")
    write_video(iter(frames), path, Fraction(12))
    return path, list(Clip(path).frames())


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("net") / "net.safetensors")
    StyleNetwork.fresh(4, seed=5).save(path)
    return path


def _read(folder):
    return [np.asarray(Image.open(os.path.join(folder, frame_name(i))), np.int64) for i in range(COUNT)]


def _warping_error(outputs, inputs):
    """Lai et al.'s: output t+1 against output t carried by the input's flow, over the reliable pixels."""
    errors = []
    for t in range(len(outputs) - 1):
        backward, reliable = flow.flows(inputs[t], inputs[t + 1])
        carried = flow.warp(outputs[t].astype(np.float32), backward)
        squared = ((outputs[t + 1] - carried) ** 2).mean(axis=-1)
        errors.append((squared * reliable).sum() / reliable.sum())
    return float(np.mean(errors))


@needs_a_backend
def test_a_video_keeps_its_count_rate_and_size_and_temporal_zero_is_each_frames_own_pass(source, network, tmp_path):
    path, frames = source
    out = str(tmp_path / "out.mp4")
    done = stylize_clip(network, path, out, backend=ONE, device="cpu")
    read = Clip(out)
    assert (read.count, read.fps, read.size) == (COUNT, 12, (48, 64)) and done["resumed_from"] == 0
    assert not os.path.exists(out + ".frames")  # assembled, then removed
    folder = str(tmp_path / "frames")
    stylize_clip(network, path, folder, backend=ONE, device="cpu")
    for got, frame in zip(_read(folder), frames):
        expected = stylize(network, frame, backend=ONE, device="cpu").image
        assert np.abs(got - expected).max() <= 1


@needs_a_backend
def test_temporal_blending_lowers_the_warping_error_and_a_rerun_continues_where_it_stopped(source, network, tmp_path):
    path, frames = source
    independent, blended = str(tmp_path / "independent"), str(tmp_path / "blended")
    stylize_clip(network, path, independent, backend=ONE, device="cpu")
    stylize_clip(network, path, blended, backend=ONE, device="cpu", temporal=1.0)
    before, after = _warping_error(_read(independent), frames), _warping_error(_read(blended), frames)
    assert after < 0.5 * before, (before, after)

    class Stop(Exception):
        pass

    def stop_after_two(record):
        if record["frame"] == 2:
            raise Stop

    resumed = str(tmp_path / "resumed")
    with pytest.raises(Stop):
        stylize_clip(network, path, resumed, backend=ONE, device="cpu", temporal=1.0, callback=stop_after_two)
    assert sorted(os.listdir(resumed)) == [frame_name(0), frame_name(1)]
    assert stylize_clip(network, path, resumed, backend=ONE, device="cpu", temporal=1.0)["resumed_from"] == 2
    for got, expected in zip(_read(resumed), _read(blended)):
        np.testing.assert_array_equal(got, expected)


@needs_a_backend
def test_bad_outputs_and_weights_are_one_line_errors(source, network, tmp_path):
    path, _ = source
    for output, message in ((path, "is the input clip"), (str(tmp_path / "out.xyz"), "cannot write .xyz video")):
        with pytest.raises(MultistyleError, match=message):
            stylize_clip(network, path, output, backend=ONE, device="cpu")
    with pytest.raises(MultistyleError, match="--temporal: expected a weight from 0 to 1"):
        stylize_clip(network, path, str(tmp_path / "o"), backend=ONE, device="cpu", temporal=1.5)
    assert not os.path.exists(tmp_path / "out.xyz") and not os.path.exists(tmp_path / "o")
