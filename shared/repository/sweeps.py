"""Where each store's next incremental sweep starts (sql/010_sweeps_schedules.sql;
docs/contract.md section 10).

A store's sweep row moves only when a sync completes its enumeration: an incremental sweep, or a
full sync that mirrored every order of the store (bulk, whole store). The watermark is that
sync's start (its queue's `created_at`, the database's clock): every order modified before it
is in the mirror.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from shared.repository.sql import Executor


@dataclass(frozen=True, slots=True)
class Sweep:
    watermark: datetime
    highest_customer_id: int
    completed_at: datetime


async def last_sweep(conn: Executor, store_id: UUID) -> Sweep | None:
    row = await conn.fetchrow(
        "SELECT watermark, highest_customer_id, completed_at FROM woo_store_sweep WHERE store_id = $1", store_id)
    return Sweep(**dict(row)) if row is not None else None


async def record_sweep(conn: Executor, *, store_id: UUID, org_id: UUID, queue_id: UUID) -> None:
    """The sync `queue_id` completed its enumeration: the store's watermark becomes the queue's
    start (never earlier than it was) and the highest customer id the highest of its lines (never
    lower). A preview moves nothing: it wrote no customer, so what it saw is still to be synced."""
    await conn.execute(
        """
        INSERT INTO woo_store_sweep AS s (store_id, org_id, watermark, highest_customer_id, queue_id)
        SELECT $1, $2, q.created_at,
               coalesce((SELECT max(woo_customer_id) FROM woo_customer_sync_queue_line WHERE queue_id = q.id), 0), q.id
          FROM woo_customer_sync_queue q WHERE q.id = $3 AND q.org_id = $2 AND q.kind = 'sync'
        ON CONFLICT (store_id) DO UPDATE SET
            watermark = greatest(s.watermark, EXCLUDED.watermark),
            highest_customer_id = greatest(s.highest_customer_id, EXCLUDED.highest_customer_id),
            queue_id = EXCLUDED.queue_id,
            completed_at = now()
        """,
        store_id, org_id, queue_id,
    )


async def previous_owners(conn: Executor, store_id: UUID, order_ids: Sequence[int]) -> set[int]:
    """The customers the mirror gives these orders to now (an order given to another customer
    changes the figures of both)."""
    if not order_ids:
        return set()
    rows = await conn.fetch(
        "SELECT DISTINCT customer_id FROM woo_order WHERE store_id = $1 AND woo_order_id = ANY($2::bigint[])",
        store_id, list(order_ids))
    return {row["customer_id"] for row in rows}


# A store with an enabled incremental schedule is overdue when its last completed sweep is older
# than OVERDUE_INTERVALS of the schedule's interval, and at least OVERDUE_MIN_S (a sweep takes
# time to run; docs/contract.md section 10, "Freshness").
OVERDUE_INTERVALS = 2
OVERDUE_MIN_S = 600

# Seconds since the store's last completed sweep (or full bulk sync); a store with an enabled
# incremental schedule but no sweep yet counts from the schedule's creation.
_AGE = "extract(epoch FROM now() - coalesce(w.completed_at, sch.created_at))"
_OVERDUE = (f"(sch.every_s IS NOT NULL AND {_AGE} > "
            f"greatest({OVERDUE_INTERVALS} * sch.every_s, {OVERDUE_MIN_S}))")
_FRESHNESS_FROM = """
      FROM woo_store s
      LEFT JOIN woo_store_sweep w ON w.store_id = s.id
      LEFT JOIN woo_sync_schedule sch ON sch.store_id = s.id AND sch.kind = 'incremental' AND sch.enabled
"""


@dataclass(frozen=True, slots=True)
class StoreFreshness:
    """How current a store's customers are in Postgres: its last completed sweep (an incremental
    sweep, or a full bulk sync of the whole store, which sets the watermark too)."""

    store_id: UUID
    url: str
    last_sweep_at: datetime | None
    seconds_since_sweep: float | None
    watermark: datetime | None
    sweep_every_s: int | None  # the enabled incremental schedule's interval; None without one
    overdue: bool


@dataclass(frozen=True, slots=True)
class FleetFreshness:
    """Over every store with an enabled incremental schedule, of every organisation (metrics)."""

    oldest_age_s: float  # seconds since the last sweep of the store swept longest ago; 0 when none
    overdue_stores: int


async def freshness(conn: Executor, org_id: UUID, *, limit: int, offset: int) -> list[StoreFreshness]:
    """The organisation's stores by URL, each with its last completed sweep and whether it is overdue."""
    rows = await conn.fetch(
        f"""
        SELECT s.id AS store_id, s.url, w.completed_at AS last_sweep_at,
               extract(epoch FROM now() - w.completed_at)::float8 AS seconds_since_sweep,
               w.watermark, sch.every_s AS sweep_every_s, {_OVERDUE} AS overdue
        {_FRESHNESS_FROM}
         WHERE s.org_id = $1
         ORDER BY s.url, s.id
         LIMIT $2 OFFSET $3
        """,
        org_id, limit, offset)
    return [StoreFreshness(**dict(row)) for row in rows]


async def fleet_freshness(conn: Executor) -> FleetFreshness:
    row = await conn.fetchrow(
        f"""
        SELECT coalesce(max({_AGE}), 0)::float8 AS oldest_age_s, count(*) FILTER (WHERE {_OVERDUE}) AS overdue_stores
        {_FRESHNESS_FROM}
         WHERE sch.every_s IS NOT NULL
        """)
    return FleetFreshness(**dict(row))
