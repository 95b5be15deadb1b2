"""Ctrl-C that CPython swallowed, made to count.

Python raises KeyboardInterrupt wherever the main thread happens to be when the signal
arrives. If that is inside a weakref callback or a ``__del__`` (CPython's import machinery
runs such callbacks while modules load), the exception cannot propagate: the interpreter
prints "Exception ignored in ... KeyboardInterrupt" and carries on, so the command neither
stops nor says how to resume (seen about once in 200 Ctrl-Cs sent during start-up).

The command line installs :func:`install`, which records such a KeyboardInterrupt quietly;
long-running loops call :func:`raise_if_swallowed` at safe points to honour it there.
:func:`restore_sigint` is for the opposite problem: a Ctrl-C that never arrives.
"""

from __future__ import annotations

import signal
import sys

_swallowed = False
_previous_hook = None


def _hook(unraisable) -> None:
    global _swallowed
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        _swallowed = True
        return
    (_previous_hook or sys.__unraisablehook__)(unraisable)


def install() -> None:
    """Route swallowed KeyboardInterrupts to :func:`raise_if_swallowed` (idempotent)."""
    global _previous_hook
    if sys.unraisablehook is not _hook:
        _previous_hook = sys.unraisablehook
        sys.unraisablehook = _hook


def restore_sigint() -> None:
    """Undo an inherited ``SIG_IGN`` for SIGINT, for programs that send Ctrl-C to children.

    A background job of a non-interactive shell (``cmd &``, as some CI runners start jobs)
    starts with SIGINT ignored, and the ignore is inherited through exec: every Ctrl-C sent to
    a child would silently vanish. A process with a Python-level handler gives its children
    the default disposition again.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def raise_if_swallowed() -> None:
    """Raise the KeyboardInterrupt that a callback swallowed since the last call, if any."""
    global _swallowed
    if _swallowed:
        _swallowed = False
        raise KeyboardInterrupt
