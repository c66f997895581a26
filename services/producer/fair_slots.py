"""Sharing the producer's enumeration slots fairly across organisations (docs/contract.md section 3).

The producer holds more sync requests (its prefetch) than it enumerates at once (its
concurrency). Each request waits here, still unacked, for a slot. A slot goes to an organisation
that holds fewer than `per_org` slots; among those with requests waiting, to the one served least
recently (then the longest waiting), so organisations take turns. One organisation publishing many
requests, or requests for slow stores, holds at most `per_org` slots and the others' requests
start as soon as a slot frees. Nothing here knows about messages or the broker: it is tested alone
(tests/unit/test_fair_slots.py).

A request whose organisation cannot be read runs without a slot: the handler rejects it at once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import orjson

Org = str


class SlotsClosed(Exception):
    """The producer is stopping: a request still waiting for a slot goes back to the queue."""


class FairSlots:
    def __init__(self, concurrency: int, per_org: int) -> None:
        if concurrency < 1 or not 1 <= per_org <= concurrency:
            raise ValueError("need 1 <= per_org <= concurrency")
        self._concurrency = concurrency
        self._per_org = per_org
        self._running: Counter[Org] = Counter()
        self._waiting: dict[Org, deque[tuple[int, asyncio.Future[bool]]]] = {}
        self._last_served: dict[Org, int] = {}  # grant number, for orgs running or waiting only
        self._numbers = itertools.count()
        self._closed = False

    @property
    def in_use(self) -> int:
        return sum(self._running.values())

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._waiting.values())

    def held_by(self, org: Org) -> int:
        return self._running[org]

    @asynccontextmanager
    async def slot(self, org: Org | None) -> AsyncIterator[None]:
        """Hold a slot for `org` while the block runs; `org` None runs at once, without a slot.
        Raises SlotsClosed when closed before a slot came."""
        if org is None:
            yield
            return
        await self.acquire(org)
        try:
            yield
        finally:
            self.release(org)

    async def acquire(self, org: Org) -> None:
        if self._closed:
            raise SlotsClosed
        if self.in_use < self._concurrency and self._running[org] < self._per_org:
            # A slot is free only when no waiting organisation may take it (see _grant), so
            # taking it now jumps no queue.
            self._take(org)
            return
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        entry = (next(self._numbers), waiter)
        self._waiting.setdefault(org, deque()).append(entry)
        try:
            granted = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.release(org)  # granted, but cancelled before it could run: pass the slot on
            else:
                self._forget(org, entry)
            raise
        if not granted:
            raise SlotsClosed

    def release(self, org: Org) -> None:
        self._running[org] -= 1
        if self._running[org] <= 0:
            del self._running[org]
            if org not in self._waiting:
                self._last_served.pop(org, None)
        self._grant()

    def close(self) -> None:
        """No more slots: every waiting request gets SlotsClosed; running ones keep theirs."""
        self._closed = True
        for queue in self._waiting.values():
            for _, waiter in queue:
                if not waiter.done():
                    waiter.set_result(False)
        self._waiting.clear()

    def _take(self, org: Org) -> None:
        self._running[org] += 1
        self._last_served[org] = next(self._numbers)

    def _grant(self) -> None:
        while not self._closed and self.in_use < self._concurrency:
            eligible = [org for org in self._waiting if self._running[org] < self._per_org]
            if not eligible:
                return
            # Served least recently first (never served counts as earliest), then waiting longest.
            org = min(eligible, key=lambda o: (self._last_served.get(o, -1), self._waiting[o][0][0]))
            _, waiter = self._waiting[org].popleft()
            if not self._waiting[org]:
                del self._waiting[org]
            self._take(org)
            waiter.set_result(True)

    def _forget(self, org: Org, entry: tuple[int, asyncio.Future[bool]]) -> None:
        queue = self._waiting.get(org)
        if queue is None or entry not in queue:
            return
        queue.remove(entry)
        if not queue:
            del self._waiting[org]
            if org not in self._running:
                self._last_served.pop(org, None)


def organisation_of(body: bytes) -> Org | None:
    """The organisation a sync request is for, read from its body alone (no validation beyond
    it): its `org_id` as a canonical UUID, or None when the body does not say."""
    try:
        data = orjson.loads(body)
        return str(UUID(str(data["org_id"])))
    except (orjson.JSONDecodeError, TypeError, KeyError, ValueError, AttributeError):
        return None
