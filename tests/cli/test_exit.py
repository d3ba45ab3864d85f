"""The program's exit: Python's last garbage collection is spared the objects alive when a command ends."""

from __future__ import annotations

import gc
import sys

import pytest

from multistyle.cli import main


@pytest.fixture
def unfrozen():
    """No frozen objects before the test, and none left after it: a frozen object is never collected."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_the_program_freezes_what_is_alive_when_its_command_ends(unfrozen, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["multistyle", "presets"])
    assert main() == 0
    assert gc.get_freeze_count() > 1000  # the interpreter's and multistyle's objects, out of the exit's collection
    assert "d2l" in capsys.readouterr().out


def test_a_failed_command_freezes_too(unfrozen, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["multistyle", "weights", "info", "no-such-file.npz"])
    assert main() == 2
    assert gc.get_freeze_count() > 1000
    assert "no-such-file.npz" in capsys.readouterr().err


def test_a_program_that_calls_main_with_its_own_arguments_keeps_its_garbage_collection(unfrozen, capsys):
    assert main(["presets"]) == 0
    assert gc.get_freeze_count() == 0
