"""The order mirror (sql/005_order_mirror.sql; docs/architecture.md "Orders: the mirror").

Two ways fill it, one reads it:
- `record_orders`: orders of a store as the store listed them (a bulk page, or one customer's
  whole listing), upserted: an order seen again takes its new status, total and refunds.
- `forget_customers_other_orders` / `forget_orders_not_seen`: orders a customer's listing, or a
  full bulk pass, no longer holds are marked gone and stop counting.
- `order_summaries`: the aggregate of docs/contract.md section 5 for a batch of customers, in one
  statement, by the rules of `shared.mapping.summarize_orders`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from shared.mapping import EMPTY_SUMMARY, PAID_STATUSES, MirroredOrder, OrderSummary
from shared.repository.sql import Executor, rows_affected

_PAID = sorted(PAID_STATUSES)

# Orders sorted by id, so that two writers of overlapping orders lock rows in the same order.
# Dates come as naive UTC (MirroredOrder) and are read as UTC here, whatever the process's zone.
# The rows travel as one jsonb array ($3), which PostgreSQL takes apart in C: as thirteen
# parameter arrays, their encoding cost the producer about 15 us of CPU per order (asyncpg
# encodes numeric through Python), half a bulk page's work. Amounts travel as strings: exact.
_RECORD_ORDERS = """
INSERT INTO woo_order AS o (store_id, org_id, woo_order_id, customer_id, billing_email, status, total, refunded,
                            date_created_gmt, date_modified_gmt, money_problem, date_problem, seen_by_queue)
SELECT $1, $2, w.id, w.customer, w.email, w.status, w.total, w.refunded,
       w.created AT TIME ZONE 'UTC', w.modified AT TIME ZONE 'UTC', w.money_problem, w.date_problem, $4
  FROM jsonb_to_recordset($3::jsonb)
    AS w(id bigint, customer bigint, email text, status text, total numeric, refunded numeric, created timestamp,
         modified timestamp, money_problem text, date_problem text)
ORDER BY w.id
ON CONFLICT (store_id, woo_order_id) DO UPDATE SET
    customer_id = EXCLUDED.customer_id,
    billing_email = coalesce(EXCLUDED.billing_email, o.billing_email),
    status = EXCLUDED.status,
    total = EXCLUDED.total,
    refunded = EXCLUDED.refunded,
    date_created_gmt = EXCLUDED.date_created_gmt,
    date_modified_gmt = EXCLUDED.date_modified_gmt,
    money_problem = EXCLUDED.money_problem,
    date_problem = EXCLUDED.date_problem,
    seen_by_queue = coalesce(EXCLUDED.seen_by_queue, o.seen_by_queue),
    gone = false,
    updated_at = now()
"""

# min() of the problems: when several orders of a customer are unreadable, one names them all
# the same way whichever strategy filled the mirror.
_ORDER_SUMMARIES = f"""
SELECT o.store_id, o.customer_id,
       coalesce(sum(o.total - o.refunded) FILTER (WHERE o.status = ANY('{{{",".join(_PAID)}}}'::text[])), 0) AS paid_value,
       count(*) FILTER (WHERE o.status = 'completed') AS completed_orders,
       count(*) AS total_orders,
       min(o.date_created_gmt) AS earliest,
       max(o.date_created_gmt) AS latest,
       coalesce(min(o.money_problem) FILTER (WHERE o.status = ANY('{{{",".join(_PAID)}}}'::text[])),
                min(o.date_problem)) AS problem
  FROM unnest($1::uuid[], $2::bigint[]) AS wanted(store_id, customer_id)
  JOIN woo_order o ON o.store_id = wanted.store_id AND o.customer_id = wanted.customer_id AND NOT o.gone
 GROUP BY o.store_id, o.customer_id
"""


# The orders to forget are found by one index probe per listed customer (the OFFSET 0 keeps the
# probe a nested loop whatever the statistics say) and the kept ids as a hashed anti-join; they
# are then marked by primary key. One UPDATE with `customer_id = ANY($2) AND woo_order_id <> ALL($3)`
# was planned while a new store's mirror had no statistics yet (every order looks like 0.5% of
# them): it scanned all the store's orders for each batch, 11 ms at the start of a 20,000-customer
# sync and 130 ms at its end, and compared each order with every kept id.
_CUSTOMERS_OTHER_ORDERS = """
SELECT f.woo_order_id
  FROM unnest($2::bigint[]) AS c(id)
 CROSS JOIN LATERAL (SELECT o.woo_order_id FROM woo_order o
                      WHERE o.store_id = $1 AND o.customer_id = c.id AND NOT o.gone OFFSET 0) AS f
 WHERE NOT EXISTS (SELECT 1 FROM unnest($3::bigint[]) AS kept(id) WHERE kept.id = f.woo_order_id)
"""
# The customer is checked again: an order given to another customer meanwhile is not theirs to forget.
_FORGET_ORDERS = """
UPDATE woo_order SET gone = true, updated_at = now()
 WHERE store_id = $1 AND woo_order_id = ANY($2::bigint[]) AND customer_id = ANY($3::bigint[]) AND NOT gone
"""


async def record_orders(conn: Executor, *, store_id: UUID, org_id: UUID, orders: Iterable[MirroredOrder],
                        queue_id: UUID | None = None) -> int:
    """Upsert orders into the mirror (an order listed twice: the last copy wins). How many."""
    by_id = {order.order_id: order for order in orders}
    if not by_id:
        return 0
    rows = [
        {"id": o.order_id, "customer": o.customer_id, "email": o.billing_email, "status": o.status,
         "total": None if o.total is None else str(o.total), "refunded": str(o.refunded),
         "created": o.date_created_gmt, "modified": o.date_modified_gmt,
         "money_problem": o.money_problem, "date_problem": o.date_problem}
        for o in (by_id[order_id] for order_id in sorted(by_id))
    ]
    await conn.execute(_RECORD_ORDERS, store_id, org_id, rows, queue_id)
    return len(rows)


async def forget_customers_other_orders(conn: Executor, store_id: UUID, listings: Sequence[tuple[int, Sequence[int]]]) -> int:
    """Each (customer, order ids of its whole listing): the customer's other orders in the mirror
    are gone (deleted, or given to another customer: then they come back with that one)."""
    if not listings:
        return 0
    customers = sorted({customer for customer, _ in listings})
    keep = [order_id for _, order_ids in listings for order_id in order_ids]
    gone = [row["woo_order_id"] for row in await conn.fetch(_CUSTOMERS_OTHER_ORDERS, store_id, customers, keep)]
    if not gone:
        return 0
    return rows_affected(await conn.execute(_FORGET_ORDERS, store_id, sorted(gone), customers))


async def forget_orders_not_seen(conn: Executor, store_id: UUID, since: datetime) -> int:
    """After a full bulk pass that started at `since`: the store's orders not written since (by
    this pass, or any other sync meanwhile) are gone."""
    status = await conn.execute(
        """
        UPDATE woo_order SET gone = true, updated_at = now()
         WHERE store_id = $1 AND NOT gone AND updated_at < $2
        """,
        store_id, since,
    )
    return rows_affected(status)


async def order_summaries(conn: Executor, customers: Sequence[tuple[UUID, int]]) -> dict[tuple[UUID, int], OrderSummary]:
    """The orders' summary of each (store, customer); a customer without orders in the mirror
    gets EMPTY_SUMMARY. One statement for the whole batch."""
    if not customers:
        return {}
    rows = await conn.fetch(_ORDER_SUMMARIES, [store for store, _ in customers], [woo_id for _, woo_id in customers])
    summaries = dict.fromkeys(customers, EMPTY_SUMMARY)
    for row in rows:
        summaries[(row["store_id"], row["customer_id"])] = OrderSummary(
            paid_value=Decimal(row["paid_value"]),
            completed_orders=row["completed_orders"],
            total_orders=row["total_orders"],
            earliest=row["earliest"],
            latest=row["latest"],
            problem=row["problem"],
        )
    return summaries


async def mirrored_order_count(conn: Executor, store_id: UUID, *, queue_id: UUID | None = None) -> int:
    """Orders of the store in the mirror that count (seen by `queue_id`, when given)."""
    if queue_id is None:
        return await conn.fetchval("SELECT count(*) FROM woo_order WHERE store_id = $1 AND NOT gone", store_id)
    return await conn.fetchval(
        "SELECT count(*) FROM woo_order WHERE store_id = $1 AND NOT gone AND seen_by_queue = $2", store_id, queue_id)
