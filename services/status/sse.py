"""Live queue status for Server-Sent Events watchers, at a cost independent of their number.

One `QueueWatch` per watched (organisation, queue) holds the latest status and wakes its watchers
only when the counts or state change. One poller per status process (the hub's) reads every
watched queue in ONE query per tick (`WHERE id = ANY(...)`) every `interval` seconds: a hundred
browsers watching a sync, or two thousand streams on a thousand queues, cost the database one
read every half second. A watch ends when its last watcher leaves or its queue reaches a
terminal state; the poller stops when nothing is watched.

Open streams are also capped per organisation on each process (`EventStreamSlots`,
WOOSYNC_ORG_MAX_EVENT_STREAMS; docs/contract.md section 7).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any
from uuid import UUID

import asyncpg

from services.status.errors import TooManyEventStreams
from services.status.presenters import queue_status_json
from shared.db import translate_db_error
from shared.repository import sync_queues
from shared.states import TERMINAL_QUEUE_STATES

log = logging.getLogger(__name__)

WatchKey = tuple[UUID, UUID]  # (organisation, queue)
# Reads the status dicts of the given (organisation, queue) pairs in one query; a pair missing
# from the answer has no such queue (any more).
StatusesReader = Callable[[Sequence[WatchKey]], Awaitable[dict[WatchKey, dict[str, Any]]]]

_CHANGE_KEYS = (
    "state", "total_count", "draft_count", "queued_count", "processing_count", "done_count", "failed_count",
    "cancelled_count", "is_action_required",
)


def watched_queues_reader(pool: asyncpg.Pool) -> StatusesReader:
    """The hub's reader on the service's pool: one read of every watched queue per tick."""

    async def read_statuses(keys: Sequence[WatchKey]) -> dict[WatchKey, dict[str, Any]]:
        found = await sync_queues.queue_statuses(pool, keys)
        return {key: queue_status_json(status) for key, status in found.items()}

    return read_statuses


def change_key(status: dict[str, Any]) -> tuple[Any, ...]:
    """What a watcher cares about: state, counts and the action flag (not the rate or ETA,
    which drift every second and would turn every poll into an event)."""
    return tuple(status.get(key) for key in _CHANGE_KEYS) + (status.get("error_message"),)


def is_terminal(status: dict[str, Any]) -> bool:
    return status.get("state") in TERMINAL_QUEUE_STATES


class QueueWatch:
    """The latest status of one queue for its watchers, fed by the hub's poller."""

    def __init__(self, org_id: UUID, queue_id: UUID) -> None:
        self.org_id = org_id
        self.queue_id = queue_id
        self.watchers = 0
        self.latest: dict[str, Any] | None = None
        self.version = 0  # bumped on every change; watchers remember the last one they sent
        self.finished = False  # the queue is terminal or gone: no more versions will come
        self.closed = False  # the service is stopping: watchers end their streams now
        self._last_key: tuple[Any, ...] | None = None
        self._changed = asyncio.Condition()

    async def observe(self, status: dict[str, Any] | None) -> None:
        """A status read for this queue (None: it no longer exists); watchers hear of changes only."""
        if self.finished:
            return
        if status is None:
            await self._publish(None, finished=True)
            return
        key = change_key(status)
        if key != self._last_key:
            self._last_key = key
            await self._publish(status, finished=is_terminal(status))

    async def close(self) -> None:
        async with self._changed:
            self.closed = True
            self._changed.notify_all()

    async def _publish(self, status: dict[str, Any] | None, *, finished: bool) -> None:
        async with self._changed:
            self.latest = status
            self.version += 1
            self.finished = finished
            self._changed.notify_all()

    async def snapshots(self) -> AsyncIterator[dict[str, Any] | None]:
        """Each new status as it comes; a None means the queue no longer exists. Ends after the
        terminal snapshot."""
        seen = 0
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: self.version != seen or self.closed)
                if self.closed:
                    return
                seen, status, finished = self.version, self.latest, self.finished
            yield status
            if finished:
                return


class QueueWatchHub:
    """The watches of one status process, keyed by (organisation, queue): never shared across
    organisations; and their one poller."""

    def __init__(self, read_statuses: StatusesReader, *, interval: float = 0.5) -> None:
        self.read_statuses = read_statuses
        self.interval = interval
        self.ticks = 0  # reads of the watched queues so far (one query each)
        self._watches: dict[WatchKey, QueueWatch] = {}
        self._poller: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def watched_queues(self) -> int:
        return len(self._watches)

    async def watch(self, org_id: UUID, queue_id: UUID, *,
                    initial: dict[str, Any] | None = None) -> AsyncIterator[dict[str, Any] | None]:
        """The queue's statuses as they change. `initial`, a status the caller just read, is the
        first snapshot of a new watch (otherwise the first comes with the next tick)."""
        if self._closed:
            return
        key = (org_id, queue_id)
        watch = self._watches.get(key)
        if watch is None or watch.finished:
            watch = QueueWatch(org_id, queue_id)
            self._watches[key] = watch
            if initial is not None:
                await watch.observe(initial)
        if (self._poller is None or self._poller.done()) and not watch.finished:
            self._poller = asyncio.create_task(self._poll(), name="watch queues")
        watch.watchers += 1
        try:
            async for status in watch.snapshots():
                yield status
        finally:
            watch.watchers -= 1
            if watch.watchers == 0 and self._watches.get(key) is watch:
                del self._watches[key]

    async def _poll(self) -> None:
        failures = 0
        while True:
            polled = {key: watch for key, watch in self._watches.items() if not watch.finished}
            if not polled:
                self._poller = None  # nothing to watch: the next watch starts a new poller
                return
            try:
                statuses = await self.read_statuses(list(polled))
            except Exception as exc:
                failures += 1
                # Watchers keep their stream (heartbeats continue) while the database is away.
                delay = min(self.interval * 2**failures, 10.0)
                if translate_db_error(exc) is not None:
                    log.warning("cannot read %d watched queues (%s); will retry in %.1f s", len(polled), exc, delay)
                else:
                    log.exception("unexpected error reading %d watched queues; will retry in %.1f s", len(polled), delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            self.ticks += 1
            for key, watch in polled.items():
                await watch.observe(statuses.get(key))
            await asyncio.sleep(self.interval)

    async def close(self) -> None:
        """Stop the poller and end every watcher's stream (service shutdown)."""
        self._closed = True
        if self._poller is not None:
            self._poller.cancel()
            try:
                await self._poller
            except asyncio.CancelledError:
                pass
            self._poller = None
        watches, self._watches = list(self._watches.values()), {}
        for watch in watches:
            await watch.close()


class EventStreamSlots:
    """Event streams open per organisation on this process, at most `limit` each
    (WOOSYNC_ORG_MAX_EVENT_STREAMS): a stream holds its place from before its response starts
    until it ends, however it ends."""

    def __init__(self) -> None:
        self._open: dict[UUID, int] = {}

    def open_streams(self, org_id: UUID) -> int:
        return self._open.get(org_id, 0)

    def reserve(self, org_id: UUID, limit: int) -> Callable[[], None]:
        """Take a place (TooManyEventStreams when the organisation has `limit` open); returns the
        function that gives it back (calling it again does nothing)."""
        if self._open.get(org_id, 0) >= limit:
            raise TooManyEventStreams(limit)
        self._open[org_id] = self._open.get(org_id, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self._open[org_id] - 1
            if left:
                self._open[org_id] = left
            else:
                del self._open[org_id]

        return release
