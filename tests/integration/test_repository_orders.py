"""The order mirror (shared/repository/orders.py) on the real database: its aggregate equals the
mapping's own summary of the same orders, an order seen again takes its new status and refunds,
and orders a listing no longer holds stop counting."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from shared import organizations
from shared.mapping import EMPTY_SUMMARY, map_customer, map_customer_summary, mirror_order, summarize_orders
from shared.repository import orders, stores
from woosync.simulator.data import SimulatedStore

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 25, tzinfo=timezone.utc)


async def _store(conn):
    org_id, _ = await organizations.create_organization(conn, name="mirror")
    store_id = await stores.upsert_store(conn, org_id=org_id, url="http://shop.example", consumer_key="ck",
                                         consumer_secret="cs", cipher=None)
    return org_id, store_id


async def test_the_mirrors_aggregate_maps_every_customer_to_the_row_the_order_list_maps_to(db_pool):
    store = SimulatedStore(300, seed=21, as_of=NOW)
    async with db_pool.acquire() as conn:
        org_id, store_id = await _store(conn)
        every_order = [order for woo_id in store.customer_ids("all") for order in store.orders_for(woo_id)]
        every_order += store.orders_for(0)  # guest orders count for no one
        await orders.record_orders(conn, store_id=store_id, org_id=org_id, orders=[mirror_order(o) for o in every_order])
        summaries = await orders.order_summaries(conn, [(store_id, woo_id) for woo_id in store.customer_ids("all")])
    compared = 0
    for woo_id in store.customer_ids("all"):
        customer, listed = store.customer(woo_id), store.orders_for(woo_id)
        summary = summaries[(store_id, woo_id)]
        assert summary == summarize_orders(mirror_order(o) for o in listed) or summary.problem, woo_id
        try:
            expected = map_customer(customer, listed, store_url="http://s", now=NOW)
        except Exception as exc:  # the same refusal, with the same message
            with pytest.raises(type(exc), match="customer"):
                map_customer_summary(customer, summary, store_url="http://s", now=NOW)
            continue
        assert map_customer_summary(customer, summary, store_url="http://s", now=NOW) == expected, woo_id
        compared += 1
    assert compared > 250


async def test_an_order_seen_again_with_a_refund_or_a_new_status_changes_the_summary(db_pool):
    order = {"id": 11, "customer_id": 5, "status": "completed", "total": "100.00", "refunds": [],
             "date_created_gmt": "2026-01-02T03:04:05"}
    async with db_pool.acquire() as conn:
        org_id, store_id = await _store(conn)
        await orders.record_orders(conn, store_id=store_id, org_id=org_id, orders=[mirror_order(order)])
        first = (await orders.order_summaries(conn, [(store_id, 5)]))[(store_id, 5)]
        await orders.record_orders(conn, store_id=store_id, org_id=org_id,
                                   orders=[mirror_order({**order, "refunds": [{"id": 12, "total": "-30.50"}]})])
        refunded = (await orders.order_summaries(conn, [(store_id, 5)]))[(store_id, 5)]
        await orders.record_orders(conn, store_id=store_id, org_id=org_id,
                                   orders=[mirror_order({**order, "status": "cancelled"})])
        cancelled = (await orders.order_summaries(conn, [(store_id, 5)]))[(store_id, 5)]
    assert (first.paid_value, first.completed_orders) == (Decimal("100.00"), 1)
    assert refunded.paid_value == Decimal("69.50")
    assert (cancelled.paid_value, cancelled.completed_orders, cancelled.total_orders) == (0, 0, 1)


async def test_orders_a_customers_listing_or_a_full_bulk_pass_no_longer_holds_stop_counting(db_pool):
    def order(order_id, customer_id):
        return mirror_order({"id": order_id, "customer_id": customer_id, "status": "processing", "total": "10",
                             "date_created_gmt": "2026-01-02T03:04:05"})

    async with db_pool.acquire() as conn:
        org_id, store_id = await _store(conn)
        await orders.record_orders(conn, store_id=store_id, org_id=org_id, orders=[order(1, 5), order(2, 5), order(3, 6)])
        assert await orders.forget_customers_other_orders(conn, store_id, [(5, [2])]) == 1
        summaries = await orders.order_summaries(conn, [(store_id, 5), (store_id, 6), (store_id, 7)])
        assert summaries[(store_id, 5)].total_orders == 1 and summaries[(store_id, 7)] == EMPTY_SUMMARY

        pass_started = await conn.fetchval("SELECT clock_timestamp()")
        await orders.record_orders(conn, store_id=store_id, org_id=org_id, orders=[order(1, 5)])
        assert await orders.forget_orders_not_seen(conn, store_id, pass_started) == 2
        summaries = await orders.order_summaries(conn, [(store_id, 5), (store_id, 6)])
    assert summaries[(store_id, 5)].total_orders == 1  # order 1 came back, order 2 is gone
    assert summaries[(store_id, 6)] == EMPTY_SUMMARY


async def test_an_order_with_a_malformed_total_fails_only_its_customer_naming_the_order(db_pool):
    async with db_pool.acquire() as conn:
        org_id, store_id = await _store(conn)
        await orders.record_orders(conn, store_id=store_id, org_id=org_id, orders=[
            mirror_order({"id": 1, "customer_id": 5, "status": "completed", "total": "12,50"}),
            mirror_order({"id": 2, "customer_id": 6, "status": "completed", "total": "12.50"}),
        ])
        summaries = await orders.order_summaries(conn, [(store_id, 5), (store_id, 6)])
    assert summaries[(store_id, 5)].problem == "order 1 has an invalid total: '12,50'"
    assert summaries[(store_id, 6)].problem is None and summaries[(store_id, 6)].paid_value == Decimal("12.50")
