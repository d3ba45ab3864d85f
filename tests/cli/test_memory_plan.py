"""``--plan`` and ``--max-memory``: the memory model's prediction, before any framework loads."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from multistyle import memory
from multistyle.cli import main
from multistyle.errors import MultistyleError
from multistyle.loop import plan_memory
from multistyle.settings import Settings


def test_counted_parts_match_the_network():
    from multistyle.vgg import random_weights
    weights = random_weights(0, last=28)
    assert memory.weight_bytes(28) == sum(w.nbytes + b.nbytes for w, b in weights.values())
    # 32x48: conv1 (2 convs + 2 relus) 64x32x48, pool1 64x16x24, conv2_1 and relu2_1 128x16x24.
    by_hand = 4 * (4 * 64 * 32 * 48 + 64 * 16 * 24 + 2 * 128 * 16 * 24)
    assert memory.activation_bytes((32, 48), 6) == by_hand
    assert memory.activation_bytes((64, 96), 28) > 3.9 * memory.activation_bytes((32, 48), 28)
    assert memory.optimizer_vectors("lbfgs", 500) == 2 + 200 + 3 > memory.optimizer_vectors("adam", 500) == 4
    assert memory.optimizer_vectors("lbfgs", 5) < memory.optimizer_vectors("lbfgs", 500)


@pytest.mark.parametrize("text, expected", [("4G", 4e9), ("1.5GiB", 1.5 * 2 ** 30), ("800m", 8e8),
                                            ("123456", 123456), (" 2 GB ", 2e9)])
def test_memory_sizes_parse(text, expected):
    assert memory.parse_bytes(text) == int(expected)


@pytest.mark.parametrize("text", ["", "G", "-1G", "0", "4X", "1e9", "four"])
def test_bad_memory_sizes_are_refused(text):
    with pytest.raises(MultistyleError, match="--max-memory: expected a size such as 4G"):
        memory.parse_bytes(text)


def _plan_command(image_files, tmp_path, *extra):
    return ["run", "--content", image_files["content"], "--style", image_files["style"],
            "--output", str(tmp_path / "out.png"), "--plan", *extra]


def test_plan_predicts_without_loading_a_framework(image_files, tmp_path):
    code = ("import sys; from multistyle.cli import main; rc = main(sys.argv[1:]); "
            "print('loaded', sorted(m for m in ('torch', 'mxnet', 'paddle', 'jax', 'tensorflow') if m in sys.modules)); "
            "sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, *_plan_command(image_files, tmp_path, "--size", "300x450",
                                                                     "--scales", "2", "--max-memory", "64G")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "scales: 150x225 for 334 epochs, 300x450 for 166 epochs" in out.stdout
    assert "predicted peak memory: host" in out.stdout and "fits in --max-memory 64G" in out.stdout
    assert "loaded []" in out.stdout
    assert not (tmp_path / "out.png").exists()


def test_max_memory_refuses_a_job_and_names_the_largest_size_that_fits(image_files, tmp_path, capsys):
    settings = Settings().resolved()
    small = plan_memory("torch", "cpu", (60, 90), settings).peak
    large = plan_memory("torch", "cpu", (300, 450), settings).peak
    limit = (small + large) // 2
    assert main(_plan_command(image_files, tmp_path, "--backend", "torch", "--device", "cpu", "--size", "300x450",
                              "--max-memory", str(limit))) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("multistyle: error: --max-memory: the job needs about")
    height, width = (int(v) for v in re.search(r"use --size (\d+)x(\d+) or smaller", err).groups())
    assert abs(width / height - 1.5) < 0.02
    assert plan_memory("torch", "cpu", (height, width), settings).peak <= limit
    assert plan_memory("torch", "cpu", (height + 4, width + 6), settings).peak > limit
    # A limit below what the framework alone needs: no size fits, and the error says so.
    assert main(_plan_command(image_files, tmp_path, "--backend", "torch", "--max-memory", "10M")) == 2
    assert "no size fits" in capsys.readouterr().err


def test_max_memory_is_checked_before_weights_load(backend_name, image_files, tmp_path, capsys):
    damaged = tmp_path / "damaged-weights.npz"  # found by the early checks; read only when weights load
    damaged.write_bytes(b"not a zip archive")
    args = ["run", "--content", image_files["content"], "--style", image_files["style"], "--output",
            str(tmp_path / "out.png"), "--backend", backend_name, "--device", "cpu", "--weights", str(damaged),
            "--size", "64x96"]
    assert main([*args, "--max-memory", "50M"]) == 2
    assert "--max-memory: the job needs about" in capsys.readouterr().err
    assert main(args) != 0  # the same job without the limit reaches the weights, and fails there
    assert "damaged-weights.npz" in capsys.readouterr().err
