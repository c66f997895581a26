"""The producer's request handler and page worker in-process against real PostgreSQL and RabbitMQ
and the simulator: the request is acked once its pages are recorded; a page whose commit the
producer never heard of is not recorded twice, and its lines are still published."""

from __future__ import annotations

import asyncpg
import orjson
import pytest

from services.producer.handler import SyncRequestHandler
from services.producer.page_worker import PageWorker
from shared import amqp, organizations, topology
from shared.messages import StartSync
from shared.metrics import Metrics
from shared.settings import Settings
from tests.integration.producer_background import page_work_and_dispatch
from tests.waiting import eventually
from woosync.simulator.app import serve
from woosync.simulator.config import SimulatorConfig
from woosync.simulator.data import SimulatedStore

pytestmark = pytest.mark.integration


async def test_lines_of_a_page_whose_commit_was_not_heard_of_are_recorded_once_and_published(db_pool, amqp_url, monkeypatch):
    real_record = PageWorker._record
    calls = 0

    async def record_losing_the_answer_once(self, conn, page, answer):
        nonlocal calls
        calls += 1
        call = calls
        await real_record(self, conn, page, answer)
        if call == 2:  # the second page commits, then the connection "breaks" before the answer
            raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation")

    monkeypatch.setattr(PageWorker, "_record", record_losing_the_answer_once)
    async with db_pool.acquire() as conn:
        org_id, _ = await organizations.create_organization(conn, name="p")
    settings = Settings()
    store = SimulatedStore(250, seed=3)
    async with await serve(store, SimulatorConfig(port=0, customers=250, seed=3)) as simulator:
        connection = await amqp.connect(amqp_url)
        try:
            channel = await amqp.open_publisher_channel(connection)
            await amqp.declare_topology(channel, settings)
            tap = await channel.declare_queue(exclusive=True)
            await tap.bind(await channel.get_exchange(topology.LINES_EXCHANGE), topology.CUSTOMER_LINE_ROUTING_KEY)
            request = StartSync.model_validate({"org_id": str(org_id), "options": {"orders": "per_customer"}, "store": {
                "url": simulator.url, "consumer_key": "ck_test", "consumer_secret": "cs_test"}})
            await amqp.publish_sync_request(channel, request)
            requests = await amqp.consumable_queue(channel, topology.SYNC_REQUESTS_QUEUE, settings)
            message = await requests.get(timeout=5)

            await SyncRequestHandler(db_pool, channel, settings, Metrics())(message)
            # Acked with its pages recorded, none read yet: nothing depends on the request now.
            assert await (await channel.declare_queue(topology.SYNC_REQUESTS_QUEUE, passive=True)).get(fail=False) is None
            assert await db_pool.fetchval("SELECT count(*) FROM woo_customer_sync_queue_line") == 0
            pages = await db_pool.fetch("SELECT kind, page, state FROM woo_sync_page")
            assert [(p["kind"], p["page"], p["state"]) for p in pages] == [("customers", 1, "pending")]

            async with page_work_and_dispatch(db_pool, channel, settings):
                await eventually(lambda: db_pool.fetchval("SELECT enumeration_done FROM woo_customer_sync_queue"),
                                 timeout=30, what="the enumeration to finish")
                published = set()

                async def all_published():
                    while (line := await tap.get(timeout=1, fail=False)) is not None:
                        published.add(orjson.loads(line.body)["line_id"])
                        await line.ack()
                    return len(published) >= 250

                await eventually(all_published, timeout=30, what="every line to be published")
        finally:
            await connection.close()
    assert calls == 4  # three pages of customers, the second's recording tried twice
    recorded = {str(r["id"]) for r in await db_pool.fetch("SELECT id FROM woo_customer_sync_queue_line")}
    assert len(recorded) == 250 and published == recorded
    plan = await db_pool.fetchrow("SELECT customer_pages_total, customer_pages_done FROM woo_customer_sync_queue")
    assert (plan["customer_pages_total"], plan["customer_pages_done"]) == (3, 3)


async def test_a_request_reusing_an_idempotency_key_for_another_store_is_dead_lettered_store_mismatch(db_pool, amqp_url):
    # Its lines would carry a store that disagrees with their queue's, which consumers refuse as
    # tampered: the producer refuses the request itself, naming the reason.
    async with db_pool.acquire() as conn:
        org_id, _ = await organizations.create_organization(conn, name="p")
    settings = Settings()
    async with await serve(SimulatedStore(20, seed=3), SimulatorConfig(port=0, customers=20, seed=3)) as first, \
            await serve(SimulatedStore(20, seed=4), SimulatorConfig(port=0, customers=20, seed=4)) as second:
        connection = await amqp.connect(amqp_url)
        try:
            channel = await amqp.open_publisher_channel(connection)
            await amqp.declare_topology(channel, settings)
            dead = await channel.declare_queue(topology.SYNC_REQUESTS_DEAD_QUEUE, passive=True)
            requests = await amqp.consumable_queue(channel, topology.SYNC_REQUESTS_QUEUE, settings)
            handler = SyncRequestHandler(db_pool, channel, settings, Metrics())
            for simulator in (first, second):
                request = StartSync.model_validate({"org_id": str(org_id), "idempotency_key": "nightly", "store": {
                    "url": simulator.url, "consumer_key": "ck_test", "consumer_secret": "cs_test"}})
                await amqp.publish_sync_request(channel, request)
                await handler(await requests.get(timeout=5))
            rejected = await dead.get(timeout=5)
            await rejected.ack()
            async with page_work_and_dispatch(db_pool, channel, settings, dispatch=False):
                await eventually(lambda: db_pool.fetchval("SELECT bool_and(enumeration_done) FROM woo_customer_sync_queue"),
                                 timeout=30, what="the first store's pages to be read")
        finally:
            await connection.close()
    assert rejected.headers[topology.DEAD_REASON_HEADER] == "store_mismatch"
    queues = await db_pool.fetch("SELECT store_url, total_count FROM woo_customer_sync_queue")
    assert [(q["store_url"], q["total_count"]) for q in queues] == [(first.url, 20)]
