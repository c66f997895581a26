"""The dispatcher: the one publisher of recorded (draft) lines (docs/architecture.md "Dispatch").

Every producer runs one; any number dispatch together. Each round serves every sync that has
draft lines and room in its window (at most WOOSYNC_DISPATCH_WINDOW lines queued or processing
per sync), one sync at a time and each once per round (round-robin, one-window syncs first),
then re-publishes lines left queued past WOOSYNC_DISPATCH_REPUBLISH_AFTER_S. Rounds repeat every
WOOSYNC_DISPATCH_INTERVAL_S, topping windows up as lines finish. The lines queue thus holds at
most window x active syncs, whatever their size, and a paused sync publishes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from uuid import UUID

import aio_pika
import asyncpg
from aio_pika.abc import AbstractChannel

from shared import amqp, topology
from shared.db import translate_db_error
from shared.errors import RetryableError
from shared.messages import CustomerLine
from shared.metrics import Metrics
from shared.repository import dispatch
from shared.repository.queue_lines import RetryLine
from shared.settings import Settings

log = logging.getLogger(__name__)

_REPUBLISH_BATCH = 500
# How often an unset window is sized anew from the consumers on the lines queue.
_CONSUMERS_READ_EVERY_S = 5.0


class Dispatcher:
    def __init__(self, pool: asyncpg.Pool, channel: AbstractChannel, settings: Settings, metrics: Metrics) -> None:
        self._pool = pool
        self._channel = channel
        # Unset, the window is one consumer's hand (the prefetch) for every consumer attached to the
        # lines queue, so one big sync keeps every consumer busy while the broker stays bounded.
        self._fixed_window = settings.dispatch_window
        self._prefetch = settings.prefetch
        self._window = settings.dispatch_window_lines
        self._consumers_read_at = 0.0
        self._interval_s = settings.dispatch_interval_s
        self._republish_after_s = settings.dispatch_republish_after_s
        self._metrics = metrics
        self._next_sweep = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until `stop`; a round that fails (database or broker away) is logged and the
        next one tries again: nothing is lost, lines wait in draft or queued."""
        log.info("dispatcher running: window %d lines per sync, a round every %.2f s, re-publish after %.0f s",
                 self._window, self._interval_s, self._republish_after_s)
        while not stop.is_set():
            try:
                await self.round()
            except Exception as exc:
                # The dispatcher must outlive anything one round meets: a task that ended here would
                # leave every sync's draft lines unpublished with nothing in the logs. Outages (a
                # connection killed mid-query surfaces as asyncpg's interface errors) are expected.
                if translate_db_error(exc) is not None or isinstance(
                        exc, (OSError, asyncio.TimeoutError, aio_pika.exceptions.AMQPError, RetryableError, amqp.PublishFailed)):
                    log.warning("dispatch round stopped (%s): the next round in %.2f s tries again", exc, self._interval_s)
                else:
                    log.exception("dispatch round failed unexpectedly: the next round in %.2f s tries again", self._interval_s)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval_s)

    async def round(self) -> int:
        """Serve each sync due for lines once; returns how many lines were published."""
        published = 0
        served: list[UUID] = []
        await self._size_window()
        while True:
            taken = await dispatch.queue_next_window(self._pool, window=self._window, skip=served)
            if taken is None:
                break
            queue_id, lines = taken
            served.append(queue_id)
            published += await self._publish(lines)
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + min(self._republish_after_s / 4, 30.0)
            published += await self._republish_stale()
        return published

    async def _size_window(self) -> None:
        if self._fixed_window is not None or time.monotonic() - self._consumers_read_at < _CONSUMERS_READ_EVERY_S:
            return
        self._consumers_read_at = time.monotonic()
        try:
            declared = await self._channel.channel.queue_declare(topology.CUSTOMER_LINES_QUEUE, passive=True)
        except Exception as exc:  # the broker answers the next round; keep the last window meanwhile
            log.debug("could not count the lines queue's consumers (%s): window stays %d", exc, self._window)
            return
        window = self._prefetch * max(1, declared.consumer_count)
        if window != self._window:
            log.info("dispatch window now %d lines per sync (%d consumers x prefetch %d)",
                     window, declared.consumer_count, self._prefetch)
            self._window = window

    async def _republish_stale(self) -> int:
        republished = 0
        while True:
            lines = await dispatch.stale_queued_lines(self._pool, older_than_s=self._republish_after_s,
                                                      limit=_REPUBLISH_BATCH)
            if not lines:
                return republished
            log.warning("re-publishing %d line(s) queued for over %.0f s without a claim", len(lines),
                        self._republish_after_s)
            republished += await self._publish(lines)
            if len(lines) < _REPUBLISH_BATCH:
                return republished

    async def _publish(self, lines: list[RetryLine]) -> int:
        if not lines:
            return 0
        try:
            await amqp.publish_customer_lines(self._channel, [CustomerLine.from_recorded(line) for line in lines])
        except BaseException:
            # Not confirmed: back to draft for a later round (a copy that did arrive is harmless);
            # if even that fails, the re-publish timeout recovers them.
            with contextlib.suppress(Exception):
                await asyncio.shield(dispatch.return_unpublished_lines(self._pool, [line.line_id for line in lines]))
            raise
        self._metrics.customers_published.inc(len(lines))
        return len(lines)
