"""uvicorn's HTTP/1.1 protocol (h11) with the deadline it leaves out, and a way for the app to drop
a connection. uvicorn starts its keep-alive timer only after a first answer, and any byte resets
it: a socket that never sends, or sends half a request head, stays open for ever (250 of them
were). Here a connection that has no request in the app's hands (none yet, half a head, idle
after an answer, or a body still trickling in after the answer) is closed --idle-timeout after
it opened or was last answered; a request the app holds is bounded by the app itself (the body's
idle time, --request-timeout, a stream viewer's idle time). Connections are found by their
scope's (client, server) addresses, so the app can drop a stream viewer that takes nothing."""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Callable

from uvicorn.protocols.http.h11_impl import H11Protocol

STREAM_SNDBUF = 64 * 1024  # a viewer that stops reading fills this, then the app's send waits


class Connections:
    """The open connections of one server, and the protocol class that keeps them."""

    def __init__(self, idle_s: float, count: Callable[[str], None]):
        self.idle_s, self.count = idle_s, count
        self.open: dict[tuple, Any] = {}

    @staticmethod
    def key(client: Any, server: Any) -> tuple:
        return tuple(client or ()), tuple(server or ())

    def _of(self, scope: dict) -> Any:
        return self.open.get(self.key(scope.get("client"), scope.get("server")))

    def drop(self, scope: dict) -> None:
        """Close the request's connection now, whatever is still buffered for it."""
        p = self._of(scope)
        if p is not None and not p.transport.is_closing():
            p.transport.abort()

    def for_stream(self, scope: dict) -> None:
        """A stream's connection buffers little: a client that stops reading blocks the stream's
        sends within a few parts, and the app's idle timer then drops it."""
        p = self._of(scope)
        sock = p.transport.get_extra_info("socket") if p is not None else None
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)
            except OSError:
                pass

    def protocol(self) -> type:
        conns = self

        class Guarded(H11Protocol):
            def connection_made(self, transport: Any) -> None:  # type: ignore[override]
                super().connection_made(transport)
                self._catdog_key = conns.key(self.client, self.server)
                conns.open[self._catdog_key] = self
                self._catdog_timer: asyncio.TimerHandle | None = None
                self._catdog_arm()

            def _catdog_arm(self) -> None:
                if self._catdog_timer is not None:
                    self._catdog_timer.cancel()
                self._catdog_timer = self.loop.call_later(conns.idle_s, self._catdog_check)

            def _catdog_check(self) -> None:
                self._catdog_timer = None
                if self.transport.is_closing():
                    return
                if self.cycle is None or self.cycle.response_complete:  # nothing in the app's hands
                    conns.count("idle_connection")
                    self.transport.abort()
                else:
                    self._catdog_arm()

            def on_response_complete(self) -> None:
                super().on_response_complete()
                if not self.transport.is_closing():
                    self._catdog_arm()

            def connection_lost(self, exc: Exception | None) -> None:
                conns.open.pop(self._catdog_key, None)
                if self._catdog_timer is not None:
                    self._catdog_timer.cancel()
                    self._catdog_timer = None
                super().connection_lost(exc)

        return Guarded
