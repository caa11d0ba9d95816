"""catdog-bench serve: what --serve costs, measured in one run on this machine. POST /api/predict
throughput and p50/p90/p99 at 1, 8 and 32 concurrent clients against the in-process runtime on
the same photos; MJPEG with 0, 1 and 10 viewers against the inference FPS they may cost; RSS of
the server over a soak. The server is a real `catdog-runtime --serve 127.0.0.1:0` process; the
load generator is bounded in requests and time and targets loopback only."""

from __future__ import annotations

import http.client
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
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
        threading.Thread(target=lambda: [None for _ in iter(self.p.stderr.readline, "")], daemon=True).start()

    def get(self, path: str) -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", path)
        data = conn.getresponse().read()
        conn.close()
        return data

    def gauge(self, name: str) -> float:
        text = self.get("/metrics").decode()
        return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")))

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


# -- the fault mix's clients: raw sockets on loopback, each bounded in bytes and time ------------------

HEAD = "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n"


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    return HEAD.format(method=method, path=path, headers="".join(f"{k}: {v}\r\n" for k, v in headers.items())).encode()


def aborted_upload(port: int, declared: int = 100_000, sent: int = 5_000) -> None:
    """A client that promises `declared` bytes of a photo, sends `sent` of them, then hangs up."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(_head("POST", "/api/predict", {"Content-Type": "image/jpeg", "Content-Length": str(declared)})
                  + b"\xff" * sent)


def idle_viewer(port: int) -> socket.socket:
    """A viewer that asks for /stream.mjpg and never reads a byte (a small receive buffer, so the
    server's sends back up as they would across a slow or dead network)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    s.sendall(_head("GET", "/stream.mjpg", {}))
    return s


def half_open(port: int, partial: bytes = b"") -> socket.socket:
    """A connection that sends nothing, or the start of a request (`partial`), then waits."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if partial:
        s.sendall(partial)
    return s


def closed_by_server(sock: socket.socket, within_s: float) -> bool:
    """True when the server closes `sock` (EOF or reset) within `within_s`; what it sends first is
    read and dropped (at most 64 MB)."""
    deadline, got = time.monotonic() + within_s, 0
    try:
        while got < 64 << 20:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            sock.settimeout(left)
            data = sock.recv(1 << 16)
            if not data:
                return True
            got += len(data)
    except (ConnectionResetError, BrokenPipeError):
        return True
    except OSError:  # socket.timeout
        return False
    return False


def chunked_post(port: int, body: bytes, content_type: str, chunk: int = 1 << 16, timeout: float = 60.0
                 ) -> tuple[int, bytes]:
    """POST /api/predict with Transfer-Encoding: chunked (no Content-Length): (status, body). It
    stops sending as soon as the server answers (a 413 comes before the end of the body)."""
    import select

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(_head("POST", "/api/predict", {"Content-Type": content_type, "Transfer-Encoding": "chunked"}))
            for i in range(0, len(body), chunk):
                if select.select([s], [], [], 0)[0]:  # an early answer: stop sending, read it
                    break
                part = body[i:i + chunk]
                s.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
            else:
                s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = http.client.HTTPResponse(s)
        r.begin()
        return r.status, r.read()
