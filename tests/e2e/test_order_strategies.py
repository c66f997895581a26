"""The two order strategies end to end (docs/contract.md section 10): the real producer and
consumers, RabbitMQ, PostgreSQL and a simulated store. `bulk` and `per_customer` give the same
customer rows, each the value computed independently from the store's data, and a bulk sync
asks the store for little more than its pages."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from decimal import Decimal

import httpx
import pytest

from services.status.presenters import queue_status_json
from shared.repository import sync_queues
from shared.settings import Settings
from tests.e2e.test_pipeline import expected_row
from tests.waiting import eventually
from woosync.simulator.data import SimulatedStore

pytestmark = pytest.mark.e2e

TERMINAL = {"done", "failed", "partial", "cancelled"}
# Columns that depend on when the consumer mapped the customer, or that every sync sets anew.
_TIMELESS = lambda row: {k: v for k, v in row.items() if k not in ("id", "created_at", "updated_at", "tags")}  # noqa: E731


async def synced(pipeline, idempotency_key: str, *, timeout: float = 300):
    async def finished():
        for queue in await sync_queues.list_queues(pipeline.pool, pipeline.org_id, limit=50, offset=0):
            if queue.idempotency_key == idempotency_key and queue.state in TERMINAL:
                return queue
        return None

    return await eventually(finished, timeout=timeout, interval=0.2, what=f"sync {idempotency_key} to finish")


async def store_requests(pipeline) -> int:
    """The requests the simulated store has served (counted by the store itself)."""
    async with httpx.AsyncClient() as client:
        stats = (await client.get(f"{pipeline.store_url}/__simulator/stats", timeout=5)).json()
    return stats["requests"]


async def rows_by_customer(pipeline) -> dict[int, dict]:
    rows = await pipeline.pool.fetch("SELECT * FROM customer WHERE org_id = $1", pipeline.org_id)
    return {row["woo_customer_id"]: dict(row) for row in rows}


async def plan_of(pipeline, queue_id):
    return await pipeline.pool.fetchrow(
        "SELECT order_strategy, options, customer_pages_total, customer_pages_done, order_pages_total, "
        "order_pages_done, store_requests FROM woo_customer_sync_queue WHERE id = $1", queue_id)


async def test_bulk_and_per_customer_give_the_same_rows_each_the_independently_computed_value(pipeline):
    customers, seed = 1500, 17
    as_of = datetime.now(timezone.utc).date()
    pipeline.simulator("--valid-emails-only", "--as-of", as_of.isoformat(), customers=customers, seed=seed)
    pipeline.producer()
    pipeline.consumer("consumer-1")
    pipeline.consumer("consumer-2")
    store = SimulatedStore(customers, seed, as_of=as_of, base_url=pipeline.store_url, valid_emails_only=True)
    order_total = store.customer_order_total + store.guest_order_count

    before = await store_requests(pipeline)
    await pipeline.publish(pipeline.request(idempotency_key="bulk", options={"orders": "bulk"}))
    bulk = await synced(pipeline, "bulk")
    bulk_requests = await store_requests(pipeline) - before
    assert bulk.state == "done" and bulk.total_count == customers, bulk
    bulk_rows = await rows_by_customer(pipeline)

    await pipeline.pool.execute("DELETE FROM customer WHERE org_id = $1", pipeline.org_id)
    await pipeline.pool.execute("DELETE FROM woo_order")
    before = await store_requests(pipeline)
    await pipeline.publish(pipeline.request(idempotency_key="per-customer", options={"orders": "per_customer"}))
    per_customer = await synced(pipeline, "per-customer")
    per_customer_requests = await store_requests(pipeline) - before
    assert per_customer.state == "done" and per_customer.total_count == customers, per_customer
    per_customer_rows = await rows_by_customer(pipeline)

    assert sorted(bulk_rows) == sorted(per_customer_rows) == list(store.customer_ids("all"))
    wrong = []
    for woo_id in store.customer_ids("all"):
        expected = expected_row(store.customer(woo_id), store.orders_for(woo_id), org_id=pipeline.org_id,
                                store_url=pipeline.store_url)
        for name, rows in (("bulk", bulk_rows), ("per_customer", per_customer_rows)):
            wrong += [(name, woo_id, column, rows[woo_id][column], want) for column, want in expected.items()
                      if rows[woo_id][column] != want]
        if _TIMELESS(bulk_rows[woo_id]) != _TIMELESS(per_customer_rows[woo_id]) \
                or set(bulk_rows[woo_id]["tags"]) != set(per_customer_rows[woo_id]["tags"]):
            wrong.append(("bulk != per_customer", woo_id))
    assert not wrong, f"{len(wrong)} wrong values, the first: {wrong[:10]}"

    # Store requests, counted at the store: bulk needs its pages and a few more.
    assert bulk_requests <= math.ceil(customers / 100) + math.ceil(order_total / 100) + 3, bulk_requests
    assert per_customer_requests >= customers
    plan = await plan_of(pipeline, bulk.id)
    assert plan["order_strategy"] == "bulk" and plan["options"]["orders"] == "bulk"
    assert plan["order_pages_done"] == plan["order_pages_total"] == math.ceil(order_total / 100)
    assert plan["customer_pages_done"] == plan["customer_pages_total"] == math.ceil(customers / 100)
    assert plan["store_requests"] == bulk_requests
    plan = await plan_of(pipeline, per_customer.id)
    assert plan["order_strategy"] == "per_customer" and plan["store_requests"] == per_customer_requests


async def test_auto_takes_bulk_for_a_whole_store_and_per_customer_for_one_customer(pipeline):
    pipeline.simulator("--valid-emails-only", customers=300, seed=8)
    pipeline.producer()
    pipeline.consumer()
    before = await store_requests(pipeline)
    await pipeline.publish(pipeline.request(idempotency_key="auto"))
    whole = await synced(pipeline, "auto")
    requests = await store_requests(pipeline) - before
    store = SimulatedStore(300, 8, valid_emails_only=True)
    order_total = store.customer_order_total + store.guest_order_count
    assert whole.state == "done" and whole.total_count == 300
    assert (await plan_of(pipeline, whole.id))["order_strategy"] == "bulk"
    assert requests <= 3 + math.ceil(order_total / 100) + 3
    # The status object shows the resolved options and the plan.
    shown = queue_status_json(await sync_queues.queue_status(pipeline.pool, whole.id, pipeline.org_id))
    assert shown["options"]["orders"] == "bulk"
    assert shown["plan"] == {"orders": "bulk", "store_requests": requests, "pages": {
        "customers": {"total": 3, "done": 3}, "orders": {"total": math.ceil(order_total / 100),
                                                       "done": math.ceil(order_total / 100)}}}

    await pipeline.publish(pipeline.request(idempotency_key="one", options={"woo_customer_id": 5}))
    one = await synced(pipeline, "one")
    assert one.state == "done" and one.total_count == 1
    assert (await plan_of(pipeline, one.id))["order_strategy"] == "per_customer"


@pytest.mark.parametrize("strategy", ["bulk", "per_customer"])
async def test_a_refund_or_a_status_change_synced_again_changes_the_lifetime_value(pipeline, strategy):
    as_of = datetime.now(timezone.utc).date()
    pipeline.simulator("--valid-emails-only", "--as-of", as_of.isoformat(), customers=200, seed=23)
    pipeline.producer()
    pipeline.consumer()
    store = SimulatedStore(200, 23, as_of=as_of, base_url=pipeline.store_url, valid_emails_only=True)
    await pipeline.publish(pipeline.request(idempotency_key="first", options={"orders": strategy}))
    assert (await synced(pipeline, "first")).state == "done"
    before = await rows_by_customer(pipeline)

    paid = [(woo_id, order) for woo_id in store.customer_ids("all") for order in store.orders_for(woo_id)
            if order["status"] == "completed" and not order["refunds"] and Decimal(order["total"]) > 20]
    (refunded_customer, refunded_order), (cancelled_customer, cancelled_order) = \
        paid[0], next(p for p in paid if p[0] != paid[0][0])
    changes = {refunded_order["id"]: {"refunds": [{"id": 9_999_999, "reason": "damaged", "total": "-10.00"}]},
               cancelled_order["id"]: {"status": "cancelled"}}
    async with httpx.AsyncClient() as client:
        for order_id, change in changes.items():
            (await client.post(f"{pipeline.store_url}/__simulator/orders/{order_id}", json=change, timeout=10)).raise_for_status()
            store.change_order(order_id, change)

    await pipeline.publish(pipeline.request(idempotency_key="again", options={"orders": strategy}))
    assert (await synced(pipeline, "again")).state == "done"
    after = await rows_by_customer(pipeline)

    assert after[refunded_customer]["lifetime_value"] == before[refunded_customer]["lifetime_value"] - Decimal("10.00")
    assert after[cancelled_customer]["lifetime_value"] == \
        before[cancelled_customer]["lifetime_value"] - Decimal(cancelled_order["total"])
    assert after[cancelled_customer]["metadata"]["completed_orders"] == \
        before[cancelled_customer]["metadata"]["completed_orders"] - 1
    for woo_id in (refunded_customer, cancelled_customer):
        expected = expected_row(store.customer(woo_id), store.orders_for(woo_id), org_id=pipeline.org_id,
                                store_url=pipeline.store_url)
        assert {column: after[woo_id][column] for column in expected} == expected


async def test_sigkill_of_the_producer_mid_bulk_paging_resumes_at_the_pages_not_yet_done(pipeline):
    customers, seed = 2000, 31
    as_of = datetime.now(timezone.utc).date()
    # Slow answers: the order pages take several seconds, long enough to kill the producer among them.
    pipeline.simulator("--valid-emails-only", "--as-of", as_of.isoformat(), "--latency-ms", "150",
                       customers=customers, seed=seed)
    # A short lease: the killed producer's pages are taken over within seconds.
    producer = pipeline.producer(WOOSYNC_PAGE_LEASE_S="3")
    pipeline.consumer()
    store = SimulatedStore(customers, seed, as_of=as_of, base_url=pipeline.store_url, valid_emails_only=True)
    order_total = store.customer_order_total + store.guest_order_count
    order_pages = math.ceil(order_total / 100)
    await pipeline.publish(pipeline.request(idempotency_key="killed", options={"orders": "bulk"}))

    async def mid_paging():
        row = await pipeline.pool.fetchrow(
            "SELECT q.id, count(p.*) AS order_pages_done FROM woo_customer_sync_queue q "
            "JOIN woo_sync_page p ON p.queue_id = q.id AND p.kind = 'orders' AND p.state = 'done' "
            "WHERE q.org_id = $1 GROUP BY q.id", pipeline.org_id)
        return row if row and 5 <= row["order_pages_done"] < order_pages - 10 else None

    queue_row = await eventually(mid_paging, timeout=120, interval=0.02, what="the producer to be mid order paging")
    producer.kill()
    done_before = await pipeline.pool.fetchval(
        "SELECT count(*) FROM woo_sync_page WHERE queue_id = $1 AND kind = 'orders' AND state = 'done'", queue_row["id"])
    pipeline.producer("producer-2", WOOSYNC_PAGE_LEASE_S="3")
    queue = await synced(pipeline, "killed")
    assert queue.state == "done" and queue.total_count == customers, queue

    async with httpx.AsyncClient() as client:
        stats = (await client.get(f"{pipeline.store_url}/__simulator/stats", timeout=5)).json()
    order_requests = sum(stats["by_route"]["orders"].values())
    # Every page once, plus the few the killed producer had in flight (their answers never committed).
    assert order_requests <= order_pages + Settings().sync_pages_in_flight, (order_requests, order_pages, done_before)
    assert done_before >= 5
    pages = await pipeline.pool.fetch(
        "SELECT page FROM woo_sync_page WHERE queue_id = $1 AND kind = 'orders' ORDER BY page", queue.id)
    assert [row["page"] for row in pages] == list(range(1, order_pages + 1))
    # Nothing missing or doubled: every order once in the mirror, every customer's row right.
    assert await pipeline.pool.fetchval("SELECT count(*) FROM woo_order WHERE NOT gone") == order_total
    rows = await rows_by_customer(pipeline)
    assert sorted(rows) == list(store.customer_ids("all"))
    wrong = []
    for woo_id in store.customer_ids("all"):
        expected = expected_row(store.customer(woo_id), store.orders_for(woo_id), org_id=pipeline.org_id,
                                store_url=pipeline.store_url)
        wrong += [(woo_id, column) for column, want in expected.items() if rows[woo_id][column] != want]
    assert not wrong, wrong[:10]
