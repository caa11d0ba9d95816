"""Ctrl-C that cannot be lost during training.

Python's own SIGINT handler raises KeyboardInterrupt wherever the interpreter happens to be. When
that is an at-fork hook (logging's, run each time a DataLoader worker is forked, i.e. every epoch),
the exception is printed as "Exception ignored" and swallowed, and training goes on as if nothing was
pressed (seen in CI: a run finished all its epochs after a Ctrl-C). This handler also remembers the
signal; the batch loops ask `check()` and raise it again where it cannot be swallowed. SIGTERM gets
the same treatment (systemd, docker stop and Kubernetes send it)."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

from catdog.runtime.spine.boundary import Terminated, is_stop_handler

_pending: KeyboardInterrupt | None = None


def _handler(signum: int, frame: Any) -> None:
    global _pending
    # SIGTERM is the boundary's Terminated (a KeyboardInterrupt): the same clean stop, exit 143
    _pending = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
    raise _pending


def check() -> None:
    """Raise the KeyboardInterrupt of a Ctrl-C (or SIGTERM) that arrived where it could not be raised."""
    if _pending is not None:
        raise _pending


@contextlib.contextmanager
def remembered_ctrl_c() -> Iterator[None]:
    """Within: SIGINT and SIGTERM are remembered as well as raised. A signal that is ignored (SIGINT
    of a job started in the background) stays ignored; off the main thread signals cannot be
    handled, so nothing changes."""
    global _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    ours = [s for s, h in handlers.items()
            if is_stop_handler(h) or (s == signal.SIGTERM and h not in (signal.SIG_IGN, None))]
    _pending = None
    previous = {s: signal.signal(s, _handler) for s in ours}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _pending = None
