"""Helpers for tests that run the command line: the one-line error, a small ``run``."""

from __future__ import annotations

from typing import List


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
