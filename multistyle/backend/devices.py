"""Canonical device strings (``auto``, ``cpu``, ``gpu``, ``gpu:N``) and the threads a framework gets.

Nothing here imports a framework: each backend reports how many GPUs it sees
(:meth:`~multistyle.backend.Backend.gpu_count`) and maps ``gpu:N`` to its own
device object (:meth:`~multistyle.backend.Backend.place`).
"""

from __future__ import annotations

import os
import re
from typing import Dict, Optional, Sequence, Tuple

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


def _first_processor(cpuinfo: str) -> Dict[str, str]:
    """The fields of the first processor in ``/proc/cpuinfo``'s text."""
    fields: Dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def mkl_avx2_on_amd(cpuinfo: Optional[str] = None) -> Optional[str]:
    """Set ``MKL_DEBUG_CPU_TYPE=5`` before a framework's import on an AMD processor with AVX2, unless set.

    Paddle's CPU kernels (a convolution is im2col and a matrix product, and ``matmul``) call the MKL it ships
    (``paddle/libs/libmklml_intel.so``), which on a processor not made by Intel runs its generic code, not its
    AVX2 code: measured on a 2-core AMD EPYC (Zen 4, Paddle 3.3.1), a 64x576 by 576x13824 product took 37 ms
    against 11 ms with the variable (numpy's OpenBLAS: 10 ms) and a VGG-19 step at 96x144 1.74 s against
    0.26 s (the same loss to 2e-5).  That MKL reads the variable once, when it starts; later MKLs ignore it
    (they choose AVX2 on AMD themselves).  Returns the value the variable has, or None where it is unset.
    ``cpuinfo`` is ``/proc/cpuinfo``'s text (read where not given; elsewhere nothing is set).
    """
    if "MKL_DEBUG_CPU_TYPE" not in os.environ:
        if cpuinfo is None:
            try:
                with open("/proc/cpuinfo") as handle:
                    cpuinfo = handle.read(1 << 16)
            except OSError:
                cpuinfo = ""
        first = _first_processor(cpuinfo)
        if first.get("vendor_id") == "AuthenticAMD" and "avx2" in first.get("flags", "").split():
            os.environ["MKL_DEBUG_CPU_TYPE"] = "5"
    return os.environ.get("MKL_DEBUG_CPU_TYPE")
