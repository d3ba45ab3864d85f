"""``multistyle video`` from the command line: both methods end to end at a tiny size, the masks it can show,
its plan, and bad input as one line with nothing left at the output path.  On one framework."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from multistyle.cli import main
from multistyle.nets import StyleNetwork
from multistyle.video.frames import Clip, write_video
from support.cli import one_error_line
from support.clips import Shape, clip, texture
from support.needs import INSTALLED, needs_a_backend

pytestmark = [pytest.mark.video]
ONE = INSTALLED[0] if INSTALLED else "torch"
BASE = ["--backend", ONE, "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("video-cli")
    frames = clip(3, 32, 48, shapes=[Shape(3, (12, 16), (8, 10), (1, 2))], seed=1)
    path = str(folder / "clip.mp4")
    write_video(iter(frames), path, Fraction(10))
    style = str(folder / "style.png")
    Image.fromarray(texture(9, 32, 48, blur=0.5)).save(style)
    network = str(folder / "net.safetensors")
    StyleNetwork.fresh(4, seed=5).save(network)
    return {"clip": path, "style": style, "network": network}


@needs_a_backend
def test_a_network_and_the_optimisation_stylise_a_clip_from_the_command_line(files, tmp_path, capsys):
    out = str(tmp_path / "out.mp4")
    assert main(["video", files["clip"], "--model", files["network"], "--temporal", "0.5", "--output", out,
                 *BASE]) == 0
    assert "wrote" in capsys.readouterr().out
    read = Clip(out)
    assert (read.count, read.fps, read.size) == (3, 10, (32, 48))
    frames, masks = str(tmp_path / "frames"), str(tmp_path / "masks")
    assert main(["video", files["clip"], "--style", files["style"], "--output", frames, "--size", "24x36",
                 "--epochs", "2", "--weights", "random:1", "--debug-masks", masks, *BASE]) == 0
    written = sorted(os.listdir(frames))
    assert written == ["frame_00001.png", "frame_00002.png", "frame_00003.png"]
    assert np.asarray(Image.open(os.path.join(frames, written[0]))).shape == (32, 48, 3)  # the clip's size
    assert sorted(os.listdir(masks)) == sorted(f"frame_0000{i}-{kind}.png" for i in (2, 3)
                                               for kind in ("reliable", "disoccluded", "boundaries"))
    assert np.asarray(Image.open(os.path.join(masks, "frame_00002-reliable.png"))).shape == (24, 36, 3)


@needs_a_backend
def test_the_plan_reads_the_clip_and_writes_nothing(files, tmp_path, capsys):
    out = str(tmp_path / "out.mp4")
    assert main(["video", files["clip"], "--style", files["style"], "--output", out, "--plan", "--epochs", "7",
                 "--long-term", *BASE]) == 0
    printed = capsys.readouterr().out
    assert "plan: 3 frames of clip.mp4 (32x48, 10 fps)" in printed and "7 epochs a frame" in printed
    assert "back to 1,10,20,40 frames" in printed  # --long-term alone: Ruder et al.'s gaps
    assert "predicted peak memory per frame" in printed and not os.listdir(tmp_path)


@needs_a_backend
@pytest.mark.parametrize("case, message", [
    ("missing", "clip: no such file or folder"),
    ("same", "is the input clip"),
    ("network-without-model", "--method network: needs a trained network"),
    ("temporal-with-optimise", "--temporal: the network method's"),
    ("long-term-with-network", "--long-term: the optimisation's"),
    ("extension", "cannot write .xyz video"),
    ("no-frames", "no frames in the folder"),
    ("unreadable", "cannot read"),
])
def test_bad_input_is_one_line_and_leaves_nothing(files, tmp_path, capsys, case, message):
    out = str(tmp_path / "out.mp4")
    source = files["clip"]
    extra = ["--style", files["style"]]
    if case == "missing":
        source = str(tmp_path / "nope.mp4")
    elif case == "same":
        out = source
    elif case == "network-without-model":
        extra += ["--method", "network"]
    elif case == "temporal-with-optimise":
        extra += ["--temporal", "0.5"]
    elif case == "long-term-with-network":
        extra = ["--model", files["network"], "--long-term"]
    elif case == "extension":
        out = str(tmp_path / "out.xyz")
    elif case == "no-frames":
        source = str(tmp_path / "empty")
        os.mkdir(source)
    else:
        source = str(tmp_path / "broken.mp4")
        with open(source, "wb") as handle:
            handle.write(b"\0" * 2000)
    before = set(os.listdir(tmp_path))
    assert main(["video", source, "--output", out, *extra, *BASE]) == 2
    one_error_line(capsys.readouterr().err, message)
    assert set(os.listdir(tmp_path)) == before
