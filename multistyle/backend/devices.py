"""Canonical device strings (``auto``, ``cpu``, ``gpu``, ``gpu:N``) and the threads a framework gets.

Nothing here imports a framework: each backend reports how many GPUs it sees
(:meth:`~multistyle.backend.Backend.gpu_count`) and maps ``gpu:N`` to its own
device object (:meth:`~multistyle.backend.Backend.place`).
"""

from __future__ import annotations

import os
import re
from typing import Optional, Sequence, Tuple

from ..errors import MultistyleError

_DEVICE = re.compile(r"^(auto|cpu|gpu)(?::(\d+))?$")


def parse_device(device: str) -> Tuple[str, Optional[int]]:
    """Check a device string: ``("auto"|"cpu"|"gpu", N or None)``."""
    match = _DEVICE.match(str(device).strip().lower())
    if not match or (match.group(1) != "gpu" and match.group(2) is not None):
        raise MultistyleError(f"--device: expected auto, cpu, gpu or gpu:N, got {device!r}")
    return match.group(1), None if match.group(2) is None else int(match.group(2))


def resolve_device(device: str, available: Sequence[str], backend: str) -> str:
    """Map ``auto``, ``cpu``, ``gpu`` or ``gpu:N`` to one of ``available``."""
    kind, number = parse_device(device)
    gpus = [d for d in available if d.startswith("gpu")]
    if kind == "auto":
        return gpus[0] if gpus else "cpu"
    if kind == "cpu":
        return "cpu"
    wanted = f"gpu:{number or 0}"
    if wanted not in available:
        seen = ", ".join(available)
        raise MultistyleError(f"--device: {backend} cannot use {wanted}; it sees {seen}")
    return wanted


def use_all_cores() -> None:
    """Set ``OMP_NUM_THREADS`` to the usable cores before a framework's import, unless the user has set it.

    For backends whose framework picks fewer OpenMP threads than there are
    usable cores when the variable is unset (the spec's ``all_cores``): Paddle
    sets it to 1 at import (``paddle/base/__init__.py``), and MXNet uses half
    the logical processors on x86, assuming hyper-threads
    (``src/engine/openmp.cc``, ``OpenMP::OpenMP``): one thread on a 2-core
    machine.  Both read the variable only at import, so the registry calls
    this before importing such a backend; a value the user set is kept.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    os.environ.setdefault("OMP_NUM_THREADS", str(cores))
