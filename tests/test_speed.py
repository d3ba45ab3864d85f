"""Speed and memory features that change no result: batched loss reads, --plan and --max-memory."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

from multistyle import memory
from multistyle.backend import get_backend
from multistyle.cli import main
from multistyle.errors import MultistyleError
from multistyle.loop import plan_memory, READ_BATCH
from multistyle.settings import Settings
from multistyle.transfer import UntrainedWeightsWarning, transfer


def _run(backend_name, image_files, asynchronous, monkeypatch, **overrides):
    B = get_backend(backend_name, "cpu")
    monkeypatch.setattr(type(B), "asynchronous", property(lambda self: asynchronous))
    reads, seen = [], []
    original = B.to_numpy

    def counting(tensor):
        if len(B.shape(tensor)) == 1:
            reads.append(B.shape(tensor)[0])
        return original(tensor)

    monkeypatch.setattr(B, "to_numpy", counting)

    def on_epoch(record, image):
        seen.append((int(record["epoch"]), image() if record["epoch"] % 6 == 0 else None))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)
        result = transfer(image_files["content"], image_files["style"], backend=B, weights="random:0",
                          size=(24, 32), callback=on_epoch, snapshot_every=6, **overrides)
    return result, reads, seen


def test_an_asynchronous_device_reads_losses_in_batches_with_the_same_records(backend_name, image_files,
                                                                             monkeypatch):
    eager, eager_reads, eager_seen = _run(backend_name, image_files, False, monkeypatch, epochs=19)
    batched, batched_reads, batched_seen = _run(backend_name, image_files, True, monkeypatch, epochs=19)
    assert len(eager_reads) == 19  # one transfer per epoch, not one per loss term
    # Epoch 1 alone (its warm-up time is not shared), then at most READ_BATCH epochs, cut at each snapshot
    # epoch (6, 12, 18) and at the last: 2-6, 7-12, 13-18, 19.
    assert READ_BATCH >= 6
    assert len(batched_reads) == 5 and sum(batched_reads) == 19 * 4
    assert [epoch for epoch, _ in batched_seen] == list(range(1, 20)) == [epoch for epoch, _ in eager_seen]
    for key in ("content", "style", "tv", "total"):
        np.testing.assert_allclose([r[key] for r in batched.history], [r[key] for r in eager.history], rtol=1e-5)
    assert [r["evaluations"] for r in batched.history] == [1] * 19
    # At snapshot epochs the callback's image is that epoch's, as without batching.
    for (epoch, a), (_, b) in zip(batched_seen, eager_seen):
        if a is not None:
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 1, epoch
    np.testing.assert_allclose(batched.array, eager.array, rtol=1e-4, atol=1e-4)


def test_stop_rules_read_every_epoch_even_on_an_asynchronous_device(backend_name, image_files, monkeypatch):
    probe, _, _ = _run(backend_name, image_files, False, monkeypatch, epochs=10)
    target = probe.history[4]["total"] * (1 + 1e-4)
    result, reads, _ = _run(backend_name, image_files, True, monkeypatch, epochs=10, until_loss=target)
    assert len(result.history) == 5 and len(reads) == 5
    assert result.stopped.startswith("the loss reached")


def test_a_non_finite_loss_names_its_epoch_within_a_batch(backend_name, image_files, monkeypatch):
    with pytest.raises(Exception, match=r"the loss became (nan|inf) at epoch \d+; lower --lr"):
        _run(backend_name, image_files, True, monkeypatch, epochs=12, lr=1e30)


# -- memory prediction -------------------------------------------------------------------------------------

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
            "print('loaded', sorted(m for m in ('torch', 'mxnet', 'paddle') if m in sys.modules)); sys.exit(rc)")
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
