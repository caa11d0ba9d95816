"""--serve [HOST:]PORT: the server beside a run. uvicorn runs the app in a thread of its own (its
own event loop; the run keeps the main thread, so Ctrl-C and SIGTERM stop the run exactly as
without --serve, and the server is stopped after the outputs are closed). Safe by default: it
binds 127.0.0.1 unless a host is given, and any other address needs --token (or --token-file, or
CATDOG_TOKEN), or an explicit --no-auth, which is warned about; it answers only its own names
(Host:), and --allow-host adds more. The [serve] extra is checked before anything loads."""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from catdog.runtime.serve.options import ServeOptions
from catdog.runtime.spine.errors import InputError, OutputError
from catdog.runtime.spine.records import Failure, Prediction, Record
from catdog.runtime.spine.serialize import live_record, text_name

if TYPE_CHECKING:  # imported in start(): --serve's checks run before the model and these load
    import uvicorn

    from catdog.runtime.engine.classifier import Classifier
    from catdog.runtime.serve.batcher import Batcher
    from catdog.runtime.serve.hub import Hub
    from catdog.runtime.serve.metrics import Metrics

TOKEN_ENV = "CATDOG_TOKEN"
EXTRA = "pip install 'catdog-edge[serve]'"


def require_extra() -> None:
    """--serve's libraries import, or one line naming the extra: checked before the model loads."""
    try:
        try:
            import python_multipart  # noqa: F401  (python-multipart; `multipart` before 0.0.13)
        except ModuleNotFoundError:
            import multipart  # noqa: F401
        import prometheus_client  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        what = e.name or str(e)
        raise InputError(f"--serve needs the [serve] extra, and {what} does not import ({e}): {EXTRA}") from None


def parse_address(text: str) -> tuple[str, int]:
    """'8080' -> ('127.0.0.1', 8080); '0.0.0.0:8080', '[::1]:8080', 'host:8080' as given."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) < 65536:  # 0: any free port (the line says which)
        raise InputError(f"--serve {text!r}: expected [HOST:]PORT, e.g. --serve 8080 or --serve 0.0.0.0:8080")
    return host or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token_file(path: str | os.PathLike[str], log: Callable[[str], None]) -> str:
    """--token-file: one line, not empty; a file that others may read is warned about."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise InputError(f"--token-file {path}: not a file; write the token into a file, e.g. "
                             f"(umask 077; openssl rand -hex 16 > {path})")
        text = open(path, "rb").read(4097)
    except FileNotFoundError:
        raise InputError(f"--token-file {path}: no such file; make one, e.g. (umask 077; openssl rand -hex 16 > "
                         f"{path})") from None
    except PermissionError:
        raise InputError(f"--token-file {path}: permission denied; run as a user who can read it") from None
    try:
        token = text.decode("utf-8").strip()
    except UnicodeDecodeError:
        token = None
    if token is None or len(text) > 4096 or "\n" in token:
        raise InputError(f"--token-file {path}: expected one line of text (the token), e.g. from openssl rand -hex 16")
    if not token:
        raise InputError(f"--token-file {path} is empty; put the token in it, e.g. openssl rand -hex 16 > {path}")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log(f"warning: --token-file {path} may be read by other users (mode {stat.S_IMODE(mode):04o}); "
            f"chmod 600 {path}")
    return token


def auth_token(o: ServeOptions, host: str, log: Callable[[str], None]) -> str | None:
    if o.token and o.token_file:
        raise InputError("--token and --token-file both give the token; give one")
    token = o.token or (read_token_file(o.token_file, log) if o.token_file else None) or os.environ.get(TOKEN_ENV)
    token = token or None
    if token and o.no_auth:
        raise InputError("--token and --no-auth contradict each other; give one")
    if not token and not o.no_auth and not is_loopback(host):
        raise InputError(f"--serve {host}: a non-loopback address needs --token-file FILE (or --token, or "
                         f"{TOKEN_ENV}), or --no-auth to serve anyone who can reach it")
    if o.no_auth and not is_loopback(host):
        log(f"warning: --no-auth: anyone who can reach {host} can watch the stream and use the API")
    return token


def allowed_hosts(host: str, extra: tuple[str, ...]) -> frozenset[str]:
    """The Host: names the server answers besides IP literals of its own (app.host_allowed): localhost,
    the address given to --serve, this machine's names when it serves beyond loopback, --allow-host."""
    from catdog.runtime.serve.guards import host_name

    names = {"localhost", host.lower()}
    if not is_loopback(host):
        names |= {n.lower() for n in (socket.gethostname(), socket.getfqdn()) if n}
        names |= {n.split(".")[0] + ".local" for n in set(names) if n and not n[0].isdigit()}
    return frozenset(names | {host_name(h) for h in extra})


@dataclass
class Serving:
    """What a run hands its results to while the server runs."""

    hub: Hub
    batcher: Batcher
    metrics: Metrics
    server: uvicorn.Server
    thread: threading.Thread
    url: str
    model: str
    provider: str
    source: str | None

    def record(self, source: str, pred: Prediction, frame: int | None, fps: float, stage_ms: dict[str, float],
               topk: int = 5) -> dict[str, Any]:
        """The newest prediction as /api/latest and /api/events serve it (serialize.live_record)."""
        return live_record(source, pred, frame=frame, time=time.time(), fps=fps, stage_ms=stage_ms,
                           model=self.model, provider=self.provider, topk=topk)

    def on_frame(self, image: np.ndarray, pred: Prediction, name: str, index: int, fps: float,
                 stage_ms: dict[str, float]) -> None:
        """A live frame, already annotated: the newest frame and prediction for every viewer."""
        self.hub.source_alive = True
        self.metrics.frames.inc()
        self.metrics.predictions.labels("run").inc()
        self.metrics.observe(stage_ms)
        self.hub.publish(self.record(name, pred, index, fps, stage_ms), image)

    def sink(self) -> "ServeSink":
        return ServeSink(self)

    def stop(self) -> None:
        """The hub first: its closing ends every stream and event loop, so uvicorn's shutdown finds no
        viewer to wait for (or to cancel with a traceback)."""
        self.hub.source_alive = False
        self.hub.close()
        self.server.should_exit = True
        self.thread.join(timeout=5.0)
        self.batcher.close()


class ServeSink:
    """For image files (no frames): each result becomes the newest prediction."""

    def __init__(self, serving: Serving):
        self.serving = serving

    def add(self, source: str, result: Record) -> None:
        if isinstance(result, Failure):  # counted by its kind: an unreadable file, or the model's NaN
            self.serving.metrics.errors.labels(result.kind).inc()
            return
        self.serving.metrics.predictions.labels("run").inc()
        self.serving.hub.publish(self.serving.record(source, result, None, 0.0, {}))

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Plan:
    """What --serve was told, checked: made before the model loads, so a missing extra, a bad
    address or token file costs no model load (seconds on a Jetson, minutes with a TensorRT build)."""

    host: str
    port: int
    token: str | None


def plan(o: ServeOptions, log: Callable[[str], None]) -> Plan:
    require_extra()
    host, port = parse_address(o.address)
    return Plan(host, port, auth_token(o, host, log))


def start(o: ServeOptions, clf: Classifier, model: str, source: str | None, log: Callable[[str], None],
          checked: Plan | None = None) -> Serving:
    """Start serving next to the run (raises InputError/OutputError before the first frame)."""
    checked = checked or plan(o, log)
    import uvicorn

    from catdog.runtime.engine.classifier import Classifier
    from catdog.runtime.serve.app import ServeState, make_app
    from catdog.runtime.serve.batcher import Batcher
    from catdog.runtime.serve.hub import Hub
    from catdog.runtime.serve.metrics import Metrics
    from catdog.runtime.serve.protocol import Connections

    host, port, token = checked.host, checked.port, checked.token
    api = Classifier(clf.session, clf.metadata, batch_size=16, unsure_below=clf.unsure_below,
                     full_decode=clf.full_decode)  # its own buffers and timings, the run's session
    hub, batcher = Hub(o.max_viewers, o.stream_fps), Batcher(api, 16, o.batch_wait_ms / 1000.0)
    metrics = Metrics(hub, batcher)
    conns = Connections(o.idle_timeout, lambda kind: metrics.errors.labels(kind).inc())
    state = ServeState(hub, batcher, metrics, api, text_name(model), clf.session.provider,
                       text_name(source) if source else source, token, int(o.max_body_mb * 1_000_000),
                       o.request_timeout, o.idle_timeout, allowed_hosts(host, o.allow_host), conns)
    config = uvicorn.Config(make_app(state, o.cors), host=host, port=port, log_level="error", access_log=False,
                            lifespan="off", timeout_graceful_shutdown=2, http=conns.protocol(),
                            timeout_keep_alive=max(1, round(o.idle_timeout)))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="serve", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.01)
    if not server.started:
        batcher.close()
        hub.close()
        raise OutputError(f"--serve {o.address}: cannot listen on {host}:{port} (in use, or not an address of this "
                          "machine); choose another port or host")
    port = server.servers[0].sockets[0].getsockname()[1] if port == 0 else port
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    log(f"serving on {url}" + (" (token required)" if token else ""))
    return Serving(hub, batcher, metrics, server, thread, url, model, clf.session.provider, source)
