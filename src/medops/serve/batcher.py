"""Dynamic batching: requests queue here and one model thread takes them in batches.

One design for every served model (classifier forward passes, LLM decode loops): a
bounded queue refuses with 429 when full (backpressure, not collapse); the first request
of a batch waits at most ``max_wait_ms`` for others; a request whose client left is marked
abandoned and skipped, or dropped from a running batch at its next step. The model runs
in a thread of its own, so the event loop keeps answering health checks and streams.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from medops.serve import metrics
from medops.serve.generation import Refused

T = TypeVar("T")
log = logging.getLogger("kserve.medops")


@dataclass(eq=False)
class Ticket(Generic[T]):
    """One queued request: its work item, its weight in the batch and its outcome."""

    item: T
    size: int = 1
    enqueued: float = field(default_factory=time.monotonic)
    future: Future[Any] = field(default_factory=Future)
    abandoned: bool = False

    async def result(self) -> Any:
        """Wait for the outcome; a cancelled wait (client gone) abandons the ticket."""
        try:
            return await asyncio.wrap_future(self.future)
        except asyncio.CancelledError:
            self.abandoned = True
            raise


class BatchQueue(Generic[T]):
    def __init__(self, name: str, max_queue: int, max_batch: int, max_wait_ms: float) -> None:
        self.name = name
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self._tickets: deque[Ticket[T]] = deque()
        self._ready = threading.Condition()
        self._closed = False

    def put(self, item: T, size: int = 1) -> Ticket[T]:
        with self._ready:
            if len(self._tickets) >= self.max_queue:
                raise Refused(
                    429,
                    f"the server is busy: {self.max_queue} requests are already waiting "
                    "(serve.limits.max_queue); retry after a short wait",
                    "queue_full",
                )
            ticket: Ticket[T] = Ticket(item, size)
            self._tickets.append(ticket)
            metrics.set_queue_depth(self.name, len(self._tickets))
            self._ready.notify()
            return ticket

    def take(self) -> list[Ticket[T]] | None:
        """The next batch (blocking); None once closed. Abandoned tickets are dropped."""
        with self._ready:
            while not self._tickets and not self._closed:
                self._ready.wait()
            if not self._tickets:
                return None
            deadline = self._tickets[0].enqueued + self.max_wait_s
            while self._queued_size() < self.max_batch and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._ready.wait(left)
            batch: list[Ticket[T]] = []
            total = 0
            while self._tickets:
                ticket = self._tickets[0]
                if batch and total + ticket.size > self.max_batch:
                    break
                self._tickets.popleft()
                if ticket.abandoned or not ticket.future.set_running_or_notify_cancel():
                    continue
                batch.append(ticket)
                total += ticket.size
            metrics.set_queue_depth(self.name, len(self._tickets))
            return batch

    def _queued_size(self) -> int:
        return sum(t.size for t in self._tickets if not t.abandoned)

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()


def start_worker(
    queue: BatchQueue[T], handle: Callable[[list[Ticket[T]]], None]
) -> threading.Thread:
    """Run ``handle`` on each batch in a daemon thread until the queue closes.

    ``handle`` sets each ticket's future; an exception it raises fails the batch's
    still-open tickets with a type-only message (it may quote inputs)."""

    def loop() -> None:
        while (batch := queue.take()) is not None:
            if not batch:
                continue
            metrics.observe_batch(sum(t.size for t in batch))
            try:
                handle(batch)
            except Exception as error:  # the model failed: answer 500, keep serving
                log.error("%s: batch failed: %s", queue.name, type(error).__name__)
                for ticket in batch:
                    if not ticket.future.done():
                        ticket.future.set_exception(
                            RuntimeError(f"model failed ({type(error).__name__})")
                        )

    thread = threading.Thread(target=loop, name=f"medops-{queue.name}", daemon=True)
    thread.start()
    return thread
