"""Micro-batches: deliveries are gathered until `size` or `linger` and handed to the handler,
with at most `max_in_flight` batches being processed at once.

A batch flushes on a short linger as well as on size, and the size stays below the prefetch:
otherwise the broker stops delivering before a batch fills and the consumer stalls
(docs/architecture.md section 7, measured here).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aio_pika.abc import AbstractIncomingMessage

log = logging.getLogger(__name__)


class Batcher:
    def __init__(
        self,
        handle: Callable[[list[AbstractIncomingMessage]], Awaitable[None]],
        *,
        size: int,
        linger_s: float,
        max_in_flight: int,
    ) -> None:
        self._handle = handle
        self._size = size
        self._linger_s = linger_s
        self._pending: list[AbstractIncomingMessage] = []
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    async def add(self, message: AbstractIncomingMessage) -> None:
        """The consumer callback: queue a delivery for the next batch."""
        self._pending.append(message)
        self._arrived.set()
        if len(self._pending) >= self._size:
            self._full.set()

    @property
    def busy(self) -> bool:
        return bool(self._pending or self._tasks)

    async def run(self) -> None:
        """Form batches until close(); the last, partial batch is flushed at once."""
        while True:
            await self._arrived.wait()
            if not self._closing:
                try:
                    await asyncio.wait_for(self._full.wait(), self._linger_s)
                except asyncio.TimeoutError:
                    pass
            await self._slots.acquire()
            batch, self._pending = self._pending[: self._size], self._pending[self._size :]
            if len(self._pending) < self._size:
                self._full.clear()
            if not self._pending:
                self._arrived.clear()
            if batch:
                task = asyncio.create_task(self._run_batch(batch))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                self._slots.release()
            if self._closing and not self._pending:
                return

    async def _run_batch(self, batch: list[AbstractIncomingMessage]) -> None:
        try:
            await self._handle(batch)
        finally:
            self._slots.release()

    async def drain(self) -> None:
        """Process everything already delivered, then return (the caller bounds the time)."""
        self._closing = True
        self._arrived.set()
        self._full.set()
        while self._pending or self._tasks:
            if self._tasks:
                await asyncio.wait(set(self._tasks))
            else:
                await asyncio.sleep(0.01)
