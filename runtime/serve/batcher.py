"""Dynamic batching for POST /api/predict: requests that arrive together share one session call.
The first waiting crop opens a batch; it closes when it is full, when no other request is on its
way, or `max_wait_s` after it opened (5 ms by default): one client alone pays no wait, and eight
clients cost about one batch, not eight runs of one. The Classifier here is the API's own (its
own buffers and timings) over the run's session: ONNX Runtime sessions may be run from several
threads."""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future, InvalidStateError
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from catdog.runtime.engine.classifier import Classifier


class Batcher:
    def __init__(self, clf: Classifier, max_batch: int = 16, max_wait_s: float = 0.005):
        self.clf, self.max_batch, self.max_wait_s = clf, max(1, max_batch), max_wait_s
        self.q: queue.Queue[tuple[np.ndarray, Future] | None] = queue.Queue()
        self.batches = 0
        self.items = 0
        self.incoming = 0  # requests decoding now, that the open batch may wait for
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="predict-batcher", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        return self.q.qsize()

    def expect(self) -> None:
        """A request is on its way (decoding): a batch being filled waits for it, not for nobody."""
        with self._lock:
            self.incoming += 1

    @property
    def alive(self) -> bool:
        """The thread that runs the batches is running (/healthz says so when it is not)."""
        return self._thread.is_alive()

    def submit(self, crop: np.ndarray | None) -> Future:
        """Queue a decoded crop (None: the expected request failed before it had one). A stopped
        batcher answers at once with StoppedError."""
        fut: Future = Future()
        with self._lock:
            self.incoming = max(0, self.incoming - 1)
        if crop is not None:
            if self.alive:
                self.q.put((crop, fut))
            else:
                fut.set_exception(StoppedError("the prediction thread has stopped; restart the server"))
        return fut

    def close(self) -> None:
        self.q.put(None)
        self._thread.join(timeout=5.0)

    def _take(self) -> list[tuple[np.ndarray, Future]] | None:
        first = self.q.get()
        if first is None:
            return None
        group, deadline = [first], time.monotonic() + self.max_wait_s
        while len(group) < self.max_batch:
            left = deadline - time.monotonic()
            try:  # wait only for requests that are coming: one client alone never pays the window
                item = self.q.get(timeout=min(left, 0.0005)) if left > 0 and self.incoming else self.q.get_nowait()
            except queue.Empty:
                if left > 0 and self.incoming:
                    continue
                break
            if item is None:
                self.q.put(None)  # close after this batch
                break
            group.append(item)
        return group

    def _loop(self) -> None:
        while (group := self._take()) is not None:
            # A request that timed out meanwhile has cancelled its future: skip it. The others are
            # marked running, so that a timeout from now on can no longer cancel them (and setting
            # their result cannot fail).
            group = [(c, fut) for c, fut in group if fut.set_running_or_notify_cancel()]
            if not group:
                continue
            try:
                t0 = time.perf_counter()
                probs = self.clf.infer_crops([c for c, _ in group])
                preds = self.clf.predictions(probs)
                seconds = time.perf_counter() - t0
            except Exception as e:  # noqa: BLE001 - every waiting request gets the failure, the server lives on
                for _, fut in group:
                    _settle(fut, exception=e)
                continue
            self.batches += 1
            self.items += len(group)
            for (_, fut), pred in zip(group, preds, strict=True):
                _settle(fut, result=(pred, seconds, len(group)))
        while True:  # closed: whatever is still queued is answered, not left to time out
            try:
                item = self.q.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                _settle(item[1], exception=StoppedError("the server is stopping"))


class StoppedError(RuntimeError):
    """The batcher's thread has ended: a prediction asked of it now is refused at once (503)."""


def _settle(fut: Future, result: Any = None, exception: BaseException | None = None) -> None:
    """Set a future's outcome unless it already has one (cancelled by its request's timeout)."""
    if fut.done():
        return
    try:
        if exception is not None:
            fut.set_exception(exception)
        else:
            fut.set_result(result)
    except InvalidStateError:  # cancelled between the check and the set
        pass
