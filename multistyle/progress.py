"""A one-line progress display for optimisation runs, shared by ``run``, ``compare`` and ``bench``.

Callers enable it only when the stream is a terminal, so logs, CI and pipes
stay clean; it redraws at most ten times a second.
"""

from __future__ import annotations

import time
from typing import Dict, TextIO


class ProgressBar:
    """A one-line progress display on a terminal; silent elsewhere."""

    def __init__(self, total: int, stream: TextIO, enabled: bool, label: str = "") -> None:
        self.label = label + " " if label else ""
        self.total = total
        self.stream = stream
        self.enabled = enabled
        self.started = time.perf_counter()
        self.last_draw = 0.0

    def update(self, record: Dict[str, float]) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        done = int(record["epoch"])
        if done < self.total and now - self.last_draw < 0.1:
            return
        self.last_draw = now
        width = 24
        filled = width * done // self.total
        rate = (now - self.started) / done
        self.stream.write(
            f"\r{self.label}[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
            f"total {record['total']:.4g}  content {record['content']:.3g}  style {record['style']:.3g}  "
            f"tv {record['tv']:.3g}  {rate:.3f}s/it ")
        if done == self.total:
            self.stream.write("\n")
        self.stream.flush()
