"""Clips in and out: a video file, or a folder of frames.

Video files go through imageio-ffmpeg (the ``video`` extra), whose wheel ships a static ffmpeg build: nothing is
asked of the system.  It was chosen over PyAV because it runs that binary as a subprocess (no C extension tied to
the numpy ABI, which matters beside MXNet's ``numpy<1.24``), reads and writes raw RGB frames one at a time, and
muxes another file's audio into the output.  imageio-ffmpeg itself is BSD-licensed; the ffmpeg binary its wheel
ships is built with ``--enable-gpl --enable-version3`` (libx264 among its encoders), so that binary is under the
GPL version 3 (``ffmpeg -version`` prints its configuration).  multistyle runs it as a separate program and
does not ship it.

What is kept: the frame rate (as the rational number the file states), the size (odd sizes too: they are written
4:4:4, which H.264 allows at any size, where 4:2:0 needs even sides) and the first audio stream, copied.  A
folder of frames keeps its frames' names' order (natural: ``frame2`` before ``frame10``) and has the frame rate
``fps`` (25 unless given).  Writing is atomic: the file appears whole at the end, or not at all.
"""

from __future__ import annotations

import os
import re
from fractions import Fraction
from typing import Iterable, Iterator, List, Optional, Tuple

import numpy as np

from .. import images
from ..errors import MultistyleError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".m4v", ".avi", ".webm")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
DEFAULT_FPS = 25.0
#: Video codec by the output's extension (ffmpeg's encoder names; all in imageio-ffmpeg's build).
CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".m4v": "libx264", ".avi": "libx264",
          ".webm": "libvpx-vp9"}
QUALITY = ["-crf", "18"]  # visually lossless for H.264 and VP9 at their usual ranges


def _ffmpeg():
    try:
        import imageio_ffmpeg
    except ImportError:
        raise MultistyleError("video: reading and writing clips needs imageio-ffmpeg; install it with pip install "
                              "'multistyle[video]'") from None
    return imageio_ffmpeg


def _natural(name: str) -> List[object]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def is_video_file(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_SUFFIXES


class Clip:
    """A clip to read: ``path`` a video file or a folder of frames.  ``count``, ``fps``, ``size`` (``(H, W)``)
    and ``audio`` (the audio codec's name, or None) are known on construction; :meth:`frames` reads."""

    def __init__(self, path: str, option: str = "clip", fps: Optional[float] = None) -> None:
        self.path, self.option = path, option
        check_fps(fps)
        if os.path.isdir(path):
            names = sorted((n for n in os.listdir(path) if n.lower().endswith(FRAME_SUFFIXES)), key=_natural)
            if not names:
                raise MultistyleError(f"{option}: no frames in the folder {path!r} (looked for "
                                      f"{', '.join(FRAME_SUFFIXES)} files)")
            self.files: Optional[List[str]] = [os.path.join(path, n) for n in names]
            first = images.load_image(self.files[0], option)
            self.size: Tuple[int, int] = (first.height, first.width)
            self.count, self.audio = len(names), None
            self.fps = Fraction(fps if fps is not None else DEFAULT_FPS).limit_denominator(1001)
            return
        if not os.path.isfile(path):
            raise MultistyleError(f"{option}: no such file or folder: {path!r}")
        self.files = None
        ffmpeg = _ffmpeg()
        reader = ffmpeg.read_frames(path)
        try:
            meta = next(reader)
        except (IOError, RuntimeError, StopIteration) as exc:
            raise MultistyleError(f"{option}: cannot read {path!r} as a video ({_why(exc)})") from None
        finally:
            reader.close()
        width, height = meta["size"]
        self.size = (int(height), int(width))
        self.audio = meta.get("audio_codec")
        try:
            self.count = int(ffmpeg.count_frames_and_secs(path)[0])
        except (IOError, RuntimeError) as exc:
            raise MultistyleError(f"{option}: cannot read {path!r} as a video ({_why(exc)})") from None
        if self.count == 0:
            raise MultistyleError(f"{option}: {path!r} has no video frames")
        self.fps = Fraction(fps).limit_denominator(1001) if fps is not None else stated_rate(meta.get("fps"))

    def frames(self, start: int = 0) -> Iterator[np.ndarray]:
        """The frames from ``start`` on, each ``(H, W, 3)`` uint8."""
        if self.files is not None:
            for path in self.files[start:]:
                pixels = np.asarray(images.load_image(path, self.option), np.uint8)
                if pixels.shape[:2] != self.size:
                    raise MultistyleError(f"{self.option}: {path} is {pixels.shape[0]}x{pixels.shape[1]}, the clip's "
                                          f"first frame {self.size[0]}x{self.size[1]}; a clip's frames have one size")
                yield pixels
            return
        reader = _ffmpeg().read_frames(self.path)
        try:
            next(reader)
            height, width = self.size
            for index, data in enumerate(reader):
                if index >= start:
                    yield np.frombuffer(data, np.uint8).reshape(height, width, 3)
        finally:
            reader.close()


def check_fps(fps: Optional[float]) -> None:
    if fps is not None and not fps > 0:
        raise MultistyleError(f"--fps: expected a frame rate > 0, got {fps!r}")


def stated_rate(fps: Optional[float]) -> Fraction:
    """The frame rate a file states, from ffmpeg's rounded figure: NTSC's ``k·1000/1001`` (printed as 29.97,
    23.98, 59.94) restored, any other rate as printed; :data:`DEFAULT_FPS` where ffmpeg found none."""
    if not fps:
        return Fraction(DEFAULT_FPS)
    ntsc = Fraction(round(fps * 1.001) * 1000, 1001)
    return ntsc if abs(float(ntsc) - fps) < 0.006 and ntsc.denominator != 1 else Fraction(fps).limit_denominator(1001)


def _why(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def write_video(frames: Iterable[np.ndarray], path: str, fps: Fraction, audio_from: Optional[str] = None) -> int:
    """Write ``frames`` (``(H, W, 3)`` uint8, one size) to the video file ``path`` atomically, at ``fps``, with the
    first audio stream of ``audio_from`` copied in; the number of frames written."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in CODECS:
        raise MultistyleError(f"--output: cannot write {extension or 'a file without an extension'} video; use one "
                              f"of {', '.join(sorted(CODECS))}, or a folder for frames")
    ffmpeg = _ffmpeg()
    written = 0
    with images.atomic_path(path) as temp:
        writer = None
        try:
            for frame in frames:
                frame = np.ascontiguousarray(frame, np.uint8)
                if writer is None:
                    height, width = frame.shape[:2]
                    even = height % 2 == 0 and width % 2 == 0
                    writer = ffmpeg.write_frames(
                        temp, (width, height), fps=fps, codec=CODECS[extension], quality=None,
                        pix_fmt_out="yuv420p" if even else "yuv444p", macro_block_size=1, ffmpeg_log_level="error",
                        output_params=list(QUALITY), audio_path=audio_from, audio_codec="copy" if audio_from else None)
                    writer.send(None)
                writer.send(frame)
                written += 1
        except (IOError, RuntimeError, BrokenPipeError) as exc:
            raise MultistyleError(f"--output: ffmpeg could not write {path!r} ({_why(exc)})") from None
        finally:
            if writer is not None:
                try:
                    writer.close()
                except (IOError, RuntimeError) as exc:
                    raise MultistyleError(f"--output: ffmpeg could not write {path!r} ({_why(exc)})") from None
        if writer is None:
            raise MultistyleError(f"--output: no frames to write to {path!r}")
    return written
