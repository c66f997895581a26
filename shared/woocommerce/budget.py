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

Requests in flight to a host are bounded fleet-wide the same way (WOOSYNC_STORE_FLEET_CONCURRENCY,
sql/013_store_slots.sql): `HostSlots` leases a number of in-flight slots for `slot_lease_s` and
renews the lease in the background while this process has work for the host (one statement
every few seconds, none per request); requests take and give back slots locally. A process
killed with slots blocks them until its lease expires, at most `slot_lease_s`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import urllib.parse
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

import asyncpg

from shared.db import translate_db_error
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
# In-flight slots are leased for this long and renewed every third of it: a killed process
# blocks its slots at most this long.
DEFAULT_SLOT_LEASE_S = 10.0
# A process with fewer slots than its fair share (another process holds them) asks again this
# often; also the shortest time between two renewals.
SLOT_POLL_S = 0.5


class StoreHeld(StoreRateLimited):
    """The store asked woosync to slow down (429, or 503 with Retry-After) and its host is held
    fleet-wide for `retry_after` seconds more: the work waits that long without spending a try."""


def budget_key(url: str) -> str:
    """What a budget is keyed by: the store URL's host and port (as store_budget_host in SQL)."""
    return urllib.parse.urlsplit(url).netloc.lower()


class FleetBudgets:
    """This process's view of every store budget it uses; one per process (composition root)."""

    def __init__(self, pool: asyncpg.Pool, *, default_rate: float | None, lease_s: float = DEFAULT_LEASE_S,
                 concurrency: int | None = None, slot_lease_s: float = DEFAULT_SLOT_LEASE_S,
                 metrics: Metrics | None = None, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        """`default_rate`: WOOSYNC_STORE_RATE_LIMIT; `concurrency`: WOOSYNC_STORE_FLEET_CONCURRENCY
        (None: requests in flight are bounded per process only)."""
        if concurrency is not None and concurrency < 1:
            raise ValueError("concurrency must be at least 1 (WOOSYNC_STORE_FLEET_CONCURRENCY)")
        self._pool = pool
        self._default_rate = default_rate or None
        self._lease_s = lease_s
        self._concurrency = concurrency
        self._slot_lease_s = slot_lease_s
        self._holder = uuid.uuid4()  # this process, as the slot leases know it
        if concurrency is not None:
            logger.info("store in-flight slots: at most %d per store host for the fleet, leased by this process "
                        "as holder %s", concurrency, self._holder)
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
        self._slots = HostSlots(fleet, url) if fleet._concurrency is not None else None

    def in_flight(self, max_in_flight: int) -> InFlight:
        """The gate a client's request passes to be sent: at most `max_in_flight` of the client's
        requests at once, and (with a fleet-wide bound) one of the fleet's slots of the host."""
        return InFlight(asyncio.Semaphore(max_in_flight), self._slots)

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
        except Exception as exc:
            if translate_db_error(exc) is None:
                raise
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
        except Exception as exc:
            if translate_db_error(exc) is None:
                raise
            raise DatabaseUnavailable(f"the store request budget could not be read: {type(exc).__name__}: {exc}; "
                                      "the request goes again once PostgreSQL answers") from exc
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


class InFlight:
    """`async with`: a client's own bound on requests in flight, then a fleet-wide slot (if any)."""

    def __init__(self, local: asyncio.Semaphore, slots: HostSlots | None) -> None:
        self._local = local
        self._slots = slots

    async def __aenter__(self) -> None:
        await self._local.acquire()
        if self._slots is not None:
            try:
                await self._slots.take()
            except BaseException:
                self._local.release()
                raise

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._slots is not None:
            self._slots.give_back()
        self._local.release()


class HostSlots:
    """This process's lease of a host's in-flight slots (sql/013_store_slots.sql).

    Requests take and give back slots here, without the database. A background task (running
    while this process has requests for the host) renews the lease every third of its length,
    sooner when requests wait and the fair share is not yet granted; with no request in flight or
    waiting it gives the slots back and ends. Once the lease has expired unrenewed (the database
    is away), no request starts; waiting ones fail with DatabaseUnavailable (retryable).
    """

    def __init__(self, fleet: FleetBudgets, url: str) -> None:
        self._fleet = fleet
        self._url = url
        self._granted = 0
        self._share = 0
        self._expires = -math.inf  # clock time the lease runs out
        self._in_use = 0
        self._waiting = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._error: Exception | None = None  # why the last lease failed (DatabaseUnavailable: an outage)
        self._renewer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @property
    def granted(self) -> int:
        return self._granted if self._fleet._clock() < self._expires else 0

    async def take(self) -> None:
        clock = self._fleet._clock
        self._waiting += 1
        started = False
        try:
            while True:
                now = clock()
                if self._in_use < self._granted and now < self._expires:
                    self._in_use += 1
                    return
                renewer = self._renewer
                if renewer is None or renewer.done():
                    if started and self._error is not None:
                        raise self._error  # the lease this request started failed for good (not an outage)
                    started = True
                    self._error = None
                    self._renewer = asyncio.create_task(self._renew(), name=f"store slots {budget_key(self._url)}")
                elif self._error is not None and now >= self._expires:
                    raise self._error
                elif self._granted < self._share or now >= self._expires:
                    self._wake.set()  # more may be free: ask now rather than at the next renewal
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                try:
                    await asyncio.wait({waiter}, timeout=(self._expires - now) if self._expires > now else None)
                finally:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
        finally:
            self._waiting -= 1

    def give_back(self) -> None:
        self._in_use -= 1
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _renew(self) -> None:
        fleet = self._fleet
        limit = fleet._concurrency
        assert limit is not None
        while True:
            wanted = min(self._in_use + self._waiting, limit)
            if wanted == 0:
                self._granted = 0  # giving the slots back: no request starts until the next lease
            # What may be in flight while the statement runs (requests start up to the current
            # grant): recorded, so a shrinking grant never lets the fleet's sum exceed the limit.
            held = max(self._in_use, self.granted)
            sent = fleet._clock()
            try:
                async with fleet._pool.acquire() as conn:
                    lease = await store_budget.lease_slots(conn, self._url, holder=fleet._holder, wanted=wanted,
                                                           in_use=held, limit=limit,
                                                           lease_s=fleet._slot_lease_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                unavailable = translate_db_error(exc)
                self._error = unavailable or exc
                self._wake_waiters()
                if unavailable is None:
                    # Not an outage (a missing migration, a bug): the waiting requests raise it.
                    logger.error("store %s: leasing its in-flight slots failed", self._url, exc_info=exc)
                    self._expires = -math.inf
                    return
                if wanted == 0 and self._in_use + self._waiting == 0:
                    self._expires = -math.inf
                    return  # nothing to ask for: the lease runs out in the database by itself
                logger.warning("store %s: could not lease its in-flight slots (%s); will try again in %.1f s",
                               self._url, unavailable, 2 * SLOT_POLL_S)
                delay = 2 * SLOT_POLL_S
            else:
                self._error = None
                self._granted, self._share = lease.granted, lease.share
                self._expires = sent + fleet._slot_lease_s
                self._wake_waiters()
                if wanted == 0:
                    if self._in_use + self._waiting == 0:
                        self._expires = -math.inf
                        return  # released; the next request starts a new lease
                    continue  # work came while it released
                short = lease.granted < min(wanted, lease.share)
                delay = SLOT_POLL_S if short else fleet._slot_lease_s / 3
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
                # Woken by a waiting request: never renew more often than every SLOT_POLL_S.
                await asyncio.sleep(max(0.0, sent + SLOT_POLL_S - fleet._clock()))
            except TimeoutError:
                pass
