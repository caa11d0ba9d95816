"""A Ctrl-C that lands in an at-fork hook (a DataLoader worker starting) is swallowed by Python
("Exception ignored"); training must still stop. A real fork, a real SIGINT, a real swallowed
KeyboardInterrupt, in a child process whose SIGINT is the default one."""

from __future__ import annotations

import subprocess
import sys

import pytest
from testkit.procs import interruptible

CODE = """
import os, signal, time
from catdog.train.plumbing import interrupt

def hit():  # as logging's after-fork hook would be when the signal arrives
    os.kill(os.getpid(), signal.{sig})
    time.sleep(0.2)

def fork_once():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)

os.register_at_fork(after_in_parent=hit)
if {remember}:
    with interrupt.remembered_ctrl_c():
        fork_once()
        try:
            interrupt.check()
            print("lost")
        except KeyboardInterrupt:
            print("remembered")
else:
    fork_once()
    print("lost")
"""


@pytest.mark.parametrize("sig, remember, want", [("SIGINT", True, "remembered"), ("SIGINT", False, "lost"),
                                                 ("SIGTERM", True, "remembered")])  # SIGTERM unhandled kills
def test_a_ctrl_c_swallowed_in_an_at_fork_hook_is_remembered(sig, remember, want):
    proc = interruptible([sys.executable, "-c", CODE.format(remember=remember, sig=sig)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    swallowed = "Terminated" if sig == "SIGTERM" else "KeyboardInterrupt"
    assert "Exception ignored" in err and swallowed in err  # Python swallowed it, every time
    assert out.strip() == want
