"""Liveness and readiness of a consumer.

A consumer can sit idle, connected and "healthy", while lines wait: older aio-pika ignored a
consumer cancellation sent by the broker (aio-pika #334; 10.x recovers it), and a stuck channel
or event loop looks the same from outside. Liveness therefore fails when lines are ready in the
queue but nothing has been delivered to this consumer for WOOSYNC_CONSUMER_STALL_S.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import asyncpg
from aio_pika.abc import AbstractQueue, AbstractRobustConnection

from shared import topology
from shared.startup import connections_ready


class ConsumerHealth:
    """The probes of one consumer, built with everything they watch: the connections, the lines
    queue it consumes, whether its batcher is busy, and the stop signal (a consumer that stopped
    consuming to drain is not stalled)."""

    def __init__(self, pool: asyncpg.Pool, connection: AbstractRobustConnection, lines_queue: AbstractQueue,
                 is_busy: Callable[[], bool], *, stall_after_s: float, stopping: asyncio.Event) -> None:
        self._pool = pool
        self._connection = connection
        self._lines_queue = lines_queue
        self._is_busy = is_busy
        self._stall_after_s = stall_after_s
        self._stopping = stopping
        self.last_delivery = time.monotonic()

    def delivered(self) -> None:
        self.last_delivery = time.monotonic()

    async def live(self) -> tuple[bool, str]:
        idle_for = time.monotonic() - self.last_delivery
        if self._stopping.is_set() or idle_for < self._stall_after_s or self._is_busy():
            return True, "ok"
        if self._connection.is_closed:
            return True, "reconnecting to RabbitMQ"  # readiness reports it; a restart would not help
        # Re-declaring with the same arguments is idempotent and answers with the ready count.
        waiting = (await self._lines_queue.declare()).message_count
        if waiting:
            return False, f"{waiting} lines wait in {topology.CUSTOMER_LINES_QUEUE} but nothing was delivered for {idle_for:.0f} s"
        return True, "ok"

    async def ready(self) -> tuple[bool, str]:
        return await connections_ready(self._pool, self._connection)
