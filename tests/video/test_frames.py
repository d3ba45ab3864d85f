"""Clips in and out (``multistyle.video.frames``): the frame count, the frame rate and the size are kept, odd
sizes too; the audio stream is copied; a folder of frames reads in its names' natural order; bad clips are
one-line errors and a failed write leaves nothing at the output path."""

from __future__ import annotations

import os
import subprocess
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from multistyle.errors import MultistyleError
from multistyle.video.frames import Clip, write_video
from support.clips import Shape, clip

pytestmark = pytest.mark.video


def _frames(count=6, height=48, width=64):
    """A moving shape, each frame a little brighter than the one before: no two frames alike."""
    frames = clip(count, height, width, shapes=[Shape(3, (12, 16), (8, 10), (2, 3))], seed=1)
    return [(frame // 2 + 12 * index).astype(np.uint8) for index, frame in enumerate(frames)]


@pytest.mark.parametrize("size, fps", [((48, 64), Fraction(12)), ((33, 47), Fraction(30000, 1001))],
                         ids=["even", "odd-ntsc"])
def test_a_written_clip_reads_back_with_its_count_rate_size_and_pictures(tmp_path, size, fps):
    frames = _frames(6, *size)
    path = str(tmp_path / "clip.mp4")
    assert write_video(iter(frames), path, fps) == 6
    read = Clip(path)
    assert (read.count, read.fps, read.size, read.audio) == (6, fps, size, None)
    back = list(read.frames())
    assert len(back) == 6 and all(f.shape == size + (3,) for f in back)
    errors = np.array([[np.abs(a.astype(float) - b.astype(float)).mean() for b in frames] for a in back])
    assert errors.diagonal().max() < 3.0  # H.264 at crf 18: close, not exact
    assert (errors.argmin(axis=1) == np.arange(6)).all()  # each frame read back is its own, in order
    assert len(list(read.frames(start=4))) == 2


def test_the_audio_stream_is_copied(tmp_path):
    from imageio_ffmpeg import get_ffmpeg_exe

    source = str(tmp_path / "with-sound.mp4")
    subprocess.run([get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1",
                    "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-shortest", source], check=True)
    read = Clip(source)
    assert read.audio == "aac" and read.count == 10 and read.fps == 10
    out = str(tmp_path / "out.mp4")
    write_video(read.frames(), out, read.fps, audio_from=source)
    assert Clip(out).audio == "aac"
    silent = str(tmp_path / "silent.mp4")
    write_video(read.frames(), silent, read.fps)
    assert Clip(silent).audio is None


def test_a_folder_of_frames_reads_in_natural_order_at_the_given_rate(tmp_path):
    frames = _frames(11)
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / f"frame{index}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    read = Clip(str(tmp_path), fps=8)
    assert (read.count, read.fps, read.size) == (11, 8, (48, 64))
    for got, expected in zip(read.frames(), frames):  # frame10 after frame9, not after frame1
        np.testing.assert_array_equal(got, expected)
    assert Clip(str(tmp_path)).fps == 25


def test_bad_clips_are_one_line_errors_and_a_failed_write_leaves_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MultistyleError, match="no frames in the folder"):
        Clip(str(tmp_path / "empty"))
    with pytest.raises(MultistyleError, match="no such file or folder"):
        Clip(str(tmp_path / "missing.mp4"))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    with pytest.raises(MultistyleError, match="cannot read .* as a video") as caught:
        Clip(str(broken))
    assert "\n" not in str(caught.value)
    with pytest.raises(MultistyleError, match="use one of"):
        write_video(iter(_frames(2)), str(tmp_path / "out.xyz"), Fraction(10))

    def failing():
        yield from _frames(2)
        raise KeyboardInterrupt  # Ctrl-C part way

    with pytest.raises(KeyboardInterrupt):
        write_video(failing(), str(tmp_path / "out.mp4"), Fraction(10))
    assert sorted(os.listdir(tmp_path)) == ["broken.mp4", "empty"]
