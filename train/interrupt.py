"""Ctrl-C that cannot be lost during training.

Python's own SIGINT handler raises KeyboardInterrupt wherever the interpreter happens to be. When
that is an at-fork hook (logging's, run each time a DataLoader worker is forked, i.e. every epoch),
the exception is printed as "Exception ignored" and swallowed, and training goes on as if nothing was
pressed (seen in CI: a run finished all its epochs after a Ctrl-C). This handler also remembers the
signal; the batch loops ask `check()` and raise it again where it cannot be swallowed."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

_pending = False


def _handler(signum: int, frame: Any) -> None:
    global _pending
    _pending = True
    raise KeyboardInterrupt


def check() -> None:
    """Raise the KeyboardInterrupt of a Ctrl-C that arrived where it could not be raised."""
    if _pending:
        raise KeyboardInterrupt


@contextlib.contextmanager
def remembered_ctrl_c() -> Iterator[None]:
    """Within: SIGINT is remembered as well as raised. A SIGINT that is ignored (a job started in the
    background) stays ignored; off the main thread signals cannot be handled, so nothing changes."""
    global _pending
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    _pending = False
    previous = signal.signal(signal.SIGINT, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _pending = False
