"""Keep the buffers an iteration frees for the next one, instead of handing them back to the OS (glibc's malloc).

Left to its defaults, glibc serves every allocation above its mmap threshold
(128 KiB, raised as large blocks are freed, up to 32 MiB) with fresh pages
from the kernel, gives them back when the block is freed, and trims the top of
its heap whenever more than 128 KiB there is free.  A run allocates and frees
the same feature maps every iteration, tens of MiB each at 300x450: each one
comes back as new pages, which the kernel faults in and zeroes 4 KiB at a
time.  A fresh ``multistyle run`` at 300x450 took 0.9 to 4 million page faults
in six epochs (torch, MXNet, JAX, TensorFlow; their CPU allocators all end in
``malloc``), and 0.16 to 0.49 million with the buffers kept.

:func:`keep_freed_buffers` raises both thresholds to 1 GiB, so that freed
blocks stay in the heap and the next iteration reuses them.  Measured in fresh
processes (``benchmarks/studies/heap.py``, docs/benchmarks/2026-12-02.md): the
step at 300x450 is 1.07 (MXNet) to 1.43 (TensorFlow) times faster, Paddle's at
150x225 1.12 times; torch's at 150x225 is unchanged.  The price is peak
resident memory, since freed blocks are kept rather than returned (TensorFlow
+36 % at 300x450); the backends' memory models are fitted with it.

glibc's own settings win: where ``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_`` or a ``glibc.malloc`` tunable (``GLIBC_TUNABLES``)
is set, nothing is changed, so ``GLIBC_TUNABLES=glibc.malloc.perturb=0`` (a
setting at its default value) keeps glibc's behaviour whole.  On a C library
other than glibc (macOS, Windows, musl) nothing is done.  Nothing here imports
a framework.
"""

from __future__ import annotations

import ctypes
import os

#: ``mallopt`` parameters, from glibc's ``<malloc.h>``.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

#: Both thresholds: blocks below this come from the heap, and the heap keeps this much free at its top.
KEEP_BYTES = 1 << 30

#: glibc's own settings, which take precedence over this module's.
GLIBC_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")

_applied = None


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (ValueError, OSError, AttributeError):  # not a GNU system: no such name, or no confstr at all
        return False


def user_settings() -> bool:
    """Whether glibc's malloc is configured by the environment (which then wins)."""
    return (any(os.environ.get(name) for name in GLIBC_SETTINGS)
            or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""))


def keep_freed_buffers() -> bool:
    """Raise glibc's mmap and trim thresholds (once per process); whether they are raised.

    False, and nothing changed, on another C library or where the environment configures glibc's malloc.
    """
    global _applied
    if _applied is None:
        _applied = False
        if _glibc() and not user_settings():
            mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
            mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
            _applied = mallopt(M_MMAP_THRESHOLD, KEEP_BYTES) == 1 and mallopt(M_TRIM_THRESHOLD, KEEP_BYTES) == 1
    return _applied
