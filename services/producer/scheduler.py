"""The producer's scheduler (docs/contract.md section 10): every few seconds it runs the store
schedules that are due (shared/repository/schedules.py) by publishing an ordinary sync request
with the store's verified credentials. Any number of producers run it; a due schedule is taken by
one of them (SKIP LOCKED) and runs once. The request's idempotency key names the schedule and
its due time, so a run published twice (a producer dying after the publish, before the commit)
is still one sync.

With WOOSYNC_PRUNE_KEEP_DAYS set, each round also runs retention when it is due (every
WOOSYNC_PRUNE_EVERY_S): the queues finished more than that many days ago are deleted, as by
`woosync prune`, by one producer at a time (the task's row is held while it runs)."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from aio_pika.abc import AbstractChannel

from shared import amqp
from shared.messages import StartSync, SyncOptions
from shared.repository import schedules, stores
from shared.settings import Settings

log = logging.getLogger(__name__)

CHECK_EVERY_S = 5.0


class Scheduler:
    def __init__(self, pool: asyncpg.Pool, channel: AbstractChannel, settings: Settings, *,
                 every_s: float = CHECK_EVERY_S) -> None:
        self._pool = pool
        self._channel = channel
        self._settings = settings
        self._every_s = every_s

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_due()
            except Exception as exc:  # a database outage: the next round tries again
                log.warning("scheduler: could not run due schedules: %r", exc)
            if self._settings.prune_keep_days is not None:
                try:
                    await self.prune_if_due()
                except Exception as exc:  # recorded on the task when the database answered; tried again later
                    log.warning("scheduler: retention (prune) failed: %r; it is tried again in a minute", exc)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._every_s)
            except TimeoutError:
                pass

    async def run_due(self) -> int:
        async with self._pool.acquire() as conn:
            return await schedules.run_due(conn, self._publish)

    async def prune_if_due(self) -> int | None:
        """Run retention if it is due and no other producer runs it; the queues deleted, or None."""
        keep_days = self._settings.prune_keep_days
        if keep_days is None:
            return None
        async with self._pool.acquire() as conn:
            deleted = await schedules.run_prune_if_due(conn, keep_days=keep_days, every_s=self._settings.prune_every_s)
        if deleted is not None:
            log.info("retention: deleted %d sync queue(s) finished more than %d day(s) ago; next run in %d s",
                     deleted, keep_days, self._settings.prune_every_s)
        return deleted

    async def _publish(self, schedule: schedules.Schedule) -> str:
        async with self._pool.acquire() as conn:
            url, consumer_key, consumer_secret = await stores.load_store_credentials(
                conn, schedule.store_id, cipher=self._settings.credentials_cipher)
        key = f"schedule:{schedule.kind}:{schedule.store_id}:{schedule.next_run_at.isoformat()}"
        request = StartSync.model_validate({
            "org_id": str(schedule.org_id),
            "store": {"url": url, "consumer_key": consumer_key, "consumer_secret": consumer_secret},
            "idempotency_key": key, "requested_by": f"schedule ({schedule.kind})",
            "options": SyncOptions(mode=schedule.kind).model_dump(mode="json", exclude_none=True),
        })
        await amqp.publish_sync_request(self._channel, request)
        log.info("schedule %s of store %s: sync requested (%s)", schedule.kind, url, key)
        return key
