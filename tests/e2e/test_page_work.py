"""Enumeration as page work (docs/architecture.md "Page work", docs/contract.md section 10): the
real producers, consumers, RabbitMQ, PostgreSQL and a simulated store. Producer replicas share one
big store's pages, within the per-sync bound; a killed producer's leased pages are taken over by
another once their lease expires; every page is recorded once."""

from __future__ import annotations

import math

import httpx
import pytest

from shared.settings import Settings
from tests.e2e.test_order_strategies import synced
from tests.waiting import eventually
from woosync.simulator.data import SimulatedStore

pytestmark = pytest.mark.e2e


def producer_id(process) -> str:
    """The producer's page worker id, as woo_sync_page.taken_by records it (its ready line names it)."""
    return process.wait_for(r"page worker ([^\s,\"]+)", 60).group(1)


async def order_requests(pipeline) -> int:
    async with httpx.AsyncClient() as client:
        stats = (await client.get(f"{pipeline.store_url}/__simulator/stats", timeout=5)).json()
    return sum(stats["by_route"]["orders"].values())


async def pages_of(pipeline, queue_id) -> list:
    return await pipeline.pool.fetch(
        "SELECT kind, page, state, taken_by, done_at FROM woo_sync_page WHERE queue_id = $1 ORDER BY kind, page", queue_id)


async def test_two_producer_replicas_on_one_big_store_share_its_pages(pipeline):
    customers, seed = 3000, 41
    pipeline.simulator("--valid-emails-only", "--latency-ms", "40", customers=customers, seed=seed)
    first, second = pipeline.producer("producer-1"), pipeline.producer("producer-2")
    producers = {producer_id(first), producer_id(second)}
    pipeline.consumer()
    store = SimulatedStore(customers, seed, valid_emails_only=True)
    order_pages = math.ceil((store.customer_order_total + store.guest_order_count) / 100)
    await pipeline.publish(pipeline.request(idempotency_key="shared", options={"orders": "bulk"}))

    most_leased = 0

    async def leased_while_syncing():
        nonlocal most_leased
        leased = await pipeline.pool.fetchval(
            "SELECT count(*) FROM woo_sync_page WHERE state = 'leased' AND lease_until > now()")
        most_leased = max(most_leased, leased)
        return await pipeline.pool.fetchval("SELECT bool_and(enumeration_done) FROM woo_customer_sync_queue")

    await eventually(leased_while_syncing, timeout=240, interval=0.02, what="the enumeration to finish")
    queue = await synced(pipeline, "shared")
    assert queue.state == "done" and queue.total_count == customers, queue

    pages = await pages_of(pipeline, queue.id)
    assert [(p["kind"], p["page"]) for p in pages] == \
        [("customers", n) for n in range(1, math.ceil(customers / 100) + 1)] + [("orders", n) for n in range(1, order_pages + 1)]
    assert all(p["state"] == "done" for p in pages)
    by_producer = {name: sum(p["taken_by"] == name for p in pages) for name in producers}
    # Both replicas read and recorded pages of the one sync; no page was read by anyone else.
    assert sum(by_producer.values()) == len(pages) and all(count >= 5 for count in by_producer.values()), by_producer
    # Never more than the per-sync bound leased at once across both, and no order page read twice.
    assert 0 < most_leased <= Settings().sync_pages_in_flight, most_leased
    assert await order_requests(pipeline) == order_pages
    assert await pipeline.pool.fetchval("SELECT count(*) FROM woo_order WHERE NOT gone") == \
        store.customer_order_total + store.guest_order_count


async def test_a_killed_producers_leased_pages_are_taken_over_once_their_lease_expires(pipeline):
    customers, seed, lease_s = 1500, 43, 4
    # Slow answers: a producer holds leased pages at any moment of the paging.
    pipeline.simulator("--valid-emails-only", "--latency-ms", "300", customers=customers, seed=seed)
    first = pipeline.producer("producer-1", WOOSYNC_PAGE_LEASE_S=str(lease_s))
    killed = producer_id(first)
    pipeline.consumer()
    store = SimulatedStore(customers, seed, valid_emails_only=True)
    order_pages = math.ceil((store.customer_order_total + store.guest_order_count) / 100)
    await pipeline.publish(pipeline.request(idempotency_key="taken-over", options={"orders": "bulk"}))

    async def holding_pages():
        return await pipeline.pool.fetchval(
            "SELECT count(*) FROM woo_sync_page WHERE taken_by = $1 AND state = 'leased' AND kind = 'orders'", killed)

    await eventually(holding_pages, timeout=120, interval=0.02, what="producer-1 to hold order pages")
    first.kill()
    held = await pipeline.pool.fetch(
        "SELECT queue_id, kind, page, lease_until FROM woo_sync_page WHERE taken_by = $1 AND state = 'leased'", killed)
    assert held, "producer-1 held no page when it was killed"
    second = pipeline.producer("producer-2", WOOSYNC_PAGE_LEASE_S=str(lease_s))
    survivor = producer_id(second)

    queue = await synced(pipeline, "taken-over")
    assert queue.state == "done" and queue.total_count == customers, queue
    pages = {(p["kind"], p["page"]): p for p in await pages_of(pipeline, queue.id)}
    assert len(pages) == math.ceil(customers / 100) + order_pages and all(p["state"] == "done" for p in pages.values())
    for row in held:
        page = pages[(row["kind"], row["page"])]
        # Taken over by the other producer, and only once the killed one's lease had run out.
        assert page["taken_by"] == survivor, (row, page)
        assert page["done_at"] >= row["lease_until"], (row, page)
    # Nothing missing or doubled: every order once in the mirror.
    assert await pipeline.pool.fetchval("SELECT count(*) FROM woo_order WHERE NOT gone") == \
        store.customer_order_total + store.guest_order_count
