"""Live queue status for Server-Sent Events watchers, at a cost independent of their number.

One `QueueWatch` per watched (organisation, queue) polls the queue row every `interval` seconds
(one indexed row read) and wakes its watchers only when the counts or state change. A hundred
browsers watching the same sync cost the database one read every half second, not a hundred.
The watch ends when its last watcher leaves or the queue reaches a terminal state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import UUID

from shared.db import translate_db_error
from shared.states import TERMINAL_QUEUE_STATES

log = logging.getLogger(__name__)

# Reads the status dict of one queue of one organisation, or None when there is no such queue.
StatusReader = Callable[[UUID, UUID], Awaitable["dict[str, Any] | None"]]

_CHANGE_KEYS = (
    "state", "total_count", "draft_count", "processing_count", "done_count", "failed_count",
    "cancelled_count", "is_action_required",
)


def change_key(status: dict[str, Any]) -> tuple[Any, ...]:
    """What a watcher cares about: state, counts and the action flag (not the rate or ETA,
    which drift every second and would turn every poll into an event)."""
    return tuple(status.get(key) for key in _CHANGE_KEYS) + (status.get("error_message"),)


def is_terminal(status: dict[str, Any]) -> bool:
    return status.get("state") in TERMINAL_QUEUE_STATES


class QueueWatch:
    def __init__(self, hub: QueueWatchHub, org_id: UUID, queue_id: UUID) -> None:
        self._hub = hub
        self.org_id = org_id
        self.queue_id = queue_id
        self.watchers = 0
        self.latest: dict[str, Any] | None = None
        self.version = 0  # bumped on every change; watchers remember the last one they sent
        self.finished = False  # the queue is terminal or gone: no more versions will come
        self.closed = False  # the service is stopping: watchers end their streams now
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._poll(), name=f"watch queue {self.queue_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def close(self) -> None:
        await self.stop()
        async with self._changed:
            self.closed = True
            self._changed.notify_all()

    async def _publish(self, status: dict[str, Any] | None, *, finished: bool) -> None:
        async with self._changed:
            self.latest = status
            self.version += 1
            self.finished = finished
            self._changed.notify_all()

    async def _poll(self) -> None:
        last_key: tuple[Any, ...] | None = None
        failures = 0
        while True:
            try:
                status = await self._hub.read_status(self.org_id, self.queue_id)
            except Exception as exc:
                failures += 1
                # Watchers keep their stream (heartbeats continue) while the database is away.
                delay = min(self._hub.interval * 2**failures, 10.0)
                if translate_db_error(exc) is not None:
                    log.warning("cannot read queue %s for its watchers (%s); will retry in %.1f s", self.queue_id, exc, delay)
                else:
                    log.exception("unexpected error reading queue %s for its watchers; will retry in %.1f s", self.queue_id, delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            if status is None:
                await self._publish(None, finished=True)
                return
            key = change_key(status)
            if key != last_key:
                last_key = key
                await self._publish(status, finished=is_terminal(status))
                if is_terminal(status):
                    return
            await asyncio.sleep(self._hub.interval)

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
    """The shared pollers, keyed by (organisation, queue): never shared across organisations."""

    def __init__(self, read_status: StatusReader, *, interval: float = 0.5) -> None:
        self.read_status = read_status
        self.interval = interval
        self._watches: dict[tuple[UUID, UUID], QueueWatch] = {}
        self._closed = False

    @property
    def watched_queues(self) -> int:
        return len(self._watches)

    async def watch(self, org_id: UUID, queue_id: UUID) -> AsyncIterator[dict[str, Any] | None]:
        if self._closed:
            return
        key = (org_id, queue_id)
        watch = self._watches.get(key)
        if watch is None or watch.finished:
            watch = QueueWatch(self, org_id, queue_id)
            self._watches[key] = watch
            watch.start()
        watch.watchers += 1
        try:
            async for status in watch.snapshots():
                yield status
        finally:
            watch.watchers -= 1
            if watch.watchers == 0 and self._watches.get(key) is watch:
                del self._watches[key]
                await watch.stop()

    async def close(self) -> None:
        """Stop every poller and end every watcher's stream (service shutdown)."""
        self._closed = True
        watches, self._watches = list(self._watches.values()), {}
        for watch in watches:
            await watch.close()
