"""spine.stderr: captures of fd 2 that overlap without nesting (a camera opening while an upload
decodes) each read their own lines, give fd 2 back to the terminal, and pass every line no capture
claimed on exactly once. Run in a child process: fd 2 must be a real pipe, not pytest's capture."""

from __future__ import annotations

import subprocess
import sys

CHILD = r"""
import os
from catdog.runtime.spine.stderr import captured
a = captured(lambda ln: ln.startswith(b"A:"))
b = captured(lambda ln: ln.startswith(b"B:"))
read_a = a.__enter__()
os.write(2, b"A: libjpeg\n")
read_b = b.__enter__()
os.write(2, b"B: gstreamer\nother thread\n")
assert read_a() == b"A: libjpeg\nB: gstreamer\nother thread\n", read_a()
assert read_b() == b"B: gstreamer\nother thread\n", read_b()
a.__exit__(None, None, None)  # the first one in leaves first: not nested
os.write(2, b"B: late\n")
b.__exit__(None, None, None)
os.write(2, b"after\n")
"""


def test_overlapping_captures_give_fd2_back_and_pass_unclaimed_lines_on_once():
    r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr == b"other thread\nafter\n"
