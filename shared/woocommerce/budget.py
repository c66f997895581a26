"""The fleet's request budget per store, as one process sees it: leased slots, held hosts.

Every woosync process builds one `FleetBudgets` (on its database pool) and gives each store
client the `HostBudget` of the store's host. A request waits in `HostBudget.acquire` for its
slot: slots come from leases of the budget in PostgreSQL (shared/repository/store_budget.py),
a few consecutive ones at a time (about `lease_s` worth), so the database sees one statement per
lease, not per request, and the fleet's requests to a host are evenly spaced at its rate. A
store that says slow down is reported with `HostBudget.hold`: the whole fleet stops leasing
slots of that host until the time it asked for, and this process drops the slots it holds.

A process that dies with slots in hand wastes them: the host is idle for at most one lease
(`lease_s`), never stalled longer (docs/architecture.md, "Store request budget").
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING

import asyncpg

from shared.errors import DatabaseUnavailable, StoreRateLimited
from shared.repository import store_budget

if TYPE_CHECKING:
    from shared.metrics import Metrics

logger = logging.getLogger(__name__)

# Leases cover about this long: a killed process idles its store at most this long.
DEFAULT_LEASE_S = 1.0
# Slots are spaced for this share of the rate: a request that leaves a little late and the next
# one on time must still be a full second apart from the one five slots later (hosts count
# requests per one-second window).
HEADROOM = 0.92
# A slot may be used this late (event-loop lag); a later one is dropped unused.
LATE_SLOT_S = 0.05
# A request is never leased more slots than this at once (a very high rate).
MAX_TOKENS_PER_LEASE = 200


class StoreHeld(StoreRateLimited):
    """The store asked woosync to slow down (429, or 503 with Retry-After) and its host is held
    fleet-wide for `retry_after` seconds more: the work waits that long without spending a try."""


def budget_key(url: str) -> str:
    """What a budget is keyed by: the store URL's host and port (as store_budget_host in SQL)."""
    return urllib.parse.urlsplit(url).netloc.lower()


class FleetBudgets:
    """This process's view of every store budget it uses; one per process (composition root)."""

    def __init__(self, pool: asyncpg.Pool, *, default_rate: float | None, lease_s: float = DEFAULT_LEASE_S,
                 metrics: Metrics | None = None, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self._pool = pool
        self._default_rate = default_rate or None
        self._lease_s = lease_s
        self._metrics = metrics
        self._clock = clock
        self._wall_clock = wall_clock
        self._hosts: dict[str, HostBudget] = {}

    def for_store(self, url: str) -> HostBudget:
        key = budget_key(url)
        budget = self._hosts.get(key)
        if budget is None:
            budget = self._hosts[key] = HostBudget(self, url)
        return budget


class HostBudget:
    """One host's budget in this process: shared by every client of a store on that host."""

    def __init__(self, fleet: FleetBudgets, url: str) -> None:
        self._fleet = fleet
        self._url = url
        self._lock = asyncio.Lock()
        self._next_slot = 0.0  # clock time of the next leased slot
        self._interval = 0.0
        self._tokens = 0  # leased slots left
        self._free_until = -math.inf  # no rate limit: requests go freely until then
        self._held_until = -math.inf

    @property
    def held_for_s(self) -> float:
        """Seconds this process knows the host to be held for (0 when it is not)."""
        return max(0.0, self._held_until - self._fleet._clock())

    async def acquire(self) -> float:
        """Wait for this request's slot; answers the seconds waited."""
        clock = self._fleet._clock
        started = clock()
        while True:
            async with self._lock:
                slot = await self._take_slot()
            if (wait := slot - clock()) > 0:
                await asyncio.sleep(wait)
            if self._held_until <= clock():
                break  # else a hold came while it waited: its slot is void
        waited = clock() - started
        if self._fleet._metrics is not None:
            self._fleet._metrics.store_budget_wait_seconds.observe(waited)
        return waited

    async def hold(self, seconds: float, *, status: int) -> float:
        """The store said slow down for `seconds`: hold its host fleet-wide, drop the slots held
        here. Answers how long the host is held from now (the database's answer, bounded)."""
        clock = self._fleet._clock
        try:
            async with self._fleet._pool.acquire() as conn:
                held_for = await store_budget.hold(conn, self._url, seconds=seconds, status=status)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # The database is away: hold here at least; the next lease learns the fleet's hold.
            logger.warning("store %s: could not record its hold in the database (%s); holding here only",
                           self._url, type(exc).__name__)
            held_for = min(seconds, store_budget.MAX_HOLD_S)
        self._held_until = max(self._held_until, clock() + held_for)
        self._tokens = 0
        self._free_until = -math.inf
        if self._fleet._metrics is not None:
            self._fleet._metrics.store_holds.inc()
        return held_for

    async def _take_slot(self) -> float:
        clock = self._fleet._clock
        now = clock()
        if self._held_until > now:
            return self._held_until
        if now < self._free_until:
            return now
        # A leased slot whose time has passed unused is gone: sending on it now would put this
        # request next to another process's (hosts count requests per second).
        while self._tokens > 0 and self._next_slot < now - LATE_SLOT_S:
            self._next_slot += self._interval
            self._tokens -= 1
        if self._tokens > 0:
            slot = self._next_slot
            self._next_slot += self._interval
            self._tokens -= 1
            return slot
        fleet = self._fleet
        # The database grants at most a lease's worth at the host's own rate.
        wanted = MAX_TOKENS_PER_LEASE
        try:
            async with fleet._pool.acquire() as conn:
                lease = await store_budget.lease(conn, self._url, wanted=wanted, default_rate=fleet._default_rate,
                                                 lease_s=fleet._lease_s, headroom=HEADROOM)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseUnavailable(f"the store request budget could not be read: {type(exc).__name__}") from exc
        # The database's times on this process's clock: through the wall clock (NTP keeps a fleet's
        # within milliseconds), not the round trip's end, which can be late by a slow answer.
        base = clock() + (lease.now_epoch - self._fleet._wall_clock())
        self._held_until = max(self._held_until, base + lease.held_for_s)
        start = base + lease.start_in_s
        if lease.tokens is None:
            self._free_until = start + fleet._lease_s
            return start
        self._next_slot = start + lease.interval_s
        self._interval = lease.interval_s
        self._tokens = lease.tokens - 1
        return start
