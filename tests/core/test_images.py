"""Reading, sizing, pre- and post-processing and writing images (no framework needed)."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from multistyle import images
from multistyle.errors import MultistyleError


def _save(tmp_path, name, image, **kwargs):
    path = tmp_path / name
    image.save(path, **kwargs)
    return str(path)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    loaded = images.load_image(_save(tmp_path, "rotated.jpg", image, exif=exif.tobytes()))
    assert loaded.size == (20, 40)


@pytest.mark.parametrize("mode, fill, expected", [
    ("L", 100, (100, 100, 100)),
    ("CMYK", (0, 0, 0, 0), (255, 255, 255)),
    ("RGBA", (255, 0, 0, 0), (255, 255, 255)),  # fully transparent red composites to white
    ("LA", (0, 128), (128, 128, 128)),  # half-transparent black on white
    ("I;16", 65535, (255, 255, 255)),
])
def test_colour_modes_become_rgb(tmp_path, mode, fill, expected):
    image = Image.new(mode, (8, 6), fill)
    extension = "tif" if mode in ("CMYK", "I;16") else "png"
    loaded = images.load_image(_save(tmp_path, f"image.{extension}", image))
    assert loaded.mode == "RGB"
    np.testing.assert_allclose(np.asarray(loaded)[0, 0], expected, atol=1)


def test_palette_with_transparency_composites_on_white(tmp_path):
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0] * 256)
    image.info["transparency"] = 0
    loaded = images.load_image(_save(tmp_path, "palette.png", image, transparency=0))
    assert np.asarray(loaded)[0, 0].tolist() == [255, 255, 255]


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing.png", "does not exist"),
    (lambda p: p, "is a directory"),
    (lambda p: _write(p / "empty.png", b""), "empty file"),
    (lambda p: _write(p / "notes.png", b"hello"), "not an image"),
    (lambda p: _write(p / "cut.png", _png_bytes()[:60]), "cannot read image"),
])
def test_bad_image_files_are_refused(tmp_path, make, message):
    with pytest.raises(MultistyleError, match=f"--content: .*{message}"):
        images.load_image(str(make(tmp_path)), "--content")


def _write(path, data):
    path.write_bytes(data)
    return path


def _png_bytes():
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_size_parsing():
    assert images.parse_size("300x450") == ((300, 450), None)
    assert images.parse_size("512") == (None, 512)
    for bad in ("0x10", "-5", "abc", "3x4x5", ""):
        with pytest.raises(MultistyleError, match="--size"):
            images.parse_size(bad)
    assert images.fit_long_edge((400, 300), 200) == (150, 200)  # PIL (W, H) in, (H, W) out


def test_preprocess_is_bilinear_normalised_nchw_and_postprocess_inverts_it():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    x = images.preprocess(image, (15, 20))
    assert x.shape == (1, 3, 15, 20) and x.dtype == np.float32
    resized = np.asarray(image.resize((20, 15), Image.BILINEAR), dtype=np.float32) / 255
    np.testing.assert_allclose(x[0].transpose(1, 2, 0), (resized - images.RGB_MEAN) / images.RGB_STD, rtol=1e-6)
    same = images.preprocess(image, (30, 40))
    np.testing.assert_array_equal(images.postprocess(same), pixels)
    assert images.postprocess(np.full((1, 3, 2, 2), 50.0, np.float32)).max() == 255  # clipped, not wrapped


def test_atomic_save_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with images.atomic_write(str(target)) as handle:
            handle.write(b"partial")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.png"]
    pixels = np.zeros((4, 5, 3), np.uint8)
    for extension in ("png", "jpg", "webp", "tif"):
        images.save_image(pixels, str(tmp_path / f"o.{extension}"))
        assert Image.open(tmp_path / f"o.{extension}").size == (5, 4)
    with pytest.raises(MultistyleError, match="cannot tell the image format"):
        images.save_image(pixels, str(tmp_path / "o.xyz"))


def test_resize_array_is_bilinear_per_channel():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 3, 8, 12)).astype(np.float32)
    np.testing.assert_allclose(images.resize_array(x, (8, 12)), x, rtol=1e-6, atol=1e-6)  # same size: unchanged
    flat = np.broadcast_to(np.array([1.5, -2.0, 0.25], np.float32)[None, :, None, None], (1, 3, 5, 7))
    up = images.resize_array(flat, (10, 14))
    assert up.shape == (1, 3, 10, 14) and up.dtype == np.float32
    np.testing.assert_allclose(up, np.broadcast_to(flat[:, :, :1, :1], up.shape), rtol=1e-6)
