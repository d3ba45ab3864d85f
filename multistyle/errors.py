"""Exceptions that carry a user-facing, one-line message.

Anything raised as a :class:`MultistyleError` is a mistake the user can fix
(a bad path, a bad option, a missing framework); the CLI prints its message
on one line and exits non-zero, without a traceback.  Every other exception
is a bug and keeps its traceback.
"""

from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message ("" when it has none): one-line errors quote only that."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


class MultistyleError(Exception):
    """A problem with the user's input or environment, described in one line."""


class BackendUnavailable(MultistyleError):
    """The framework behind a backend is not installed, or cannot be imported."""


class WeightsError(MultistyleError):
    """VGG-19 weights could not be found, read or validated."""


class BackendBug(RuntimeError):
    """Importing a backend module failed in the module's own code: a bug, not a user mistake.

    Deliberately not a :class:`MultistyleError`, so the CLI shows the
    traceback that a bug report needs.
    """
