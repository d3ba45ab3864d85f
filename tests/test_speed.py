"""Speed and memory features that change no result: batched loss reads, --plan and --max-memory."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from multistyle.backend import get_backend
from multistyle.transfer import READ_BATCH, UntrainedWeightsWarning, transfer


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
