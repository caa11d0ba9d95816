"""A real `catdog-runtime ... --serve 127.0.0.1:0` process (loopback only, a free port the run
names on stderr) and small stdlib HTTP helpers for the tests of runtime/serve/."""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from catdog.benchmarks.serve.faults import (  # noqa: F401 - re-exported: the fault mix's clients, shared with the soak
    aborted_upload,
    chunked_post,
    closed_by_server,
    half_open,
    idle_viewer,
)


class ServerProc:
    def __init__(self, *args: Any, env: dict | None = None, timeout: float = 60.0):
        argv = [sys.executable, "-m", "catdog.runtime", *map(str, args)]
        if "--provider" not in argv:
            argv += ["--provider", "cpu"]
        if "--serve" not in argv:
            argv += ["--serve", "127.0.0.1:0"]
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.err: list[str] = []
        self.port = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.p.stderr.readline()
            if not line:
                break
            self.err.append(line)
            m = re.search(r"serving on http://127\.0\.0\.1:(\d+)/", line)
            if m:
                self.port = int(m.group(1))
                break
        assert self.port, "".join(self.err)
        self._drain = threading.Thread(target=lambda: self.err.extend(iter(self.p.stderr.readline, "")), daemon=True)
        self._drain.start()

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, Any]:
        status, _, data = self.request(method, path, body, headers)
        return status, json.loads(data)

    def metric(self, sample: str) -> float:
        """One sample of /metrics by its full name and labels, e.g. 'catdog_errors_total{kind="timeout"}'
        (0.0 when the server has not made it yet)."""
        body = self.request("GET", "/metrics")[2].decode()
        return next((float(line.split()[-1]) for line in body.splitlines() if line.startswith(sample + " ")), 0.0)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> tuple[int, str, str]:
        if self.p.poll() is None:
            self.p.send_signal(sig)
        out = self.p.stdout.read()
        code = self.p.wait(timeout)
        self._drain.join(5)
        return code, out, "".join(self.err)

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(10)


def multipart(field: str, name: str, data: bytes, kind: str = "image/jpeg") -> tuple[bytes, dict[str, str]]:
    boundary = "catdogtestboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
            f"Content-Type: {kind}\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def mjpeg_frames(port: int, count: int, timeout: float = 30.0, headers: dict | None = None) -> list[bytes]:
    """The first `count` JPEGs of /stream.mjpg, read off a real socket."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("GET", "/stream.mjpg", headers=headers or {})
    r = conn.getresponse()
    assert r.status == 200, (r.status, r.read())
    assert r.getheader("Content-Type").startswith("multipart/x-mixed-replace")
    frames: list[bytes] = []
    while len(frames) < count:
        line = r.fp.readline()
        if line.lower().startswith(b"content-length:"):
            size = int(line.split(b":")[1])
            r.fp.readline()  # the blank line before the JPEG
            frames.append(r.fp.read(size))
    conn.close()
    return frames


def repo_photo(data_dir: Path, name: str) -> bytes:
    return (data_dir / name).read_bytes()
