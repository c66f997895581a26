"""The consumer's batch path in-process against real PostgreSQL and RabbitMQ and the simulator:
a last try whose commit succeeded but whose answer was lost still ends in the dead-letter queue."""

from __future__ import annotations

import asyncpg
import pytest

from services.consumer.acks import BatchAcks
from services.consumer.handler import LineHandler
from services.consumer.settle import Settler
from services.consumer.store_clients import StoreClients
from services.consumer.worker import BatchWorker
from shared import amqp, organizations, topology
from shared.repository import queue_lines, stores, sync_queues
from shared.messages import CustomerLine
from shared.metrics import Metrics
from shared.settings import Settings
from woosync.simulator.app import serve
from woosync.simulator.config import SimulatorConfig
from woosync.simulator.data import SimulatedStore

pytestmark = pytest.mark.integration


async def test_a_last_try_whose_commit_answer_was_lost_is_still_dead_lettered(db_pool, amqp_url, monkeypatch):
    settings = Settings(max_attempts=1, store_max_tries=1)
    store = SimulatedStore(10, seed=5)
    async with await serve(store, SimulatorConfig(port=0, customers=10, seed=5, fail_orders_for=frozenset({7}))) as simulator:
        async with db_pool.acquire() as conn:
            org_id, _ = await organizations.create_organization(conn, name="c")
            store_id = await stores.upsert_store(conn, org_id=org_id, url=simulator.url, consumer_key="ck_test",
                                                           consumer_secret="cs_test", cipher=None)
            queue, _ = await sync_queues.find_or_create_queue(
                conn, org_id=org_id, queue_name="q", idempotency_key=None, store_id=store_id, store_url=simulator.url,
                created_by=None, options={})
            [(line_id, _)] = await queue_lines.add_lines(conn, queue_id=queue.id, org_id=org_id,
                                                              customers=[(7, store.customer(7))])

        real_commit = LineHandler._commit
        lost = []

        async def commit_then_lose_the_answer(self, *args):
            decisions = await real_commit(self, *args)
            if not lost:
                lost.append(True)
                raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation")
            return decisions

        monkeypatch.setattr(LineHandler, "_commit", commit_then_lose_the_answer)

        connection = await amqp.connect(amqp_url)
        store_clients = StoreClients(db_pool, settings, Metrics())
        try:
            channel = await amqp.open_publisher_channel(connection)
            await amqp.declare_topology(channel, settings)
            line = CustomerLine(line_id=line_id, queue_id=queue.id, org_id=org_id, store_id=store_id,
                                woo_customer_id=7, customer=store.customer(7))
            await amqp.publish_customer_lines(channel, [line])
            lines = await amqp.consumable_queue(channel, topology.CUSTOMER_LINES_QUEUE, settings)
            message = await lines.get(timeout=5)
            acks = BatchAcks()
            acks.delivered(message)
            metrics = Metrics()
            worker = BatchWorker(LineHandler(db_pool, store_clients, settings, metrics), await Settler.on_channel(channel, metrics), acks)

            await worker([message])

            dead = await channel.declare_queue(topology.CUSTOMER_LINES_DEAD_QUEUE, passive=True)
            dead_letter = await dead.get(timeout=5, fail=False)
        finally:
            await store_clients.aclose()
            await connection.close()
    assert lost, "the commit's answer was never lost: the test did not test anything"
    assert dead_letter is not None and dead_letter.headers[topology.DEAD_REASON_HEADER] == "max_attempts"
    state, error = await db_pool.fetchrow("SELECT state, error_message FROM woo_customer_sync_queue_line WHERE id = $1", line_id)
    assert state == "failed" and "gave up after 1 attempts" in error
