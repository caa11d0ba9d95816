"""Helpers for the Ray tests (a uniquely named module, not conftest): the real CLI in a subprocess, a
real 2-CPU Ray head started once (`ray start --head --block`, stopped by its own pid), part files."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

CLI = [sys.executable, "-m", "catdog.runtime"]
# Ray's token authentication with a token of the test's own (never ~/.ray/auth_token): the head and
# every driver get it, as a user joining a protected cluster sets RAY_AUTH_MODE and the token.
RAY_ENV = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex}
# Files no decoder can read: each must become an error row naming it, never a failed job.
BROKEN = {"zero.jpg": "empty file", "truncated.jpg": "not a readable image", "text.jpg": "not a readable image"}
RAY_TIMEOUT = 300  # a Ray run here is ~10-20 s; a hang (the starved-pool bug) must fail, not block CI


def run_cli(*args: Any, timeout: float = RAY_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=RAY_ENV)


def json_rows(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def parts(out: Path) -> list[Path]:
    return sorted(out.glob("part-*.parquet"))


def read_rows(out: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(out).to_pylist() if parts(out) else []


def wait_for_parts(out: Path, more_than: int, proc: subprocess.Popen, timeout: float = RAY_TIMEOUT) -> int:
    """Poll until OUT holds more than `more_than` part files; fails if the job ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = len(parts(out))
        if n > more_than:
            return n
        assert proc.poll() is None, f"the job ended (rc {proc.returncode}) before writing a part file"
        time.sleep(0.02)
    raise AssertionError(f"no new part file in {out} within {timeout} s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayHead:
    """`ray start --head --block` with 2 CPUs in its own short temp folder (Ray's socket paths must
    stay under ~100 characters) and its own ports; stop() ends that process and what it started.
    `gpus` are declared, not real: enough for Ray to place a GPU actor, whose session then fails."""

    def __init__(self, cpus: int = 2, gpus: int = 0):
        self.tmp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
        self.log = self.tmp / "head.log"
        ray_bin = Path(sys.executable).with_name("ray")  # the venv's, whatever PATH says
        cmd = [str(ray_bin), "start", "--head", "--block", f"--num-cpus={cpus}", f"--num-gpus={gpus}",
               f"--port={_free_port()}", "--include-dashboard=false", f"--dashboard-port={_free_port()}",
               f"--dashboard-agent-listen-port={_free_port()}", f"--temp-dir={self.tmp}", "--disable-usage-stats"]
        # No drain on SIGTERM: `ray start --block` otherwise marks the node draining and waits up to 30 s
        # for it to go idle, which a head that ran a Ray Data job never does (its detached stats and
        # autoscaling actors stay), so every stop() took 30 s. Only this test head gets it.
        env = {**RAY_ENV, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.address = self._wait_address()

    def _wait_address(self, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            if "will now block forever" in text:
                m = re.search(r"--address='([^']+)'", text)
                assert m, text[-2000:]
                return m.group(1)
            if self.proc.poll() is not None:
                raise AssertionError(f"ray start failed:\n{text[-2000:]}")
            time.sleep(0.2)
        self.stop()
        raise AssertionError("ray start did not come up in time")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # --block: drains, then stops the processes it started
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def copies(src_photos: list[Path], dest: Path, n: int) -> list[Path]:
    """`n` distinct files cycling through real photos, named NNNN-<photo name>."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        src = src_photos[i % len(src_photos)]
        out.append(dest / f"{i:04d}-{src.name}")
        shutil.copyfile(src, out[-1])
    return out
