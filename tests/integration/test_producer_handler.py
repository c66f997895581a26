"""The producer's request handler in-process against real PostgreSQL and RabbitMQ and the
simulator: an insert whose commit the producer never heard of still gets its lines published."""

from __future__ import annotations

import asyncpg
import orjson
import pytest

from services.producer.handler import SyncRequestHandler
from shared import amqp, organizations, topology
from shared.repository import queue_lines
from shared.messages import StartSync
from shared.metrics import Metrics
from shared.settings import Settings
from woosync.simulator.app import serve
from woosync.simulator.config import SimulatorConfig
from woosync.simulator.data import SimulatedStore

pytestmark = pytest.mark.integration


async def test_lines_whose_insert_committed_but_reported_failure_are_still_published(db_pool, amqp_url, monkeypatch):
    real_add_lines = queue_lines.add_lines
    calls = 0

    async def add_lines_losing_the_answer_once(conn, **kwargs):
        nonlocal calls
        calls += 1
        result = await real_add_lines(conn, **kwargs)
        if calls == 2:  # the second page commits, then the connection "breaks" before the answer
            raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation")
        return result

    monkeypatch.setattr(queue_lines, "add_lines", add_lines_losing_the_answer_once)
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
            request = StartSync.model_validate({"org_id": str(org_id), "store": {
                "url": simulator.url, "consumer_key": "ck_test", "consumer_secret": "cs_test"}})
            await amqp.publish_sync_request(channel, request)
            requests = await amqp.consumable_queue(channel, topology.SYNC_REQUESTS_QUEUE, settings)
            message = await requests.get(timeout=5)

            await SyncRequestHandler(db_pool, channel, settings, Metrics())(message)

            published = set()
            while (line := await tap.get(timeout=5, fail=False)) is not None:
                published.add(orjson.loads(line.body)["line_id"])
                await line.ack()
        finally:
            await connection.close()
    assert calls == 4  # three pages of customers, the second tried twice
    recorded = {str(r["id"]) for r in await db_pool.fetch("SELECT id FROM woo_customer_sync_queue_line")}
    assert len(recorded) == 250 and published == recorded


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
        finally:
            await connection.close()
    assert rejected.headers[topology.DEAD_REASON_HEADER] == "store_mismatch"
    queues = await db_pool.fetch("SELECT store_url, total_count FROM woo_customer_sync_queue")
    assert [(q["store_url"], q["total_count"]) for q in queues] == [(first.url, 20)]
