"""Child processes that a test interrupts with Ctrl-C (SIGINT).

A shell that starts a job in the background (`pytest &`, `nohup pytest &`, some CI runners) gives
it SIGINT *ignored*, and children inherit that: the CLI under test would never see the interrupt
and the test would hang or fail. Every Ctrl-C test starts its child through `interruptible`."""

from __future__ import annotations

import signal
import subprocess
from typing import Any, Sequence


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # then Python installs its KeyboardInterrupt handler


def interruptible(cmd: Sequence[Any], **kwargs: Any) -> subprocess.Popen:
    """subprocess.Popen(cmd, **kwargs) whose child takes SIGINT as a real Ctrl-C, however pytest was started."""
    return subprocess.Popen([str(c) for c in cmd], preexec_fn=_default_sigint, **kwargs)
