"""Incremental sweeps end to end (docs/contract.md section 10): the real producer and consumers,
RabbitMQ, PostgreSQL and a simulated store whose orders change after a full sync. A sweep syncs
exactly the customers the changes affect, each row the value computed independently from the
store's data, and asks the store for little more than the changed orders' pages."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from tests.e2e.test_order_strategies import rows_by_customer, synced
from tests.e2e.test_pipeline import expected_row
from woosync.simulator.data import SimulatedStore

pytestmark = pytest.mark.e2e


async def stats(pipeline) -> dict:
    # Slow once orders changed: the store's summary in it is computed again.
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{pipeline.store_url}/__simulator/stats", timeout=120)).json()


async def store_requests(pipeline) -> int:
    """The requests the simulated store has served (counted by the store itself)."""
    return (await stats(pipeline))["requests"]


async def routes(pipeline) -> dict:
    return (await stats(pipeline))["by_route"]


async def line_customers(pipeline, queue_id) -> set[int]:
    rows = await pipeline.pool.fetch("SELECT woo_customer_id FROM woo_customer_sync_queue_line WHERE queue_id = $1",
                                     queue_id)
    return {row["woo_customer_id"] for row in rows}


async def assert_only_the_affected_rows_changed(pipeline, store, affected: set[int], before_rows: dict) -> None:
    """Each affected customer's row equals an independent computation from the store's data; no
    other row was written (its updated_at stands)."""
    after = await rows_by_customer(pipeline)
    wrong = []
    for woo_id in affected:
        expected = expected_row(store.customer(woo_id), store.orders_for(woo_id), org_id=pipeline.org_id,
                                store_url=pipeline.store_url)
        wrong += [(woo_id, column, after[woo_id][column], want) for column, want in expected.items()
                  if after[woo_id][column] != want]
    assert not wrong, f"{len(wrong)} wrong values, the first: {wrong[:10]}"
    untouched = [woo_id for woo_id in before_rows if woo_id not in affected
                 and after[woo_id]["updated_at"] != before_rows[woo_id]["updated_at"]]
    assert not untouched, untouched[:10]


async def test_a_sweep_syncs_exactly_the_customers_changed_orders_and_new_registrations_affect(pipeline):
    customers, seed = 1000, 31
    as_of = datetime.now(timezone.utc).date() - timedelta(days=1)  # every generated date well before the sweeps
    pipeline.simulator("--valid-emails-only", "--as-of", as_of.isoformat(), customers=customers, seed=seed)
    # The simulator filters by modification date over every order's document, slow once orders
    # changed (its caches start again): the producer waits for it longer than the suite's 5 s.
    pipeline.producer(WOOSYNC_STORE_TIMEOUT_S="60")
    pipeline.consumer("consumer-1")
    pipeline.consumer("consumer-2")
    store = SimulatedStore(customers, seed, as_of=as_of, base_url=pipeline.store_url, valid_emails_only=True)

    # A store never swept: an incremental request is a full sync with every order mirrored.
    await pipeline.publish(pipeline.request(idempotency_key="first", options={"mode": "incremental"}))
    first = await synced(pipeline, "first")
    assert first.state == "done" and first.total_count == customers, first
    sweep = await pipeline.pool.fetchrow("SELECT * FROM woo_store_sweep")
    assert sweep["highest_customer_id"] == customers and sweep["queue_id"] == first.id

    # Nothing changed: three requests (connection test, an empty order page, a customer page).
    before, before_routes = await store_requests(pipeline), await routes(pipeline)
    await pipeline.publish(pipeline.request(idempotency_key="unchanged", options={"mode": "incremental"}))
    unchanged = await synced(pipeline, "unchanged")
    assert unchanged.state == "done" and unchanged.total_count == 0, unchanged
    assert await store_requests(pipeline) - before <= 3, (before_routes, await routes(pipeline))
    moved = await pipeline.pool.fetchrow("SELECT * FROM woo_store_sweep")
    assert moved["watermark"] > sweep["watermark"] and moved["queue_id"] == unchanged.id

    # 1% of the orders change (a cancellation or a refund, now): fewer than 100, so their customers
    # are fetched in one request; ten customers "register" (the sweep's record says it saw up to
    # id customers - 10).
    rng = random.Random(5)
    owned = [(woo_id, order) for woo_id in store.customer_ids("all") for order in store.orders_for(woo_id)]
    changed = rng.sample(owned, max(1, len(owned) // 100))
    assert len(changed) <= 100
    now = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None).isoformat()
    async with httpx.AsyncClient() as client:
        for i, (_, order) in enumerate(changed):
            change = ({"status": "cancelled"} if i % 2 else
                      {"refunds": [{"id": 9_000_000 + i, "reason": "damaged", "total": "-1.00"}]})
            change["date_modified_gmt"] = now
            (await client.post(f"{pipeline.store_url}/__simulator/orders/{order['id']}", json=change,
                               timeout=60)).raise_for_status()
            store.change_order(order["id"], change)
    await pipeline.pool.execute("UPDATE woo_store_sweep SET highest_customer_id = $1", customers - 10)
    affected = {woo_id for woo_id, _ in changed} | set(range(customers - 9, customers + 1))

    before_rows = await rows_by_customer(pipeline)
    before = await store_requests(pipeline)
    await pipeline.publish(pipeline.request(idempotency_key="sweep", options={"mode": "incremental"}))
    swept = await synced(pipeline, "sweep")
    requests = await store_requests(pipeline) - before
    assert swept.state == "done", swept
    assert await line_customers(pipeline, swept.id) == affected
    assert requests <= math.ceil(len(changed) / 100) + 3, requests

    await assert_only_the_affected_rows_changed(pipeline, store, affected, before_rows)
    plan = await pipeline.pool.fetchrow("SELECT order_strategy, options, store_requests FROM woo_customer_sync_queue "
                                        "WHERE id = $1", swept.id)
    assert plan["order_strategy"] == "bulk" and plan["options"]["mode"] == "incremental"
    assert plan["store_requests"] == requests


async def test_a_sweep_after_one_percent_of_a_big_stores_orders_changed_stays_within_its_request_bound(pipeline):
    """The issue's bound: after 1% of a 20,000-customer store's orders changed, a sweep syncs exactly
    the affected customers with at most ceil(changed orders / 100) + 3 store requests. Customers
    already seen come from the customer-document mirror; only those never seen are asked for."""
    customers, seed = 20_000, 47
    as_of = datetime.now(timezone.utc).date() - timedelta(days=1)
    pipeline.simulator("--valid-emails-only", "--as-of", as_of.isoformat(), customers=customers, seed=seed)
    pipeline.producer(WOOSYNC_STORE_TIMEOUT_S="60")
    pipeline.consumer("consumer-1")
    pipeline.consumer("consumer-2")
    store = SimulatedStore(customers, seed, as_of=as_of, base_url=pipeline.store_url, valid_emails_only=True)

    await pipeline.publish(pipeline.request(idempotency_key="full", options={"orders": "bulk"}))
    full = await synced(pipeline, "full", timeout=300)
    assert full.state == "done" and full.total_count == customers, full
    assert await pipeline.pool.fetchval("SELECT count(*) FROM woo_customer_document") == customers

    # 1% of every order of the store (guest orders included: they affect no customer) changes now.
    rng = random.Random(11)
    every_order = store.all_orders_index()  # (created, order id, customer id, status)
    changed = rng.sample(every_order, len(every_order) // 100)
    now = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None).isoformat()
    async with httpx.AsyncClient() as client:
        for i, (_, order_id, _, _) in enumerate(changed):
            change = ({"status": "cancelled"} if i % 2 else
                      {"refunds": [{"id": 9_000_000 + i, "reason": "damaged", "total": "-1.00"}]})
            change["date_modified_gmt"] = now
            (await client.post(f"{pipeline.store_url}/__simulator/orders/{order_id}", json=change,
                               timeout=60)).raise_for_status()
            store.change_order(order_id, change)
    # Ten customers "register" (the sweep's record says it saw up to id customers - 10), and three
    # affected customers were never seen (their documents are not in the mirror): one request by id.
    await pipeline.pool.execute("UPDATE woo_store_sweep SET highest_customer_id = $1", customers - 10)
    by_orders = {customer_id for _, _, customer_id, _ in changed} - {0}
    never_seen = sorted(by_orders - set(range(customers - 9, customers + 1)))[:3]
    await pipeline.pool.execute("DELETE FROM woo_customer_document WHERE woo_customer_id = ANY($1::bigint[])",
                                never_seen)
    affected = by_orders | set(range(customers - 9, customers + 1))

    before_rows = await rows_by_customer(pipeline)
    before, before_routes = await store_requests(pipeline), await routes(pipeline)
    await pipeline.publish(pipeline.request(idempotency_key="sweep", options={"mode": "incremental"}))
    swept = await synced(pipeline, "sweep", timeout=300)
    requests = await store_requests(pipeline) - before
    assert swept.state == "done", swept
    assert await line_customers(pipeline, swept.id) == affected
    assert requests <= math.ceil(len(changed) / 100) + 3, (len(changed), requests, before_routes, await routes(pipeline))
    plan = await pipeline.pool.fetchrow("SELECT store_requests FROM woo_customer_sync_queue WHERE id = $1", swept.id)
    assert plan["store_requests"] == requests

    await assert_only_the_affected_rows_changed(pipeline, store, affected, before_rows)
    # The customers never seen are in the mirror now.
    assert await pipeline.pool.fetchval("SELECT count(*) FROM woo_customer_document") == customers
