"""What keeps the HTTP surface honest under hostile clients: the one-line JSON error; the Host:
check (DNS rebinding: only this server's names are answered); a request body read within its
limit and its idle time whatever its framing (Content-Length or chunked), multipart parsed from
those bytes; a stream whose client must keep taking it (--idle-timeout, then dropped); the
client's ?timeout=. `st` is app.ServeState."""

from __future__ import annotations

from typing import Any

import anyio
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, StreamingResponse

IMAGE_TYPES = ("image/jpeg", "image/jpg", "image/png", "application/octet-stream", "image/bmp", "image/webp")


def error(status: int, message: str, close: bool = False) -> JSONResponse:
    """close: the request's body was not all read, so the connection cannot carry another request."""
    return JSONResponse({"error": message}, status_code=status, headers={"Connection": "close"} if close else None)


class BodyError(Exception):
    """The body was refused while it streamed in: over the limit (413) or stalled (408)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def host_name(header: str) -> str:
    """The name in a Host: header, without its port, lowercased: '[::1]:8080' -> '::1'."""
    h = header.strip().lower()
    if h.startswith("["):
        return h[1:h.find("]")] if "]" in h else h
    name, sep, port = h.rpartition(":")
    return (name if sep and port.isdigit() else h).rstrip(".")


def host_allowed(name: str, hosts: frozenset[str], local: str | None) -> bool:
    """Loopback addresses, the address the connection came in on, and the server's names; '*' in
    hosts allows any. A page on another name (DNS rebinding) is refused."""
    import ipaddress

    if name in hosts or "*" in hosts:
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False
    return ip.is_loopback or (local is not None and name == local.lower())


class HostCheck:
    """Every request's Host: must be one of this server's names (403 otherwise, before any route)."""

    def __init__(self, app: Any, state: Any):
        self.app, self.st = app, state

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            header = next((v for k, v in scope["headers"] if k == b"host"), None)
            if header is not None:  # a browser always sends one; a client without one is no page
                name = host_name(header.decode("latin-1"))
                local = (scope.get("server") or (None,))[0]
                if not host_allowed(name, self.st.hosts, local):
                    self.st.metrics.errors.labels("host").inc()
                    port = (scope.get("server") or (None, 0))[1]
                    refuse = error(403, f"Host {name!r} is not a name of this server (DNS rebinding guard): open "
                                        f"http://127.0.0.1:{port}/, or start the server with --allow-host {name}")
                    await refuse(scope, receive, send)
                    return
        await self.app(scope, receive, send)


class Watched(StreamingResponse):
    """A stream its client must keep taking: a part that cannot go out within --idle-timeout (the
    client reads nothing, its buffers are full) drops the connection, is counted under `kind`, and
    `on_close` runs however the stream ends (a viewer's slot is given back)."""

    def __init__(self, content: Any, st: Any, kind: str, on_close: Any = None, **kw: Any):
        super().__init__(content, **kw)
        self.st, self.kind, self.on_close = st, kind, on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        st = self.st
        dropped: list[bool] = []
        if st.connections is not None:
            st.connections.for_stream(scope)  # small buffers: a client that stops reading shows in seconds

        async def watched(message: Any) -> None:
            if dropped:
                return
            with anyio.move_on_after(st.idle_s) as waited:
                await send(message)
            if waited.cancelled_caught:
                dropped.append(True)
                st.metrics.errors.labels(self.kind).inc()
                if st.connections is not None:
                    st.connections.drop(scope)  # the client's disconnect then ends the stream

        try:
            await super().__call__(scope, receive, watched)
        finally:
            if self.on_close is not None:
                self.on_close()


async def read_body(request: Request, st: Any) -> bytes:
    """The whole body, whatever its framing (Content-Length or chunked): refused as soon as it passes
    --max-body-mb (413), or when no byte comes for --idle-timeout (408); ClientDisconnect when the
    client leaves first."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > st.max_body:
        raise BodyError(413, f"body of {int(declared)} bytes is over the {st.max_body}-byte limit (--max-body-mb)")
    data = bytearray()
    while True:
        with anyio.move_on_after(st.idle_s):
            message = await request.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            data += message.get("body", b"")
            if len(data) > st.max_body:
                raise BodyError(413, f"body over the {st.max_body}-byte limit (--max-body-mb)")
            if not message.get("more_body", False):
                return bytes(data)
            continue
        raise BodyError(408, f"the body stopped: no byte for {st.idle_s:g} s (--idle-timeout); send it whole")


async def image_body(request: Request, st: Any) -> tuple[bytes, str]:
    """The image bytes and their name: a raw body, or the first file of a multipart form (parsed
    from the body already read within its limit)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind and kind != "multipart/form-data" and kind not in IMAGE_TYPES:
        raise HTTPException(415, f"content type {kind!r} is not an image: send image/jpeg or image/png "
                                 "(or multipart/form-data)")
    data = await read_body(request, st)
    if kind != "multipart/form-data":
        return data, "upload"
    sent = [False]

    async def replay() -> dict:
        if sent[0]:
            return {"type": "http.disconnect"}
        sent[0] = True
        return {"type": "http.request", "body": data, "more_body": False}

    form = await Request(request.scope, replay).form(max_files=1, max_fields=4, max_part_size=st.max_body)
    upload = next((v for v in form.values() if isinstance(v, UploadFile)), None)
    if upload is None:
        raise HTTPException(400, "the form has no file: send the image as a file field, e.g. curl -F file=@x.jpg")
    return await upload.read(), upload.filename or "upload"


def request_timeout(request: Request, st: Any) -> float:
    """--request-timeout, or less when the client asks (?timeout=SECONDS: it cannot use a later
    answer, so the batcher need not compute one)."""
    asked = request.query_params.get("timeout")
    if asked is None:
        return st.timeout_s
    try:
        value = float(asked)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise HTTPException(400, f"timeout={asked!r}: expected seconds above 0, e.g. ?timeout=0.5")
    return min(value, st.timeout_s)
