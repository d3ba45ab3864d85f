"""A run's process keeps the buffers an iteration frees for the next (glibc's malloc thresholds raised).

What is checked is the effect, counted by the kernel: a 64 MiB block freed and allocated again costs its
16,384 page faults once, not at every iteration.  Each check runs in a fresh process, since the thresholds
are the process's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap

import pytest

from multistyle import heap

pytestmark = pytest.mark.skipif(not heap._glibc(), reason="glibc's malloc only")

BLOCK = 64 * 2 ** 20
PAGES = BLOCK // os.sysconf("SC_PAGE_SIZE")
ROUNDS = 4

#: Prints whether the setup applied, then the page faults of ROUNDS blocks allocated, written and freed.
PROBE = textwrap.dedent(f"""
    import ctypes, resource, sys
    {{setup}}
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)

    def once():
        block = libc.malloc({BLOCK})
        ctypes.memset(block, 1, {BLOCK})
        libc.free(block)

    once()  # the first allocation faults its pages in, whatever the thresholds
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range({ROUNDS}):
        once()
    print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _probe(setup: str, **environment: str):
    env = {key: value for key, value in os.environ.items()
           if key not in heap.GLIBC_SETTINGS and key != "GLIBC_TUNABLES"}
    env.update(environment)
    # Run outside the checkout: ``python -c`` puts its working directory first on the path, and the
    # checkout's multistyle/ is not the installed package (the backends are installed into it).
    done = subprocess.run([sys.executable, "-c", PROBE.format(setup=setup)], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tempfile.gettempdir())
    assert done.returncode == 0, done.stderr
    applied, faults = done.stdout.split()[-2:]
    return applied == "True", int(faults)


KEEP = "from multistyle.heap import keep_freed_buffers; applied = keep_freed_buffers()"


def test_a_freed_block_is_reused_without_faulting_its_pages_in_again():
    applied, faults = _probe(KEEP)
    assert applied
    assert faults < PAGES // 4, f"{faults} page faults for {ROUNDS} reuses of a {BLOCK >> 20} MiB block"


def test_without_it_every_allocation_faults_its_pages_in():
    # The yardstick of the test above: glibc's defaults (mmap for a block this large, returned when freed).
    applied, faults = _probe("applied = False")
    assert faults > ROUNDS * PAGES * 0.9


@pytest.mark.parametrize("environment", [{"MALLOC_TRIM_THRESHOLD_": "131072"},
                                         {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=131072"}])
def test_glibcs_own_settings_win(environment):
    applied, faults = _probe(KEEP, **environment)
    assert not applied
    assert faults > ROUNDS * PAGES * 0.9


def test_a_backend_made_by_get_backend_keeps_freed_blocks(backend_name):
    _, faults = _probe(f"from multistyle.backend import get_backend; get_backend({backend_name!r}, 'cpu'); "
                       "applied = None")
    assert faults < PAGES // 4, f"{faults} page faults for {ROUNDS} reuses of a {BLOCK >> 20} MiB block"
