"""A sync's plan and its enumeration's pages (sql/005_order_mirror.sql; docs/contract.md section 10).

The plan is kept on the queue row: the order strategy chosen, how many pages of customers and of
orders the store has and how many are done, and the store requests the sync has made. Each page
of the enumeration is recorded in `woo_sync_page` once its work is committed, in the same
transaction: a producer that restarts skips the pages already done.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from shared.repository.sql import Executor

BULK = "bulk"
PER_CUSTOMER = "per_customer"
OrderStrategy = Literal["bulk", "per_customer"]
PageKind = Literal["customers", "orders"]


@dataclass(frozen=True, slots=True)
class Plan:
    order_strategy: str | None
    customer_pages_total: int | None
    customer_pages_done: int
    order_pages_total: int | None
    order_pages_done: int
    store_requests: int
    orders_mirrored: bool


async def order_strategies(conn: Executor, queue_ids: Iterable[UUID]) -> dict[UUID, str | None]:
    """Each queue's order strategy (None: not chosen yet, or a queue from before the mirror)."""
    rows = await conn.fetch("SELECT id, order_strategy FROM woo_customer_sync_queue WHERE id = ANY($1::uuid[])",
                            list(queue_ids))
    return {row["id"]: row["order_strategy"] for row in rows}


async def set_plan(conn: Executor, queue_id: UUID, org_id: UUID, *, order_strategy: str, options: Mapping,
                   customer_pages_total: int | None, order_pages_total: int | None, store_requests: int) -> None:
    """Record the strategy chosen (also in the queue's resolved `options`) and the pages ahead.
    Kept when a plan is already recorded (a redelivered request resumes the same plan)."""
    await conn.execute(
        """
        UPDATE woo_customer_sync_queue
           SET order_strategy = $3, options = options || $4::jsonb,
               customer_pages_total = $5, order_pages_total = $6, store_requests = store_requests + $7
         WHERE id = $1 AND org_id = $2 AND order_strategy IS NULL
        """,
        queue_id, org_id, order_strategy, dict(options), customer_pages_total, order_pages_total, store_requests,
    )


async def plan_of(conn: Executor, queue_id: UUID) -> Plan | None:
    row = await conn.fetchrow(
        """
        SELECT order_strategy, customer_pages_total, customer_pages_done, order_pages_total, order_pages_done,
               store_requests, orders_mirrored
          FROM woo_customer_sync_queue WHERE id = $1
        """, queue_id)
    return Plan(**dict(row)) if row is not None else None


async def done_pages(conn: Executor, queue_id: UUID, kind: PageKind) -> set[int]:
    rows = await conn.fetch("SELECT page FROM woo_sync_page WHERE queue_id = $1 AND kind = $2", queue_id, kind)
    return {row["page"] for row in rows}


async def record_page_done(conn: Executor, queue_id: UUID, kind: PageKind, page: int, *, row_count: int,
                           store_requests: int = 1) -> bool:
    """Record a page as done, with the store requests it took; False when it already was (then
    nothing changes). Call it in the transaction that committed the page's work."""
    inserted = await conn.fetchval(
        """
        INSERT INTO woo_sync_page (queue_id, kind, page, row_count) VALUES ($1, $2, $3, $4)
        ON CONFLICT DO NOTHING RETURNING true
        """,
        queue_id, kind, page, row_count,
    )
    if not inserted:
        return False
    column = "customer_pages_done" if kind == "customers" else "order_pages_done"
    await conn.execute(
        f"UPDATE woo_customer_sync_queue SET {column} = {column} + 1, store_requests = store_requests + $2 WHERE id = $1",
        queue_id, store_requests,
    )
    return True


async def set_pages_total(conn: Executor, queue_id: UUID, kind: PageKind, total: int) -> None:
    """The store's page count, as the latest answer said it."""
    column = "customer_pages_total" if kind == "customers" else "order_pages_total"
    await conn.execute(f"UPDATE woo_customer_sync_queue SET {column} = $2 WHERE id = $1", queue_id, total)


async def mark_orders_mirrored(conn: Executor, queue_id: UUID) -> None:
    await conn.execute("UPDATE woo_customer_sync_queue SET orders_mirrored = true WHERE id = $1", queue_id)


async def add_store_requests(conn: Executor, requests: Mapping[UUID, int]) -> None:
    """Add store requests made for each queue (consumers' per-customer order requests)."""
    queue_ids = sorted(requests)
    await conn.execute(
        """
        UPDATE woo_customer_sync_queue q SET store_requests = q.store_requests + r.n
          FROM unnest($1::uuid[], $2::bigint[]) AS r(id, n) WHERE q.id = r.id
        """,
        queue_ids, [requests[queue_id] for queue_id in queue_ids],
    )


async def fail_draft_lines(conn: Executor, queue_id: UUID, org_id: UUID, error: str) -> int:
    """Lines still in draft that will never be published (a bulk sync whose order pages failed)
    fail with the sync's error, so the queue ends failed instead of waiting forever."""
    status = await conn.execute(
        """
        UPDATE woo_customer_sync_queue_line
           SET state = 'failed', error_message = $3, updated_at = now()
         WHERE queue_id = $1 AND org_id = $2 AND state = 'draft'
        """,
        queue_id, org_id, error,
    )
    return int(status.rsplit(" ", 1)[-1])
