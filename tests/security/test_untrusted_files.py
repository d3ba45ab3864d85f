"""Untrusted input files: weight pickles never run code; images are a fixed list of raster formats.

Most of these run in every tox env: the checks happen before a backend is loaded.
"""

from __future__ import annotations

import os
import pickle
import re
from collections import OrderedDict

import numpy as np
import pytest
from PIL import Image

from multistyle import images
from multistyle.cli import main
from multistyle.errors import MultistyleError, WeightsError
from multistyle.safe_pickle import UnsafePickle, load_state_dict
from multistyle.vgg import random_weights, state_dict
from support.cli import one_error_line, run_args
from support.needs import require


class _Payload:
    """Unpickling this creates a file: what a malicious .pdparams would do."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return open, (self.target, "w")


def _evil_pdparams(folder, target) -> str:
    path = folder / "evil.pdparams"
    weights = state_dict(random_weights(0, last=0))
    weights["features.0.weight"] = _Payload(str(target))
    path.write_bytes(pickle.dumps(weights, protocol=4))
    return str(path)


def test_a_pickle_that_would_run_code_is_refused_before_anything_runs(tmp_path):
    target = tmp_path / "pwned.txt"
    path = _evil_pdparams(tmp_path, target)
    with pytest.raises(UnsafePickle, match=r"refused to load: the file asks to run io\.open, which") as info:
        load_state_dict(path)
    assert "\n" not in str(info.value)
    assert not target.exists()


def test_state_dicts_of_arrays_load_through_the_restricted_reader(tmp_path):
    # What paddle.save writes: a pickled dict (or OrderedDict) of NumPy arrays; NumPy's own reduce.
    arrays = state_dict(random_weights(1, last=2))
    for number, container in enumerate((dict, OrderedDict)):
        path = tmp_path / f"ok{number}.pdparams"
        path.write_bytes(pickle.dumps(container(arrays, extra=np.float32(2.0), note="text"), protocol=number + 2))
        loaded = load_state_dict(str(path))
        assert sorted(loaded) == sorted(arrays)
        for key, value in arrays.items():
            assert loaded[key].dtype == value.dtype
            np.testing.assert_array_equal(loaded[key], value)


@pytest.mark.parametrize("content, message", [
    (b"", "not a readable Paddle checkpoint (EOFError"),
    (b"\x80\x04\x95 truncated", "not a readable Paddle checkpoint"),
    (pickle.dumps([1, 2, 3]), "expected a state dict, found a list"),
], ids=["empty", "truncated", "a-list"])
def test_damaged_pickles_give_one_line(tmp_path, content, message):
    path = tmp_path / "bad.pdparams"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=re.escape(message)) as info:
        load_state_dict(str(path))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("command", ["run", "info", "convert"])
def test_malicious_pdparams_through_the_cli(command, image_files, tmp_path, capsys):
    require("paddle")
    target = tmp_path / "pwned.txt"
    path = _evil_pdparams(tmp_path, target)
    if command == "run":
        argv = run_args(image_files, tmp_path / "out.png", "--backend", "paddle")
        argv[argv.index("random:2")] = path
    elif command == "info":
        argv = ["weights", "info", path]
    else:
        argv = ["weights", "convert", path, str(tmp_path / "out.npz")]
    assert main(argv) == 2
    one_error_line(capsys.readouterr().err, "refused to load")
    assert not target.exists()
    assert not [name for name in os.listdir(tmp_path) if name.startswith(("out", ".out"))]


def test_postscript_never_reaches_ghostscript(tmp_path, monkeypatch):
    from PIL import EpsImagePlugin

    calls = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: calls.append(a) or (_ for _ in ()).throw(
        AssertionError("Ghostscript was called")))
    eps = tmp_path / "image.png"  # the extension does not matter: Pillow sniffs the content
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nnewpath 0 0 moveto 8 8 lineto stroke\n"
                    b"showpage\n%%EOF\n")
    with pytest.raises(MultistyleError, match=r"is not an image in a supported format \(PNG, JPEG, WEBP, TIFF"):
        images.load_image(str(eps), "--style")
    assert calls == []


def test_every_listed_format_loads(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    for extension, fmt in ((".png", "PNG"), (".jpg", "JPEG"), (".webp", "WEBP"), (".tif", "TIFF"), (".bmp", "BMP"),
                           (".gif", "GIF")):
        path = tmp_path / f"in{extension}"
        Image.fromarray(pixels).save(path, format=fmt)
        loaded = images.load_image(str(path))
        assert loaded.mode == "RGB" and loaded.size == (16, 12), fmt


def test_decompression_bomb_limit_holds(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (200, 100)).save(path)
    with pytest.raises(MultistyleError, match="has more than 19999 pixels; raise --max-pixels"):
        images.load_image(str(path), "--content", max_pixels=19_999)
    assert images.load_image(str(path), "--content", max_pixels=20_000).size == (200, 100)
