"""The consumer's batch path in-process against real PostgreSQL and RabbitMQ and the simulator:
a last try whose commit succeeded but whose answer was lost still ends in the dead-letter queue;
a forged line message (another organisation's ids, another email, another customer id) is
dead-lettered as tampered and changes nothing, and the genuine one still syncs the line."""

from __future__ import annotations

import asyncpg
import pytest

from services.consumer.acks import BatchAcks
from services.consumer.dead_letters import DeadLetterRecorder
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

from tests.waiting import eventually

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


# ---- a forged line message (docs/contract.md section 3: the row is the authority) ----------


class _Consumer:
    """The consumer's line path and dead-letter recorder, wired as services/consumer/main.py
    wires them, on the test's vhost: publish a message, let the consumer handle it."""

    def __init__(self, db_pool, channel, settings: Settings, store_clients: StoreClients) -> None:
        self._pool = db_pool
        self._channel = channel
        self._settings = settings
        self._store_clients = store_clients

    async def handle(self, line: CustomerLine):
        """Publish `line` on woosync.lines, run the consumer's batch on it and the dead-letter
        recorder on whatever it dead-lettered; the dead letter (None if there was none)."""
        await amqp.publish_customer_lines(self._channel, [line])
        lines = await amqp.consumable_queue(self._channel, topology.CUSTOMER_LINES_QUEUE, self._settings)
        message = await eventually(lambda: lines.get(fail=False), timeout=10, what="the published line")
        acks = BatchAcks()
        acks.delivered(message)
        metrics = Metrics()
        worker = BatchWorker(LineHandler(self._pool, self._store_clients, self._settings, metrics),
                             await Settler.on_channel(self._channel, metrics), acks)
        await worker([message])
        audit = await amqp.consumable_queue(self._channel, topology.CUSTOMER_LINES_DEAD_AUDIT_QUEUE, self._settings)
        audit_copy = await audit.get(fail=False)
        if audit_copy is not None:
            await DeadLetterRecorder(self._pool, metrics)(audit_copy)
        dead = await self._channel.declare_queue(topology.CUSTOMER_LINES_DEAD_QUEUE, passive=True)
        return await dead.get(fail=False)


async def _customers(db_pool) -> list[tuple]:
    return [tuple(row) for row in await db_pool.fetch("SELECT * FROM customer ORDER BY id")]


async def _line_row(db_pool, line_id) -> tuple:
    return tuple(await db_pool.fetchrow(
        "SELECT state, process_count, error_count, error_message FROM woo_customer_sync_queue_line WHERE id = $1", line_id))


@pytest.mark.parametrize("forgery", ["another organisation's ids", "another email", "another customer id"])
async def test_a_forged_line_message_is_dead_lettered_as_tampered_and_leaves_the_line_and_customers_alone(
        db_pool, amqp_url, forgery):
    settings = Settings(store_max_tries=1)
    store = SimulatedStore(10, seed=5)
    async with await serve(store, SimulatorConfig(port=0, customers=10, seed=5)) as simulator:
        async with db_pool.acquire() as conn:
            org_a, _ = await organizations.create_organization(conn, name="a")
            org_b, _ = await organizations.create_organization(conn, name="b")
            store_a = await stores.upsert_store(conn, org_id=org_a, url=simulator.url, consumer_key="ck_test",
                                                consumer_secret="cs_test", cipher=None)
            store_b = await stores.upsert_store(conn, org_id=org_b, url=simulator.url, consumer_key="ck_test",
                                                consumer_secret="cs_test", cipher=None)
            queue_a, _ = await sync_queues.find_or_create_queue(
                conn, org_id=org_a, queue_name="a", idempotency_key=None, store_id=store_a, store_url=simulator.url,
                created_by=None, options={})
            queue_b, _ = await sync_queues.find_or_create_queue(
                conn, org_id=org_b, queue_name="b", idempotency_key=None, store_id=store_b, store_url=simulator.url,
                created_by=None, options={})
            lines = dict((woo_id, line_id) for line_id, woo_id in await queue_lines.add_lines(
                conn, queue_id=queue_a.id, org_id=org_a, customers=[(3, store.customer(3)), (7, store.customer(7))]))

        def genuine(woo_customer_id: int) -> CustomerLine:
            return CustomerLine(line_id=lines[woo_customer_id], queue_id=queue_a.id, org_id=org_a, store_id=store_a,
                                woo_customer_id=woo_customer_id, customer=store.customer(woo_customer_id))

        forged = {
            "another organisation's ids": genuine(7).model_copy(update={"org_id": org_b, "queue_id": queue_b.id,
                                                                         "store_id": store_b}),
            "another email": genuine(7).model_copy(update={"customer": {**store.customer(7),
                                                                         "email": "attacker@example.com"}}),
            "another customer id": genuine(7).model_copy(update={"woo_customer_id": 3}),
        }[forgery]

        connection = await amqp.connect(amqp_url)
        store_clients = StoreClients(db_pool, settings, Metrics())
        try:
            channel = await amqp.open_publisher_channel(connection)
            await amqp.declare_topology(channel, settings)
            consumer = _Consumer(db_pool, channel, settings, store_clients)
            assert await consumer.handle(genuine(3)) is None  # organisation A has a customer to protect
            customers_before = await _customers(db_pool)
            assert len(customers_before) == 1

            dead_letter = await consumer.handle(forged)

            assert dead_letter is not None, "the forged message was not dead-lettered"
            assert dead_letter.headers[topology.DEAD_REASON_HEADER] == "tampered"
            assert await _customers(db_pool) == customers_before
            assert await _line_row(db_pool, lines[7]) == ("draft", 0, 0, None)

            assert await consumer.handle(genuine(7)) is None
        finally:
            await store_clients.aclose()
            await connection.close()
    state, org_id = await db_pool.fetchrow(
        "SELECT l.state, c.org_id FROM woo_customer_sync_queue_line l JOIN customer c ON c.id = l.result_customer_id"
        " WHERE l.id = $1", lines[7])
    assert (state, org_id) == ("done", org_a)
    assert len(await _customers(db_pool)) == 2
