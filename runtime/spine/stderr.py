"""The one capture of file descriptor 2. Native libraries say why only there: libjpeg that a JPEG
is damaged, OpenCV and GStreamer why a pipeline did not play. Captures may overlap (a camera
reopening while the API decodes an upload): every capture in progress shares one temporary file,
fd 2 is pointed at it by the first and given back by the last, so no capture can restore fd 2 to
another's file. Each capture reads its own window of that file and claims the lines that are its
own; the last one out passes every unclaimed line (other threads' stderr) on to the real fd 2."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections import Counter
from typing import Callable, Iterator

_lock = threading.Lock()
_users = 0
_saved = -1  # the real fd 2 while any capture is in progress
_file = -1  # the shared temporary file (unlinked)
_claimed: Counter[bytes] = Counter()


@contextlib.contextmanager
def captured(mine: Callable[[bytes], bool]) -> Iterator[Callable[[], bytes]]:
    """Within: fd 2 writes go to the shared file. Yields read(): what reached fd 2 since this capture
    began (other captures' lines included). On exit, the window's lines for which `mine` is true
    are kept from the terminal. Raises OSError where fd 2 cannot be captured (no fd 2)."""
    global _users, _saved, _file
    with _lock:
        if _users == 0:
            sys.stderr.flush()
            saved = os.dup(2)
            fd, name = tempfile.mkstemp(prefix="catdog-stderr-")
            os.unlink(name)
            os.dup2(fd, 2)
            _saved, _file = saved, fd
        _users += 1
        start = os.fstat(_file).st_size
    fd = _file

    def read() -> bytes:
        return os.pread(fd, max(0, os.fstat(fd).st_size - start), start)

    try:
        yield read
    finally:
        with _lock:
            with contextlib.suppress(ValueError, OSError):
                sys.stderr.flush()
            _claimed.update(ln for ln in read().splitlines(keepends=True) if mine(ln))
            _users -= 1
            if _users == 0:
                os.dup2(_saved, 2)
                os.close(_saved)
                everything = os.pread(_file, os.fstat(_file).st_size, 0)
                os.close(_file)
                rest = []
                for ln in everything.splitlines(keepends=True):
                    if _claimed[ln] > 0:
                        _claimed[ln] -= 1
                    else:
                        rest.append(ln)
                _claimed.clear()
                if rest:
                    with contextlib.suppress(OSError):
                        os.write(2, b"".join(rest))
