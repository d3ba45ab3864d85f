"""Helpers for tests that run the command line: the one-line error, a small ``run``."""

from __future__ import annotations

import signal
from typing import List


def ctrl_c_reaches_it() -> None:
    """``preexec_fn`` of a process a test stops with SIGINT: Ctrl-C's default action, as in a terminal.  A
    suite started as a shell's background job inherits SIGINT ignored, and Python then installs no handler
    for it: the process would run on (a CI run started that way lost two Ctrl-C tests to it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def one_error_line(stderr: str, message: str) -> str:
    """The single ``multistyle: error:`` line of ``stderr`` (warnings aside), which must contain ``message``."""
    lines = [line for line in stderr.splitlines() if not line.startswith("multistyle: warning:")]
    assert len(lines) == 1 and lines[0].startswith("multistyle: error: "), stderr
    assert message in lines[0], lines[0]
    return lines[0]


def run_args(image_files, output, *extra) -> List[str]:
    """``multistyle run`` at a tiny size with seeded random weights, on the CPU, quiet."""
    return ["run", "--content", image_files["content"], "--style", image_files["style"], "--output", str(output),
            "--size", "24x32", "--epochs", "3", "--weights", "random:2", "--device", "cpu", "--quiet", *extra]
