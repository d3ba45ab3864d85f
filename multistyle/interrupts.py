"""Ctrl-C that a framework cannot lose.

Python turns SIGINT into ``KeyboardInterrupt`` at whatever Python code the main thread runs next.  When
that code is a garbage-collector callback or a weak-reference callback (JAX registers both), Python prints
"Exception ignored in ..." and goes on: the interrupt is lost and the run carries on to its last epoch.
Measured with jax 0.10.2 on the CPU: 6 of 100 interrupts at random times in a 24x32 run were lost so,
in ``_xla_gc_callback`` or a ``WeakKeyDictionary``'s callback (CI lost a Ctrl-C test to it).

:func:`watched` notes every SIGINT that arrives while a run is inside it, before the handler that was
there (Python's, which raises ``KeyboardInterrupt``) runs; :func:`check`, called by the loop at every
epoch, raises ``KeyboardInterrupt`` for a noted one that never surfaced, and so does leaving the block.
Only the main thread installs a handler (Python allows no other), and only over Python's own
(``signal.default_int_handler``): Ctrl-C ignored, the default action, or a program's own handler (which
may mean "do not stop") are left as they are.

Inside :func:`deferred` (the epochs of a run, the steps of a training), a first SIGINT is only noted: the
``KeyboardInterrupt`` is raised by the next :func:`check`, between two epochs, and never inside the
framework's code.  An exception raised into a framework's callback unwinds through its C++ code; once in a
CI run, a JAX process (jax 0.4.30) interrupted so aborted with glibc's "corrupted size vs. prev_size" instead
of stopping.  A second SIGINT before that check raises at once, as Python's own handler does, for an epoch
that takes long.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator, List

_noted: List[bool] = [False]  # a SIGINT arrived inside a watched block and has not been raised by check()
_deferring: List[bool] = [False]  # inside deferred(): a first SIGINT waits for check()


def check() -> None:
    """Raise ``KeyboardInterrupt`` if a SIGINT arrived inside :func:`watched` and has not been raised yet."""
    if _noted[0]:
        _noted[0] = False
        raise KeyboardInterrupt


@contextmanager
def watched() -> Iterator[None]:
    """A block in which no Ctrl-C is lost: see the module's docstring.  Leaving it forgets what was noted
    (whatever ends the block by an exception, the interrupt itself most likely, ends it once)."""
    previous: Any = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is not signal.default_int_handler:
        yield
        return

    def note(signum: int, frame: Any) -> Any:
        if _deferring[0] and not _noted[0]:
            _noted[0] = True  # raised by the next check(), between two epochs
            return None
        _noted[0] = True
        return previous(signum, frame)

    signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        lost, _noted[0] = _noted[0], False
    if lost:
        raise KeyboardInterrupt


@contextmanager
def deferred() -> Iterator[None]:
    """A block, inside :func:`watched`, in which a first Ctrl-C is raised by :func:`check` alone (see the
    module's docstring); one noted after the last check is raised when the :func:`watched` block ends."""
    before, _deferring[0] = _deferring[0], True
    try:
        yield
    finally:
        _deferring[0] = before
