"""Where each store's next incremental sweep starts (sql/010_sweeps_schedules.sql;
docs/contract.md section 10).

A store's sweep row moves only when a sync completes its enumeration: an incremental sweep, or a
full sync that mirrored every order of the store (bulk, whole store). The watermark is that
sync's start (its queue's `created_at`, the database's clock): every order modified before it
is in the mirror.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
    lower)."""
    await conn.execute(
        """
        INSERT INTO woo_store_sweep AS s (store_id, org_id, watermark, highest_customer_id, queue_id)
        SELECT $1, $2, q.created_at,
               coalesce((SELECT max(woo_customer_id) FROM woo_customer_sync_queue_line WHERE queue_id = q.id), 0), q.id
          FROM woo_customer_sync_queue q WHERE q.id = $3 AND q.org_id = $2
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


async def freshness(conn: Executor, store_ids: Iterable[UUID]) -> dict[UUID, datetime]:
    """When each store's last sweep completed (stores never swept are absent)."""
    rows = await conn.fetch("SELECT store_id, completed_at FROM woo_store_sweep WHERE store_id = ANY($1::uuid[])",
                            list(store_ids))
    return {row["store_id"]: row["completed_at"] for row in rows}
