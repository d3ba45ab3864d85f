"""``multistyle serve``: a live page on which a class watches every framework optimise the same picture.

:mod:`.server` is the HTTP server (standard library only), :mod:`.live` the run and its worker processes,
:mod:`.page` the page, and ``app.js`` its script.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

from ..backend import backend_names, describe_backends
from ..measure import call_isolated

__all__ = ["backend_table"]


def backend_table(names: Sequence[str] = ()) -> Dict[str, Dict[str, Any]]:
    """``{name: {"usable", "version", "reason"}}`` for ``names`` (default: every registered backend), found in a
    child process, so that the server imports no framework itself."""
    import signal

    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if hasattr(signal, "pthread_sigmask") \
        else None  # the child inherits the blocked Ctrl-C; here it is delivered once the child is done
    try:
        rows = call_isolated(describe_backends, list(names or backend_names()))
    finally:
        if blocked is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return {row["name"]: {"usable": row["usable"], "version": row["version"], "reason": row["reason"]}
            for row in rows}
