"""The producer's page worker in-process against real PostgreSQL, the store an httpx MockTransport:
a page the store keeps failing ends the sync failed (is_action_required, the bulk sync's draft
lines failed with it); a store whose order count falls while it is paged is read again; a sync
cancelled before its pages are read drops them without asking the store."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable

import httpx
import orjson
import pytest

from services.producer.page_worker import PageWorker
from shared.metrics import Metrics
from shared.repository import enumeration, stores, sync_queues
from shared.settings import Settings
from shared.woocommerce.budget import FleetBudgets
from shared.woocommerce.client import WooCommerceClient
from tests.integration.repository_setup import customer, new_org
from tests.waiting import eventually

pytestmark = pytest.mark.integration

STORE = "http://shop.test"


def order(n: int) -> dict:
    return {"id": n, "status": "completed", "total": "10.00", "refunds": [], "customer_id": n % 150 + 1,
            "date_created_gmt": "2025-01-01T00:00:00", "date_modified_gmt": "2025-01-01T00:00:00"}


def listing(rows: list[dict], total: int) -> httpx.Response:
    return httpx.Response(200, content=orjson.dumps(rows), headers={
        "Content-Type": "application/json", "X-WP-Total": str(total), "X-WP-TotalPages": str(-(-total // 100))})


def store_answering(orders_page: Callable[[int, int], httpx.Response], asked: Counter) -> Callable:
    """A store of 150 customers; `orders_page(page, times asked)` answers the order pages."""
    def answer(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        kind = request.url.path.rsplit("/", 1)[-1]
        asked[(kind, page)] += 1
        if kind == "customers":
            return listing([customer(n) for n in range(page * 100 - 99, min(page * 100, 150) + 1)], 150)
        return orders_page(page, asked[(kind, page)])
    return answer


async def bulk_sync(pool) -> tuple:
    org_id = await new_org(pool)
    store_id = await stores.upsert_store(pool, org_id=org_id, url=STORE, consumer_key="ck_test",
                                         consumer_secret="cs_test", cipher=None)
    queue, _ = await sync_queues.find_or_create_queue(
        pool, org_id=org_id, queue_name="bulk", idempotency_key=None, store_id=store_id, store_url=STORE,
        created_by="tests", options={"orders": "bulk"})
    await enumeration.set_plan(pool, queue.id, org_id, order_strategy=enumeration.BULK, options={"orders": "bulk"},
                               customer_pages_total=None, order_pages_total=None, store_requests=1)
    await enumeration.start_page_work(pool, queue_id=queue.id, org_id=org_id, store_id=store_id, role="all",
                                      customer_limit=None, mirroring=True, whole_store=True,
                                      pass_started=queue.created_at, customer_pages=None, order_pages=None)
    return org_id, queue


@contextlib.asynccontextmanager
async def page_worker(pool, answer: Callable, **settings):
    settings = Settings(store_max_tries=1, **settings)
    metrics = Metrics()

    def client(credentials, **kwargs) -> WooCommerceClient:
        return WooCommerceClient(credentials, transport=httpx.MockTransport(answer), **kwargs)

    worker = PageWorker(pool, settings, metrics, FleetBudgets(pool, default_rate=None, metrics=metrics),
                        client_factory=client)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await task


async def enumerated(pool, queue) -> sync_queues.QueueStatus:
    async def ended():
        status = await sync_queues.queue_status(pool, queue.id, queue.org_id)
        return status if status.enumeration_done else None

    return await eventually(ended, timeout=30, interval=0.05, what="the enumeration to end")


async def test_an_order_page_the_store_keeps_failing_fails_the_sync_and_its_waiting_lines(db_pool):
    org_id, queue = await bulk_sync(db_pool)
    asked: Counter = Counter()

    def orders(page: int, times: int) -> httpx.Response:
        if page == 2:
            return httpx.Response(500, text="internal error")
        return listing([order(n) for n in range(page * 100 - 99, min(page * 100, 250) + 1)], 250)

    async with page_worker(db_pool, store_answering(orders, asked), page_max_failures=2):
        status = await enumerated(db_pool, queue)

    assert status.is_action_required and "orders page 2" in status.error_message and "failed 2 times" in status.error_message
    assert asked[("orders", 2)] == 2  # one try each (WOOSYNC_STORE_MAX_TRIES=1), two failures
    lines = await db_pool.fetch("SELECT state, error_message FROM woo_customer_sync_queue_line WHERE queue_id = $1", queue.id)
    assert len(lines) == 150 and all(line["state"] == "failed" for line in lines)
    assert all("the store's orders could not be listed" in line["error_message"] for line in lines)
    assert await db_pool.fetchval("SELECT state FROM woo_sync_enumeration WHERE queue_id = $1", queue.id) == "failed"
    assert await db_pool.fetchval("SELECT count(*) FROM woo_sync_page WHERE queue_id = $1 AND state <> 'done'", queue.id) == 0
    assert not await db_pool.fetchval("SELECT orders_mirrored FROM woo_customer_sync_queue WHERE id = $1", queue.id)
    assert (await sync_queues.queue_status(db_pool, queue.id, org_id)).state == "failed"


async def test_order_pages_are_read_again_when_the_stores_count_fell_while_they_were_paged(db_pool):
    _, queue = await bulk_sync(db_pool)
    asked: Counter = Counter()

    def orders(page: int, times: int) -> httpx.Response:
        # The first time page 3 is read, an order has been deleted: the store says 249.
        total = 249 if page == 3 and times == 1 else 250
        return listing([order(n) for n in range(page * 100 - 99, min(page * 100, 250) + 1)], total)

    async with page_worker(db_pool, store_answering(orders, asked)):
        status = await enumerated(db_pool, queue)

    assert not status.is_action_required
    assert [asked[("orders", page)] for page in (1, 2, 3)] == [2, 2, 2]  # every page read again, once
    assert [asked[("customers", page)] for page in (1, 2)] == [1, 1]
    plan = await db_pool.fetchrow("SELECT orders_mirrored, order_pages_total, order_pages_done, store_requests "
                                  "FROM woo_customer_sync_queue WHERE id = $1", queue.id)
    assert plan["orders_mirrored"] and plan["order_pages_total"] == plan["order_pages_done"] == 3
    assert plan["store_requests"] == 1 + 2 + 6  # the plan's, two customer pages, two passes of three order pages
    assert await db_pool.fetchval("SELECT count(*) FROM woo_order WHERE NOT gone") == 250


async def test_a_sync_cancelled_before_its_pages_are_read_drops_them_without_asking_the_store(db_pool):
    org_id, queue = await bulk_sync(db_pool)
    await sync_queues.cancel_queue(db_pool, queue.id, org_id, cancelled_by="tests")
    asked: Counter = Counter()
    async with page_worker(db_pool, store_answering(lambda page, times: listing([], 0), asked)):
        await enumerated(db_pool, queue)
    assert sum(asked.values()) == 0
    assert await db_pool.fetchval("SELECT count(*) FROM woo_sync_page WHERE queue_id = $1", queue.id) == 0
    assert await db_pool.fetchval("SELECT state FROM woo_sync_enumeration WHERE queue_id = $1", queue.id) == "finished"
