"""Fuzzing image loading: corrupted, truncated and lying files made from the bundled examples.

Every file must either load as an RGB image or raise a one-line
:class:`MultistyleError`; any other exception (a traceback for the user), a
warning that would reach the terminal, or a load that takes more than a second
fails.  The corpus is seeded, so a failure
names a case that can be rebuilt.
"""

from __future__ import annotations

import io
import os
import struct
import time
import warnings
import zlib
from typing import Callable, Dict, Iterator, Tuple

import numpy as np
import pytest
from PIL import Image

from multistyle import images
from multistyle.errors import MultistyleError
from support import REPOSITORY

EXAMPLES = str(REPOSITORY / "examples")
SEED = 2026


def _seeds() -> Dict[str, bytes]:
    """One small valid file per accepted format, plus the examples themselves."""
    with open(os.path.join(EXAMPLES, "content.jpg"), "rb") as handle:
        content = handle.read()
    with open(os.path.join(EXAMPLES, "style.jpg"), "rb") as handle:
        style = handle.read()
    small = Image.open(io.BytesIO(content)).convert("RGB").resize((40, 30))
    files = {"content.jpg": content, "style.jpg": style}
    for name, fmt, options in (("small.png", "PNG", {}), ("small.gif", "GIF", {}), ("small.bmp", "BMP", {}),
                               ("small.tif", "TIFF", {}), ("small.webp", "WEBP", {"quality": 80}),
                               ("small.jpg", "JPEG", {"quality": 80}), ("rgba.png", "PNG", {})):
        buffer = io.BytesIO()
        (small.convert("RGBA") if name == "rgba.png" else small).save(buffer, format=fmt, **options)
        files[name] = buffer.getvalue()
    return files


def _png_with_size(data: bytes, width: int, height: int) -> bytes:
    """The PNG with its IHDR claiming another size, CRC fixed so the lie gets past the checksum."""
    start = data.index(b"IHDR")
    body = struct.pack(">II", width, height) + data[start + 12:start + 4 + 13]
    chunk = b"IHDR" + body
    return data[:start] + chunk + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF) + data[start + 4 + 13 + 4:]


def _jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    """The JPEG with its start-of-frame (SOF0/SOF2) header claiming another size."""
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at >= 0:
            return data[:at + 5] + struct.pack(">HH", min(height, 65535), min(width, 65535)) + data[at + 9:]
    return data


def _bmp_with_size(data: bytes, width: int, height: int) -> bytes:
    return data[:18] + struct.pack("<ii", width, height) + data[26:]


def _gif_with_size(data: bytes, width: int, height: int) -> bytes:
    return data[:6] + struct.pack("<HH", min(width, 65535), min(height, 65535)) + data[10:]


LIARS: Dict[str, Callable[[bytes, int, int], bytes]] = {".png": _png_with_size, ".jpg": _jpeg_with_size,
                                                        ".bmp": _bmp_with_size, ".gif": _gif_with_size}
# Over the pixel limit (a bomb), thin, zero, and 4000x4000: under the default 100-megapixel limit, so the
# decoder really starts on 16 megapixels of missing data (81 megapixels took ~1 s of honest decoding
# work on a busy 2-core machine: not a hang, but no margin under the one-second bound).
ABSURD_SIZES = ((65535, 65535), (1, 65535), (65535, 1), (4000, 4000), (0, 30), (40, 0), (2 ** 31 - 1, 2))


def corpus() -> Iterator[Tuple[str, str, bytes]]:
    """``(case id, file name, bytes)``: about 400 damaged files."""
    rng = np.random.default_rng(SEED)
    for name, data in _seeds().items():
        extension = os.path.splitext(name)[1]
        for number in range(12):  # flipped bytes, few or many, anywhere (headers included)
            mutated = bytearray(data)
            count = int(rng.integers(1, 4 if number < 6 else 64))
            limit = len(data) if number % 2 else min(len(data), 128)
            for at in rng.integers(0, limit, count):
                mutated[at] ^= int(rng.integers(1, 256))
            yield f"{name}-flip{number}", f"flip{number}{extension}", bytes(mutated)
        for number, cut in enumerate(sorted(set(rng.integers(1, len(data), 12).tolist()) | {1, 8, 16, 64})):
            yield f"{name}-cut{cut}", f"cut{number}{extension}", data[:cut]
        if extension in LIARS and not name.startswith(("content", "style")):
            for width, height in ABSURD_SIZES:
                yield f"{name}-size{width}x{height}", f"size{extension}", LIARS[extension](data, width, height)
        for wrong in (".png", ".jpg", ".gif", ".txt", ""):  # wrong or missing extensions, intact content
            if wrong != extension:
                yield f"{name}-as{wrong or '-none'}", f"renamed{wrong}", data
        yield f"{name}-appended-garbage", f"garbage{extension}", data + rng.bytes(4096)
        yield f"{name}-zeroed-middle", f"zeroed{extension}", data[: len(data) // 2] + bytes(len(data) - len(data) // 2)
    yield "random-bytes", "noise.png", rng.bytes(2048)
    yield "text", "text.jpg", b"this is not an image\n" * 20


CASES = list(corpus())


def test_the_corpus_is_a_few_hundred_files():
    assert 300 <= len(CASES) <= 600


def test_every_damaged_file_loads_or_gives_one_line_quickly(tmp_path):
    outcomes = {"loaded": 0, "refused": 0}
    slowest = (0.0, "")
    for case, name, data in CASES:
        path = tmp_path / name
        path.write_bytes(data)
        started = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a decoder's warning would reach the user's terminal too
                image = images.load_image(str(path), "--content")
        except MultistyleError as exc:
            message = str(exc)
            assert "\n" not in message and message.startswith("--content: "), f"{case}: {message!r}"
            outcomes["refused"] += 1
        except Exception as exc:  # noqa: BLE001 - exactly what must not happen
            pytest.fail(f"{case}: {type(exc).__name__}: {exc} would reach the user as a traceback")
        else:
            assert image.mode == "RGB" and min(image.size) > 0, case
            outcomes["loaded"] += 1
        elapsed = time.perf_counter() - started
        slowest = max(slowest, (elapsed, case))
        os.unlink(path)
    assert slowest[0] < 1.0, f"{slowest[1]} took {slowest[0]:.2f} s"
    # The corpus exercises both outcomes: damaged files that still decode, and refusals.
    assert outcomes["loaded"] > 20 and outcomes["refused"] > 100, outcomes
