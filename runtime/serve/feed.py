"""The newest version of a thing (the stream's JPEG, the latest prediction), handed from the hub's
threads into the server's event loop: one thread waits on the hub and wakes every waiting viewer
through an asyncio event, so a viewer costs no thread and no hand-off per frame."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, Callable


class Feed:
    def __init__(self, loop: asyncio.AbstractEventLoop, wait: Callable[[int, float], tuple[Any, int]],
                 closed: Callable[[], bool]):
        self.loop, self._wait, self._closed = loop, wait, closed
        self.value: Any = None
        self.version = 0
        self.event = asyncio.Event()
        threading.Thread(target=self._pump, name="serve-feed", daemon=True).start()

    def _pump(self) -> None:
        seen = 0
        while not self._closed():
            value, version = self._wait(seen, 1.0)
            if version > seen:
                seen = version
                try:
                    self.loop.call_soon_threadsafe(self._publish, value, version)
                except RuntimeError:  # the loop is closed: the server is gone
                    return
        with contextlib.suppress(RuntimeError):  # closed: wake every waiter so it sees the end now
            self.loop.call_soon_threadsafe(self.event.set)

    def _publish(self, value: Any, version: int) -> None:
        self.value, self.version = value, version
        event, self.event = self.event, asyncio.Event()
        event.set()

    async def after(self, seen: int, timeout: float = 1.0) -> tuple[Any, int]:
        """The newest value newer than version `seen` (None, seen after `timeout` s without one)."""
        if self.version <= seen and not self._closed():
            try:
                await asyncio.wait_for(self.event.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        return (self.value, self.version) if self.version > seen else (None, seen)
