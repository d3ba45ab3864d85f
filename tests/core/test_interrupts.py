"""Ctrl-C stops a run even when framework code swallows the ``KeyboardInterrupt``.

JAX's garbage-collector callback and weak-reference callbacks run Python code at unforeseeable points; a
SIGINT handled there raises ``KeyboardInterrupt`` inside them, Python prints "Exception ignored" and goes
on (``multistyle/interrupts.py``).  The tests plant that loss: an epoch's callback raises SIGINT and
swallows the ``KeyboardInterrupt`` it gets, as such a callback does.  Inside the epochs, a first Ctrl-C is
raised between two epochs only, never inside framework code; a second one raises at once.
"""

from __future__ import annotations

import signal
import warnings

import pytest

from multistyle import interrupts
from multistyle.backend import BUILTIN_BACKENDS, describe_backends, get_backend
from multistyle.transfer import UntrainedWeightsWarning, transfer

INSTALLED = [row["name"] for row in describe_backends(sorted(BUILTIN_BACKENDS)) if row["usable"]]
BACKEND = "torch" if "torch" in INSTALLED else (INSTALLED[0] if INSTALLED else "torch")


def needs_a_backend(test):
    """The loop's check is the core's: one framework (torch where it is installed) shows it."""
    return pytest.mark.any_backend(pytest.mark.skipif(not INSTALLED, reason="no framework installed")(test))


@pytest.fixture(autouse=True)
def pythons_own_handler():
    """Python's own SIGINT handler, as in a terminal: a suite started as a shell's background job (as CI
    may start it) inherits SIGINT ignored, and Python then installs none."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _lose_a_ctrl_c() -> None:
    """A SIGINT whose ``KeyboardInterrupt``, if it is raised here, some other code catches and drops."""
    try:
        signal.raise_signal(signal.SIGINT)
    except KeyboardInterrupt:
        return


def _run(backend_name, image_files, lose_at, epochs=10, seen=None, action=_lose_a_ctrl_c):
    seen = [] if seen is None else seen
    B = get_backend(backend_name, "cpu")

    def on_epoch(record, image):
        seen.append(int(record["epoch"]))
        if record["epoch"] == lose_at:
            action()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)
        return transfer(image_files["content"], image_files["style"], backend=B, weights="random:0",
                        size=(16, 24), epochs=epochs, scales=1, callback=on_epoch, snapshot_every=1)


def _next_run(image_files, **options):
    """A run after an interrupted one, which must not see that interrupt again."""
    try:
        return _run(BACKEND, image_files, lose_at=None, **options)
    except KeyboardInterrupt:
        pytest.fail("the next run raised the interrupt of the run before")


def test_a_ctrl_c_lost_inside_an_epoch_stops_the_run_at_the_next_epoch(backend_name, image_files):
    before = signal.getsignal(signal.SIGINT)
    seen = []
    with pytest.raises(KeyboardInterrupt):
        _run(backend_name, image_files, lose_at=3, seen=seen)
    assert seen == [1, 2, 3]  # not the remaining seven epochs
    assert signal.getsignal(signal.SIGINT) is before  # the handler the run found is back


@needs_a_backend
def test_a_ctrl_c_inside_an_epoch_lets_that_epoch_finish_and_stops_the_run_before_the_next(image_files):
    after = []

    def ctrl_c_then_more_work():
        signal.raise_signal(signal.SIGINT)  # what a framework's callback would be running
        after.append("the code after the signal ran")

    seen = []
    with pytest.raises(KeyboardInterrupt):
        _run(BACKEND, image_files, lose_at=2, seen=seen, action=ctrl_c_then_more_work)
    assert after == ["the code after the signal ran"]  # not unwound from inside the epoch
    assert seen == [1, 2]


@needs_a_backend
def test_a_second_ctrl_c_inside_an_epoch_stops_at_once(image_files):
    raised = []

    def two_ctrl_c():
        signal.raise_signal(signal.SIGINT)
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            raised.append("the second")
            raise

    with pytest.raises(KeyboardInterrupt):
        _run(BACKEND, image_files, lose_at=2, action=two_ctrl_c)
    assert raised == ["the second"]
    _next_run(image_files, epochs=2)  # nothing left noted


@needs_a_backend
def test_a_ctrl_c_lost_in_the_last_epoch_still_raises_and_is_raised_once(image_files):
    backend_name = BACKEND
    with pytest.raises(KeyboardInterrupt):
        _run(backend_name, image_files, lose_at=4, epochs=4)
    result = _next_run(image_files, epochs=4)
    assert len(result.history) == 4


@needs_a_backend
def test_an_interrupt_that_surfaces_is_not_raised_again_by_the_next_run(image_files):
    backend_name = BACKEND
    seen = []

    def interrupted(record, image):
        if record["epoch"] == 2:
            signal.raise_signal(signal.SIGINT)  # surfaces here, as Ctrl-C usually does

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)
        with pytest.raises(KeyboardInterrupt):
            transfer(image_files["content"], image_files["style"], backend=get_backend(backend_name, "cpu"),
                     weights="random:0", size=(16, 24), epochs=5, scales=1, callback=interrupted)
    _next_run(image_files, epochs=3, seen=seen)
    assert seen == [1, 2, 3]


@needs_a_backend
def test_a_programs_own_handler_is_left_to_decide(image_files):
    calls = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))  # "do not stop"
    try:
        result = _run(BACKEND, image_files, lose_at=2, epochs=4, action=lambda: signal.raise_signal(signal.SIGINT))
    except KeyboardInterrupt:
        pytest.fail("a SIGINT the program's own handler took raised KeyboardInterrupt")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert calls == [signal.SIGINT] and len(result.history) == 4


def test_only_pythons_own_handler_is_wrapped():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a shell's background job: Ctrl-C ignored
    try:
        with interrupts.watched():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            signal.raise_signal(signal.SIGINT)
        interrupts.check()  # nothing noted
    finally:
        signal.signal(signal.SIGINT, previous)
