"""The fleet's request budget per store host (store_budget, sql/006_store_budget.sql).

Every woosync process that talks to a store leases its request slots here (GCRA kept as one
timestamp per host, several slots per call), and reports here when the store says slow down, so
that the whole fleet holds that host. Time is the database's, never a process clock; the caller
gets seconds from now. The client-side cache of leases is shared/woocommerce/budget.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from shared.repository.sql import Executor

# A hold lasts what the store asked for, but never more than this (a garbled or hostile
# Retry-After must not stop a store for a day).
MAX_HOLD_S = 900.0
# After a hold the budget runs at half its rate (never below this share), then climbs back
# linearly to the full rate over RECOVERY_S seconds.
MIN_FACTOR = 0.1
RECOVERY_S = 300.0


@dataclass(frozen=True, slots=True)
class Lease:
    """Slots granted: the first in `start_in_s`, then one every `interval_s`; `tokens` None means
    no rate limit (free from `start_in_s` for the lease's length). `now_epoch`: the database's
    clock when it answered (Unix seconds), so a process can place the slots on its own clock
    without the round trip's error."""

    now_epoch: float
    start_in_s: float
    interval_s: float
    tokens: int | None
    held_for_s: float
    factor: float


@dataclass(frozen=True, slots=True)
class Throttle:
    """What the status API shows of a store's budget."""

    host: str
    held_until: datetime | None  # set while the store is held
    factor: float  # the share of the budget it runs at (1: full)
    holds: int


async def lease(conn: Executor, url: str, *, wanted: int, default_rate: float | None, lease_s: float,
                headroom: float) -> Lease:
    """Lease up to `wanted` consecutive request slots of the store's host (one statement); slots
    are spaced for `headroom` (a share, e.g. 0.92) of the rate."""
    row = await conn.fetchrow(
        "SELECT extract(epoch FROM now())::float8 AS now_epoch, * FROM store_budget_lease($1, $2, $3, $4, $5, $6)", url, wanted, default_rate, lease_s, RECOVERY_S,
        headroom,
    )
    return Lease(row["now_epoch"], row["start_in_s"], row["interval_s"], row["tokens"], row["held_for_s"], row["factor"])


async def hold(conn: Executor, url: str, *, seconds: float, status: int) -> float:
    """The store asked the fleet to wait `seconds`: hold its host (at most MAX_HOLD_S) and halve its
    budget once per hold episode. Answers how long the host is held from now."""
    return await conn.fetchval(
        "SELECT store_budget_hold($1, $2, $3, $4, $5, $6)", url, seconds, MAX_HOLD_S, status, MIN_FACTOR, RECOVERY_S
    )


@dataclass(frozen=True, slots=True)
class SlotLease:
    """In-flight slots granted to one process (sql/013_store_slots.sql): it may have `granted`
    requests in flight until it renews; `share` is the fair share it may ask for."""

    granted: int
    share: int


async def lease_slots(conn: Executor, url: str, *, holder: UUID, wanted: int, in_use: int, limit: int,
                      lease_s: float) -> SlotLease:
    """Lease, renew or (wanted = in_use = 0) release this holder's in-flight slots of the store's
    host, for `lease_s` seconds, within the fleet's `limit` (one statement)."""
    row = await conn.fetchrow("SELECT * FROM store_slots_lease($1, $2, $3, $4, $5, $6)",
                              url, holder, wanted, in_use, limit, lease_s)
    return SlotLease(row["granted"], row["share"])


async def set_store_rate_limit(conn: Executor, store_id: UUID, rate_limit: float | None) -> None:
    """Record a request's `store.rate_limit` on its store (None: the fleet's default) and give the
    host's budget the lowest rate any organisation set for a store on that host."""
    # The statement's snapshot predates its own UPDATE: the other stores of the host are read,
    # this one's new value is taken from $2 (least() ignores NULLs).
    await conn.execute(
        """
        WITH changed AS (
            UPDATE woo_store SET rate_limit = $2 WHERE id = $1 RETURNING store_budget_host(url) AS host
        )
        INSERT INTO store_budget (host, rate_limit)
        SELECT changed.host,
               (SELECT least(min(s.rate_limit), $2::float8) FROM woo_store s
                 WHERE store_budget_host(s.url) = changed.host AND s.rate_limit IS NOT NULL AND s.id <> $1)
        FROM changed
        ON CONFLICT (host) DO UPDATE SET rate_limit = excluded.rate_limit, updated_at = now()
        """,
        store_id, rate_limit,
    )


async def throttles(conn: Executor, urls: list[str]) -> dict[str, Throttle]:
    """The budget state of these stores' hosts, by store URL (stores never throttled are absent)."""
    rows = await conn.fetch(
        """
        SELECT u.url, b.host, CASE WHEN b.held_until > now() THEN b.held_until END AS held_until,
               store_budget_factor(b.slowed_factor, b.slowed_at, $2) AS factor, b.holds
        FROM unnest($1::text[]) AS u(url)
        JOIN store_budget b ON b.host = store_budget_host(u.url)
        """,
        urls, RECOVERY_S,
    )
    return {row["url"]: Throttle(row["host"], row["held_until"], row["factor"], row["holds"]) for row in rows}
