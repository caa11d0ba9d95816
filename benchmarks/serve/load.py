"""catdog-bench serve: what --serve costs, measured in one run on this machine. POST /api/predict
throughput and p50/p90/p99 at 1, 8 and 32 concurrent clients against the in-process runtime on
the same photos; MJPEG with 0, 1 and 10 viewers against the inference FPS they may cost; RSS of
the server over a soak; then the fault mix (faults.py). The server is a real
`catdog-runtime --serve 127.0.0.1:0` process; every load is bounded in requests and time and
targets loopback only."""

from __future__ import annotations

import http.client
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

Log = Callable[[str], None]


@dataclass(frozen=True)
class ServeBenchConfig:
    photos: Path  # a folder of real photos
    out_dir: Path
    model: Path | None = None
    clients: tuple[int, ...] = (1, 8, 32)
    requests: int = 96  # per concurrency level
    viewers: tuple[int, ...] = (0, 1, 10)
    window_s: float = 8.0  # FPS measurement window per viewer count and round
    rounds: int = 2
    soak_s: float = 60.0
    soak_clients: int = 8
    video_frames: int = 3000  # enough for one measurement at 150 FPS: each starts a fresh run
    video_size: tuple[int, int] = (640, 480)  # a camera's VGA
    faults: Any = None  # faults.FaultMix: the fault soak (None: its defaults; FaultMix(seconds=0): none)
    command: str = ""


class Server:
    """A real catdog-runtime --serve process on a free loopback port."""

    def __init__(self, *args: Any):
        argv = [sys.executable, "-m", "catdog.runtime", *map(str, args), "--provider", "cpu", "--serve", "127.0.0.1:0"]
        self.p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.port, lines = 0, []
        for line in iter(self.p.stderr.readline, ""):
            lines.append(line)
            m = re.search(r"serving on http://127\.0\.0\.1:(\d+)/", line)
            if m:
                self.port = int(m.group(1))
                break
        if not self.port:
            raise RuntimeError("the server did not start: " + "".join(lines))
        self.stderr: deque[str] = deque(lines, maxlen=2000)  # what it printed (the last 2000 lines)
        self.tracebacks = 0
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in iter(self.p.stderr.readline, ""):
            self.stderr.append(line)
            self.tracebacks += "Traceback" in line or "Exception in ASGI" in line

    def get(self, path: str) -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", path)
        data = conn.getresponse().read()
        conn.close()
        return data

    def gauge(self, name: str) -> float:
        text = self.get("/metrics").decode()
        return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")))

    def errors(self) -> dict[str, float]:
        """catdog_errors_total by kind."""
        text = self.get("/metrics").decode()
        found = (re.match(r'catdog_errors_total\{kind="([^"]+)"\} (\S+)', line) for line in text.splitlines())
        return {m.group(1): float(m.group(2)) for m in found if m}

    def rss_mb(self) -> float:
        import psutil

        return psutil.Process(self.p.pid).memory_info().rss / 1e6

    def stop(self) -> None:
        self.p.terminate()
        try:
            self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def post_load(port: int, bodies: list[bytes], clients: int, requests: int, deadline_s: float = 120.0
              ) -> dict[str, Any]:
    """`requests` POSTs from `clients` threads, each on its own keep-alive connection."""
    lat: list[float] = []
    errors = [0]
    todo = iter(range(requests))
    lock = threading.Lock()
    stop_at = time.monotonic() + deadline_s

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < stop_at:
            with lock:
                i = next(todo, None)
            if i is None:
                break
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/api/predict", body=bodies[i % len(bodies)],
                             headers={"Content-Type": "image/jpeg"})
                r = conn.getresponse()
                r.read()
                ok = r.status == 200
            except OSError:
                ok, conn = False, http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            with lock:
                (lat.append((time.perf_counter() - t0) * 1000) if ok else errors.__setitem__(0, errors[0] + 1))
        conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"clients": clients, "requests": len(lat), "errors": errors[0], "images_per_s": len(lat) / wall,
            "p50_ms": _pct(lat, 0.5), "p90_ms": _pct(lat, 0.9), "p99_ms": _pct(lat, 0.99)}


def in_process(paths: list[Path], model: Path | None) -> dict[str, Any]:
    """The runtime's own numbers on the same photos: a folder run's img/s, and one photo at a time."""
    from catdog.runtime.engine.classifier import Classifier
    from catdog.runtime.engine.shipped import resolve_model

    path = resolve_model(model, "cpu")
    clf = Classifier.from_file(path, provider="cpu", log=None, spinning=False)
    list(clf.iter_predict(paths[:8]))  # warm-up
    t0 = time.perf_counter()
    n = sum(1 for _ in clf.iter_predict(paths))
    folder_ips = n / (time.perf_counter() - t0)
    one = Classifier.from_file(path, provider="cpu", log=None, batch_size=1)
    one.predict(paths[0])
    lat = []
    for p in paths[:64]:
        t = time.perf_counter()
        one.predict(p)
        lat.append((time.perf_counter() - t) * 1000)
    return {"model": path.name, "folder_images_per_s": folder_ips, "b1_p50_ms": statistics.median(lat),
            "b1_p99_ms": _pct(lat, 0.99)}


def viewer(port: int, stop: threading.Event, counts: list[int]) -> None:
    """One MJPEG viewer that costs this machine as little as a client can: big raw reads, counting
    part boundaries (the viewers share the 2 cores with the server here; on a real deployment they
    are other machines, so their own parsing must not be charged to the server)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    mark, tail = b"--frame\r\n", b""
    try:
        while not stop.is_set():
            chunk = sock.recv(1 << 18)
            if not chunk:
                break
            data = tail + chunk
            counts[0] += data.count(mark)
            tail = data[-(len(mark) - 1):]
    finally:
        sock.close()
