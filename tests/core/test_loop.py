"""The optimisation loop: stop rules, the multi-scale plan, and batched loss reads.

An asynchronous device (a GPU) reads losses back in batches; the records, stop rules and errors must be
the same as reading every epoch.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from multistyle.backend import get_backend
from multistyle.errors import MultistyleError
from multistyle.loop import READ_BATCH
from multistyle.settings import Settings
from multistyle.transfer import UntrainedWeightsWarning, transfer


def test_stop_rules_ignore_a_single_spike():
    from multistyle.loop import stop_reason

    def history(totals):
        return [{"epoch": i + 1, "total": t} for i, t in enumerate(totals)]

    settings = Settings(tol=0.01).resolved()
    improving = [100.0 * 0.99 ** i for i in range(30)]  # 1 % an epoch: 18 % over 20 epochs
    assert stop_reason(settings, history(improving)) == ""
    spiky = improving[:29] + [1e6]  # an L-BFGS blow-up on the last epoch: the window's best still improved
    assert stop_reason(settings, history(spiky)) == ""
    flat = improving[:10] + [improving[9] * (1 - 0.001)] * 20  # 0.1 % over the last 20 epochs
    assert "(< --tol 0.01) over the 20 epochs to epoch 30" in stop_reason(settings, history(flat))
    assert stop_reason(settings, history(flat[:20])) == ""  # no full window before epoch 21
    # A spike just before the window is not the baseline either: the best loss before it is.
    stalled = improving[:9] + [1e6] + [improving[8] * (1 - 0.001)] * 20
    assert "(< --tol 0.01) over the 20 epochs to epoch 30" in stop_reason(settings, history(stalled))
    target = Settings(until_loss=50.0).resolved()
    assert stop_reason(target, history([80.0, 50.0])) == "the loss reached 50 <= --until-loss 50 at epoch 2"
    assert stop_reason(target, history([80.0, 50.1])) == ""


def test_scale_plan_halves_sizes_and_favours_coarse_scales():
    from multistyle.loop import scale_plan

    assert scale_plan((300, 450), 1, 500) == [((300, 450), 500)]
    plan = scale_plan((300, 450), 3, 500)
    assert [size for size, _ in plan] == [(75, 112), (150, 225), (300, 450)]
    assert [epochs for _, epochs in plan] == [287, 142, 71] and sum(e for _, e in plan) == 500
    assert [e for _, e in scale_plan((64, 64), 3, 3)] == [1, 1, 1]  # every scale gets an epoch
    # --final-share: the full size gets that share, the smaller scales the rest, weighted as before among them
    assert scale_plan((300, 450), 2, 300, 0.6) == [((150, 225), 120), ((300, 450), 180)]
    assert [e for _, e in scale_plan((300, 450), 3, 500, 0.5)] == [167, 83, 250]
    assert [e for _, e in scale_plan((64, 64), 3, 3, 0.9)] == [1, 1, 1]
    assert scale_plan((300, 450), 1, 500, 0.6) == [((300, 450), 500)]  # one scale: the share has nothing to split
    with pytest.raises(MultistyleError, match="--scales: 3 scales of 40x60 make the coarsest 10x15, smaller than 16"):
        scale_plan((40, 60), 3, 10)
    with pytest.raises(MultistyleError, match="--scales: 4 scales need at least as many epochs, got 3"):
        Settings(scales=4, epochs=3).resolved()


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


def test_the_smoothing_shrinks_with_the_rate_and_restarts_at_each_scale(backend_name, image_files, monkeypatch):
    """``--tv-smoothing``: each evaluation gets the rate over its scale's first rate as ``tv_scale``."""
    B = get_backend(backend_name, "cpu")
    original, seen = B.compile_objective, []

    def spying(terms):
        compiled = original(terms)

        def call(x, *extra):
            seen.append(extra)
            return compiled(x, *extra)
        return call

    monkeypatch.setattr(B, "compile_objective", spying)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)
        transfer(image_files["content"], image_files["style"], backend=B, weights="random:0", size=(32, 48),
                 epochs=10, scales=2, final_share=0.6, lr_decay=0.5, lr_decay_every=2, tv_smoothing=0.02)
        assert [len(extra) for extra in seen] == [1] * 10
        halving = [1.0, 1.0, 0.5, 0.5]  # 4 coarse epochs, then 6 at the full size
        assert [extra[0] for extra in seen] == pytest.approx(halving + halving + [0.25, 0.25], rel=1e-6)
        seen.clear()
        transfer(image_files["content"], image_files["style"], backend=B, weights="random:0", size=(32, 48),
                 epochs=3, lr_decay=0.5, lr_decay_every=2)
    assert seen == [()] * 3  # without smoothing, the objective as it always was


def test_a_run_places_the_network_once_for_all_its_scales(backend_name, image_files, monkeypatch):
    """The network (its weights on the device) is built once per run, not once per scale."""
    B = get_backend(backend_name, "cpu")
    built = []
    original = B.vgg19_layers

    def vgg19_layers(*args, **kwargs):
        built.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(B, "vgg19_layers", vgg19_layers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)
        result = transfer(image_files["content"], image_files["style"], backend=B, weights="random:0",
                          size=(32, 48), settings=Settings(epochs=4, scales=2, final_share=0.5))
    assert len(built) == 1
    assert len({row.get("scale") for row in result.history}) == 2


@pytest.mark.parametrize("scale_start", ["upsampled", "content-detail"])
def test_each_larger_scale_starts_as_scale_start_says(backend_name, image_files, monkeypatch, scale_start):
    """``--scale-start``: the last result upsampled, or the content here plus the last result's change, upsampled."""
    import sys

    from PIL import Image

    from multistyle import images

    transfer_module = sys.modules["multistyle.transfer"]  # the package's ``transfer`` is the function

    B = get_backend(backend_name, "cpu")
    starts, ends = [], []
    original_optimizer, original_optimise = B.optimizer, transfer_module.optimise

    def optimizer(name, start, *args, **kwargs):
        starts.append(np.array(start))
        return original_optimizer(name, start, *args, **kwargs)

    def optimise(B_, objective, opt, *args, **kwargs):
        stopped = original_optimise(B_, objective, opt, *args, **kwargs)
        ends.append(B.to_numpy(opt.image))
        return stopped

    monkeypatch.setattr(B, "optimizer", optimizer)
    monkeypatch.setattr(transfer_module, "optimise", optimise)
    settings = Settings(epochs=6, scales=2, final_share=0.5, scale_start=scale_start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)
        transfer(image_files["content"], image_files["style"], backend=B, weights="random:0", size=(32, 48),
                 settings=settings)
    content = Image.open(image_files["content"]).convert("RGB")
    coarse, fine = (transfer_module._inputs(settings.resolved(), content, [content], shape)[1]
                    for shape in [(16, 24), (32, 48)])
    assert starts[0].shape == coarse.shape and starts[1].shape == fine.shape
    np.testing.assert_allclose(starts[0], coarse, atol=1e-6)  # the first scale starts from the content
    upsampled = images.resize_array(ends[0], (32, 48))
    assert np.abs(ends[0] - coarse).max() > 0.05  # the coarse scale did change the image
    expected = upsampled if scale_start == "upsampled" else fine + images.resize_array(ends[0] - coarse, (32, 48))
    np.testing.assert_allclose(starts[1], expected, atol=1e-5)
    # The two differ by the content's detail that upsampling blurs.
    assert np.abs(fine - images.resize_array(coarse, (32, 48))).max() > 0.05
