"""The HTTP surface (Starlette): the page, the MJPEG stream, the newest prediction as JSON and as
Server-Sent Events, POST /api/predict through the one decoder and the batcher, /healthz and
/metrics. Every route but /healthz needs the token when one is set; every bad request is a 4xx
with a one-line JSON error, never a traceback. What holds against hostile clients (the Host:
check, the body's limit and idle time, streams that must be taken, ?timeout=) is guards.py; a
client that leaves is counted, not reported."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from catdog.runtime.serve.batcher import Batcher, StoppedError
from catdog.runtime.serve.feed import Feed
from catdog.runtime.serve.guards import BodyError, HostCheck, Watched, image_body, request_timeout
from catdog.runtime.serve.guards import error as _error
from catdog.runtime.serve.hub import Hub
from catdog.runtime.serve.metrics import Metrics
from catdog.runtime.serve.page import PAGE
from catdog.runtime.spine.errors import CatdogError
from catdog.runtime.spine.records import Failure
from catdog.runtime.spine.serialize import api_error, api_json

if TYPE_CHECKING:
    from catdog.runtime.engine.classifier import Classifier
    from catdog.runtime.serve.protocol import Connections

COOKIE = "catdog_session"
BOUNDARY = "frame"


@dataclass
class ServeState:
    hub: Hub
    batcher: Batcher
    metrics: Metrics
    clf: Classifier  # the API's own (its buffers and timings), over the run's session
    model: str  # the summary's model line
    provider: str
    source: str | None
    token: str | None = None
    max_body: int = 20_000_000
    timeout_s: float = 10.0
    idle_s: float = 10.0  # --idle-timeout: a body that stops, a viewer that takes nothing
    hosts: frozenset[str] = frozenset({"localhost"})  # the Host: names answered besides IP literals of this server
    connections: Connections | None = None  # drops a connection by its scope (None: no dropping)
    feeds: dict[str, Feed] = field(default_factory=dict)  # "jpeg", "predictions": one per kind


def session_value(token: str) -> str:
    """The cookie holds a value derived from the token, not the token itself."""
    return hmac.new(token.encode(), b"catdog-edge session", hashlib.sha256).hexdigest()


def _allowed(st: ServeState, request: Request) -> bool:
    if not st.token:
        return True
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer ") and hmac.compare_digest(auth[7:].strip().encode(), st.token.encode()):
        return True
    cookie = request.cookies.get(COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), session_value(st.token).encode())


def guarded(handler):
    async def route(request: Request) -> Response:
        st: ServeState = request.app.state.serve
        if not _allowed(st, request):
            return _error(401, "missing or wrong token: send 'Authorization: Bearer TOKEN', or open /?token=TOKEN")
        return await handler(request, st)

    return route


async def page(request: Request) -> Response:
    st: ServeState = request.app.state.serve
    given = request.query_params.get("token")
    if st.token and given is not None:
        if not hmac.compare_digest(given.encode(), st.token.encode()):
            return _error(401, "wrong token")
        resp = RedirectResponse("./", status_code=303)  # the token leaves the address bar and the history
        resp.set_cookie(COOKIE, session_value(st.token), httponly=True, samesite="strict")
        return resp
    if not _allowed(st, request):
        return _error(401, "open /?token=TOKEN once; the page then keeps a session cookie")
    return HTMLResponse(PAGE)


async def latest(request: Request, st: ServeState) -> Response:
    if st.hub.latest is None:
        why = "" if st.source else ": this server has no SOURCE; POST /api/predict"
        return _error(404, "no prediction yet" + why)
    return JSONResponse(st.hub.latest)


async def events(request: Request, st: ServeState) -> Response:
    async def stream() -> AsyncIterator[bytes]:
        seen = 0
        if st.hub.latest is not None:
            seen = st.hub.version
            yield f"data: {json.dumps(st.hub.latest)}\n\n".encode()
        feed = _feed(st, "predictions", st.hub.wait_prediction)
        while not st.hub.closed:
            record, seen = await feed.after(seen)
            yield f"data: {json.dumps(record)}\n\n".encode() if record is not None else b": keep-alive\n\n"

    return Watched(stream(), st, "stalled_events", media_type="text/event-stream",
                   headers={"Cache-Control": "no-store"})


def _feed(st: ServeState, name: str, wait: Any) -> Feed:
    """The one Feed per kind, made in the event loop on first use."""
    if name not in st.feeds:
        st.feeds[name] = Feed(asyncio.get_running_loop(), wait, lambda: st.hub.closed)
    return st.feeds[name]


async def mjpeg(request: Request, st: ServeState) -> Response:
    if not st.source:
        return _error(404, "no stream: this server has no SOURCE; POST /api/predict")
    if not st.hub.join():
        st.metrics.errors.labels("viewer_cap").inc()
        return _error(503, f"{st.hub.max_viewers} viewers already watch (the cap, --max-viewers); try again later")

    async def frames() -> AsyncIterator[bytes]:
        seen, feed = 0, _feed(st, "jpeg", st.hub.wait_jpeg)
        while not st.hub.closed:
            jpeg, seen = await feed.after(seen)
            if jpeg is not None:
                yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                       .encode() + jpeg + b"\r\n")

    return Watched(frames(), st, "stalled_viewer", on_close=st.hub.leave,
                   media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}", headers={"Cache-Control": "no-store"})


async def predict(request: Request, st: ServeState) -> Response:
    t0 = time.perf_counter()
    timeout_s = request_timeout(request, st)
    try:
        data, name = await image_body(request, st)
    except ClientDisconnect:  # the client left mid-upload: normal, counted, nobody to answer
        st.metrics.errors.labels("aborted").inc()
        return Response(status_code=400)
    except BodyError as e:
        st.metrics.errors.labels("too_large" if e.status == 413 else "stalled_body").inc()
        return _error(e.status, str(e), close=True)
    if not data:
        raise HTTPException(400, "empty body: send the image's bytes")
    st.batcher.expect()
    try:
        crop = await anyio.to_thread.run_sync(lambda: st.clf.load(data, name)[0])  # the CLI's guard and decode
    except CatdogError as e:
        st.batcher.submit(None)
        st.metrics.errors.labels("bad_image").inc()
        return _failed(Failure.of(e, name))
    except BaseException:
        st.batcher.submit(None)
        raise
    try:
        pred, _, _ = await asyncio.wait_for(asyncio.wrap_future(st.batcher.submit(crop)), timeout_s)
    except asyncio.TimeoutError:  # the batcher skips the cancelled request if it has not run it yet
        st.metrics.errors.labels("timeout").inc()
        raise HTTPException(504, f"no answer within {timeout_s:g} s; the device is overloaded") from None
    except StoppedError as e:
        st.metrics.errors.labels("stopped").inc()
        raise HTTPException(503, str(e)) from None
    if isinstance(pred, Failure):  # NaN/inf scores: the model's fault (a 500), not the request's
        st.metrics.errors.labels(pred.kind).inc()
        return _failed(pred)
    st.metrics.predictions.labels("api").inc()
    st.metrics.request.observe(time.perf_counter() - t0)
    return Response(api_json(name, pred), media_type="application/json")


def _failed(failure: Failure) -> Response:
    status, body = api_error(failure)
    return JSONResponse(body, status_code=status)


async def healthz(request: Request) -> Response:
    """200 only while the API can answer: a stopped prediction thread is a 503 that says so."""
    st: ServeState = request.app.state.serve
    body = {"status": "ok", "model": st.model, "provider": st.provider, "source": st.source,
            "source_alive": st.hub.source_alive}
    if not st.batcher.alive:
        body.update(status="error", error="the prediction thread has stopped: POST /api/predict cannot answer; "
                                          "restart the server")
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)


async def metrics(request: Request, st: ServeState) -> Response:
    return Response(st.metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")


async def _http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    return _error(status, str(getattr(exc, "detail", "")) or "error")


async def _bug(request: Request, exc: Exception) -> Response:
    return _error(500, f"internal error: {type(exc).__name__}")


def make_app(state: ServeState, cors: str | None = None) -> Starlette:
    routes = [
        Route("/", page), Route("/healthz", healthz),
        Route("/stream.mjpg", guarded(mjpeg)), Route("/api/latest", guarded(latest)),
        Route("/api/events", guarded(events)), Route("/api/predict", guarded(predict), methods=["POST"]),
        Route("/metrics", guarded(metrics)),
    ]
    middleware = [Middleware(HostCheck, state=state)]
    if cors:
        from starlette.middleware.cors import CORSMiddleware

        middleware.append(Middleware(CORSMiddleware, allow_origins=[cors], allow_methods=["GET", "POST"],
                                     allow_headers=["Authorization", "Content-Type"]))
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={HTTPException: _http_error, Exception: _bug})
    app.state.serve = state
    return app
