"""The fault mix of catdog-bench serve (issue 32): requests that time out, uploads cut short,
viewers that never read and half-open sockets at once against a real server, with /healthz
watched throughout and normal requests and a new viewer checked after; and the raw-socket clients
that make each fault (the tests of runtime/serve use them too). Loopback only; every loop is
bounded in count, bytes and time."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from catdog.benchmarks.serve.load import Log, Server, post_load


@dataclass(frozen=True)
class FaultMix:
    """The fault soak: `clients` POST in a loop for `seconds`; of each 10 of a client's requests,
    `timeouts` ask ?timeout= shorter than any batch takes (504: the batcher drops them) and
    `aborts` send half their body and hang up; beside them `idle_viewers` watch /stream.mjpg and
    never read, and `half_open` sockets send nothing or half a request head (each put back when
    the server closes it). Then `after` normal requests, one at a time."""

    seconds: float = 60.0
    clients: int = 8
    timeouts: int = 1  # of every 10 requests
    aborts: int = 1  # of every 10 requests
    idle_viewers: int = 8
    half_open: int = 200
    after: int = 100
    request_timeout: float = 2.0  # --request-timeout: a normal request never comes near it
    ask_timeout: float = 0.001  # ?timeout= of the requests meant to time out
    idle_timeout: float = 5.0  # --idle-timeout
    video_fps: float = 10.0  # the served camera (a video file, --realtime) the viewers watch


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


def _status(port: int, method: str, path: str, body: bytes | None = None, timeout: float = 30.0) -> int:
    """One request's status; 0 when the connection failed (refused, reset, timed out)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "image/jpeg"} if body is not None else {})
        r = conn.getresponse()
        r.read()
        return r.status
    except OSError:
        return 0
    finally:
        conn.close()


def _post(port: int, body: bytes, path: str = "/api/predict") -> int:
    return _status(port, "POST", path, body)


def _health(port: int) -> int:
    return _status(port, "GET", "/healthz", timeout=10)


def _closed_now(sock: socket.socket) -> bool:
    """The server has closed `sock` (EOF or reset), seen without waiting; what it sent is dropped."""
    import select

    try:
        while select.select([sock], [], [], 0)[0]:
            if not sock.recv(1 << 16):
                return True
    except OSError:
        return True
    return False


def _frames_seen(port: int, want: int, within_s: float) -> int:
    """Frames a new viewer gets within `within_s` (at most `want`): retried while the cap is full."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(_head("GET", "/stream.mjpg", {}))
                data = b""
                while time.monotonic() < deadline and len(data) < 64 << 20:
                    chunk = s.recv(1 << 16)
                    if not chunk:
                        break
                    data += chunk
                    if b" 503 " in data[:32]:
                        break
                    if data.count(b"--frame\r\n") >= want:
                        return want
        except OSError:
            pass
        time.sleep(0.5)
    return 0


def fault_soak(server: Server, bodies: list[bytes], mix: FaultMix, log: Log) -> dict[str, Any]:
    """The fault mix against a running server (a live source, so that viewers have frames): counts
    of each request's outcome, /healthz every half second, the sockets the server closed, RSS
    before and after, tracebacks printed, then `mix.after` normal requests one at a time."""
    port, lock = server.port, threading.Lock()
    n = {"ok": 0, "timed_out": 0, "aborted": 0, "slow": 0, "unexpected": 0, "health_checks": 0,
         "health_not_200": 0, "half_open_closed": 0}
    unexpected: list[str] = []
    # Warm, before RSS is read: batches as large as the mix makes, the decoder's and the session's
    # pools, every route and error path once (what grows once is start-up, not a leak).
    post_load(port, bodies, 2 * mix.clients, 8 * mix.clients)
    for _ in range(mix.clients):
        _post(port, bodies[0], f"/api/predict?timeout={mix.ask_timeout:g}")
        aborted_upload(port, declared=len(bodies[0]), sent=len(bodies[0]) // 2)
    _frames_seen(port, 3, within_s=10)
    time.sleep(1.0)
    rss0, errors0 = server.rss_mb(), server.errors()
    stop = threading.Event()
    stop_at = time.monotonic() + mix.seconds

    def count(key: str, what: str = "") -> None:
        with lock:
            n[key] += 1
            if what and len(unexpected) < 20:
                unexpected.append(what)

    def client(c: int) -> None:
        k = c  # clients start at different places of the 10-request cycle
        while not stop.is_set() and time.monotonic() < stop_at:
            slot, body = k % 10, bodies[k % len(bodies)]
            k += 1
            if slot < mix.timeouts:
                status = _post(port, body, f"/api/predict?timeout={mix.ask_timeout:g}")
                count("timed_out") if status == 504 else count("unexpected", f"timeout request: {status}")
            elif slot < mix.timeouts + mix.aborts:
                try:
                    aborted_upload(port, declared=len(body), sent=len(body) // 2)
                    count("aborted")
                except OSError as e:
                    count("unexpected", f"aborted upload: {e}")
            else:
                status = _post(port, body)  # 504 past --request-timeout: the machine's load, said apart
                count("ok") if status == 200 else count("slow") if status == 504 else count(
                    "unexpected", f"normal request: {status}")

    def health() -> None:
        while not stop.is_set() and time.monotonic() < stop_at:
            status = _health(port)
            count("health_checks")
            if status != 200:
                count("health_not_200", f"/healthz: {status}")
            stop.wait(0.5)

    def keep(kind: str, make: Callable[[int], socket.socket], want: int, closed_key: str | None) -> None:
        """`want` sockets of a kind open throughout; each the server closes is counted and replaced
        (closed_key None: a viewer that never reads cannot see its close behind the frames it has
        not read, so each is replaced after 2 idle timeouts, and the server's metrics count the drops)."""
        socks: list[tuple[socket.socket, float]] = []
        try:
            while not stop.is_set() and time.monotonic() < stop_at:
                alive = []
                for s, born in socks:
                    old = closed_key is None and time.monotonic() - born > 2 * mix.idle_timeout + 1
                    if old or (closed_key is not None and _closed_now(s)):
                        s.close()
                        if closed_key is not None:
                            count(closed_key)
                    else:
                        alive.append((s, born))
                socks = alive
                while len(socks) < want and time.monotonic() < stop_at:
                    try:
                        socks.append((make(len(socks)), time.monotonic()))
                    except OSError as e:
                        count("unexpected", f"{kind}: {e}")
                        break
                stop.wait(0.25)
        finally:
            for s, _ in socks:
                s.close()

    partial = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    threads = [threading.Thread(target=client, args=(c,)) for c in range(mix.clients)]
    threads += [threading.Thread(target=health),
                threading.Thread(target=keep, args=("idle viewer", lambda i: idle_viewer(port), mix.idle_viewers,
                                                    None)),
                threading.Thread(target=keep, args=("half-open", lambda i: half_open(port, partial if i % 2 else b""),
                                                    mix.half_open, "half_open_closed"))]
    log(f"fault soak: {mix.seconds:g} s, {mix.clients} clients ({10 * mix.timeouts}% timing out, "
        f"{10 * mix.aborts}% aborted mid-body), {mix.idle_viewers} idle viewers, {mix.half_open} half-open sockets")
    for t in threads:
        t.start()
    rss_peak = rss0
    while time.monotonic() < stop_at:
        time.sleep(min(1.0, max(0.0, stop_at - time.monotonic())))
        rss_peak = max(rss_peak, server.rss_mb())
    for t in threads:
        t.join(60)
    stop.set()
    rss_end = server.rss_mb()
    after = [_post(port, bodies[i % len(bodies)]) for i in range(mix.after)]
    frames_after = _frames_seen(port, 3, within_s=2 * mix.idle_timeout + 10)
    total = n["ok"] + n["timed_out"] + n["aborted"] + n["slow"] + n["unexpected"]
    return {**n, "seconds": mix.seconds, "clients": mix.clients, "requests": total,
            "timed_out_share": n["timed_out"] / max(1, total), "aborted_share": n["aborted"] / max(1, total),
            "idle_viewers": mix.idle_viewers, "half_open": mix.half_open, "unexpected_examples": unexpected,
            "after_requests": len(after), "after_ok": after.count(200), "health_after": _health(port),
            "viewer_frames_after": frames_after,
            "rss_start_mb": rss0, "rss_peak_mb": rss_peak, "rss_end_mb": rss_end,
            "server_errors": {k: v - errors0.get(k, 0.0) for k, v in server.errors().items()},  # during the soak
            "tracebacks": server.tracebacks,
            "request_timeout": mix.request_timeout, "ask_timeout": mix.ask_timeout, "idle_timeout": mix.idle_timeout}
