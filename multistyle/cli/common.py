"""What the commands share: the one-line Ctrl-C message, backend lists, the command line as typed."""

from __future__ import annotations

import shlex
from typing import List, Sequence

from ..backend import backend_names
from ..errors import MultistyleError


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what was kept: ``main`` prints it as one line."""


def backend_list(text: str, option: str = "--backends") -> List[str]:
    """The backends a comma-separated option names, each known, in order, once."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    known = backend_names()
    for name in names:
        if name not in known:
            raise MultistyleError(f"{option}: unknown backend {name!r}; choose from {', '.join(known)}")
    if not names:
        raise MultistyleError(f"{option}: expected a comma-separated list of backends")
    return list(dict.fromkeys(names))


def command_line(argv: Sequence[str]) -> str:
    """The command as typed, quoted for a shell."""
    return "multistyle " + " ".join(shlex.quote(a) for a in argv)
