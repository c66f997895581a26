"""The dead-letter recorder against real PostgreSQL and RabbitMQ: whoever dead-lettered a
customer line (woosync after its last attempt, or the broker past the delivery limit), the line
ends failed with the reason, its activity says so, and the audit copy is acked."""

from __future__ import annotations

import uuid

import aio_pika
import asyncpg
import pytest

from services.consumer.dead_letters import DeadLetterRecorder
from shared import amqp, organizations, topology
from shared.messages import CustomerLine
from shared.metrics import Metrics
from shared.repository import queue_lines, stores, sync_queues
from shared.settings import Settings
from tests.waiting import eventually

pytestmark = pytest.mark.integration


async def recorded_line(pool: asyncpg.Pool) -> CustomerLine:
    async with pool.acquire() as conn:
        org_id, _ = await organizations.create_organization(conn, name="dead letters")
        store_id = await stores.upsert_store(conn, org_id=org_id, url="https://shop.example", consumer_key="ck_x",
                                             consumer_secret="cs_x", cipher=None)
        queue, _ = await sync_queues.find_or_create_queue(
            conn, org_id=org_id, queue_name="q", idempotency_key=None, store_id=store_id,
            store_url="https://shop.example", created_by=None, options={})
        [(line_id, _)] = await queue_lines.add_lines(conn, queue_id=queue.id, org_id=org_id,
                                                     customers=[(7, {"id": 7, "email": "a@x.io"})])
    return CustomerLine(line_id=line_id, queue_id=queue.id, org_id=org_id, store_id=store_id, woo_customer_id=7,
                        customer={"id": 7, "email": "a@x.io"})


class Recorder(DeadLetterRecorder):
    """The recorder, counting the dead letters it finished with (it acks each one last)."""

    settled = 0

    async def __call__(self, message) -> None:
        await super().__call__(message)
        self.settled += 1


class Broker:
    """The topology on a fresh vhost, with the recorder consuming the audit queue."""

    def __init__(self, amqp_url: str, pool: asyncpg.Pool) -> None:
        self.url = amqp_url
        self.pool = pool
        self.metrics = Metrics()

    async def __aenter__(self) -> Broker:
        settings = Settings()
        self.connection = await amqp.connect(self.url)
        self.channel = await amqp.open_publisher_channel(self.connection)
        await amqp.declare_topology(self.channel, settings)
        self.audit = await amqp.consumable_queue(self.channel, topology.CUSTOMER_LINES_DEAD_AUDIT_QUEUE, settings)
        self.lines = await amqp.consumable_queue(self.channel, topology.CUSTOMER_LINES_QUEUE, settings)
        self.recorder = Recorder(self.pool, self.metrics)
        await self.audit.consume(self.recorder)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.connection.close()

    async def dead_letter(self, body: bytes, headers: dict[str, object]) -> None:
        exchange = await self.channel.get_exchange(topology.DEAD_EXCHANGE, ensure=False)
        await exchange.publish(aio_pika.Message(body, headers=headers, content_type="application/json"),
                               topology.CUSTOMER_LINE_ROUTING_KEY, mandatory=True)

    def acked(self, count: int = 1) -> bool:
        return self.recorder.settled == count

    def count(self, outcome: str) -> float:
        return self.metrics.registry.get_sample_value("woosync_lines_processed_total", {"outcome": outcome}) or 0.0


async def line_state(pool: asyncpg.Pool, line_id: uuid.UUID) -> tuple[str, str | None]:
    record = await pool.fetchrow("SELECT state, error_message FROM woo_customer_sync_queue_line WHERE id = $1", line_id)
    return record["state"], record["error_message"]


async def failed_with_error(pool: asyncpg.Pool, line_id: uuid.UUID) -> str | None:
    state, error = await line_state(pool, line_id)
    return error if state == "failed" else None


async def test_a_line_woosync_dead_lettered_is_marked_failed_with_woosyncs_error(db_pool, amqp_url):
    line = await recorded_line(db_pool)
    async with Broker(amqp_url, db_pool) as broker:
        await broker.dead_letter(line.model_dump_json().encode(), {
            topology.DEAD_REASON_HEADER: "max_attempts", topology.ERROR_HEADER: "gave up after 3 attempts: 503"})
        error = await eventually(lambda: failed_with_error(db_pool, line.line_id), timeout=10, what="the line failed")
        assert error == "gave up after 3 attempts: 503"
        await eventually(broker.acked, timeout=10, what="the audit copy acked")
        # The consumer that dead-lettered it already counted it; the recorder does not count it again.
        assert broker.count("dead_lettered") == 0 and broker.count("failed") == 0
    activity = await db_pool.fetchrow(
        "SELECT status, message, details FROM woo_sync_activity WHERE queue_line_id = $1", line.line_id)
    assert (activity["status"], activity["message"], activity["details"]) == (
        "failed", "gave up after 3 attempts: 503", {"dead_lettered": True})


async def test_a_line_the_broker_dead_lettered_past_the_delivery_limit_is_marked_failed_and_counted(db_pool, amqp_url):
    line = await recorded_line(db_pool)
    async with Broker(amqp_url, db_pool) as broker:
        await amqp.publish_customer_lines(broker.channel, [line])
        # A consumer that dies while handling it, again and again: the message is never settled.
        for _ in range(topology.CUSTOMER_LINES_DELIVERY_LIMIT + 1):
            message = await broker.lines.get(timeout=5, fail=False)
            if message is None:
                break
            await message.nack(requeue=True)
        error = await eventually(lambda: failed_with_error(db_pool, line.line_id), timeout=10, what="the line failed")
        assert error.startswith("dead-lettered by the broker after ")
        assert error.endswith("deliveries that were never settled (the consumer crashed or was killed while handling it)")
        await eventually(lambda: broker.count("failed") == 1, timeout=5, what="the failure counted")
        assert broker.count("dead_lettered") == 1


async def test_a_dead_letter_of_a_line_that_already_finished_leaves_it_alone(db_pool, amqp_url):
    line = await recorded_line(db_pool)
    customer_id = await db_pool.fetchval(
        "INSERT INTO customer (org_id, email, name) VALUES ($1, 'a@x.io', 'A') RETURNING id", line.org_id)
    await queue_lines.mark_lines_done(db_pool, [(line.line_id, customer_id, False)])
    async with Broker(amqp_url, db_pool) as broker:
        await broker.dead_letter(line.model_dump_json().encode(), {"x-death": [{"reason": "delivery_limit"}]})
        await eventually(lambda: broker.count("dead_lettered") == 1, timeout=10, what="the dead letter handled")
        await eventually(broker.acked, timeout=10, what="the audit copy acked")
        assert broker.count("failed") == 0
    assert await line_state(db_pool, line.line_id) == ("done", None)


async def test_an_unreadable_dead_letter_is_acked_and_left_in_the_dead_queue(db_pool, amqp_url):
    async with Broker(amqp_url, db_pool) as broker:
        await broker.dead_letter(b"not a customer line", {topology.DEAD_REASON_HEADER: "malformed"})
        await eventually(broker.acked, timeout=10, what="the audit copy acked")
        dead = await broker.channel.declare_queue(topology.CUSTOMER_LINES_DEAD_QUEUE, passive=True)
        kept = await dead.get(timeout=5, fail=False)
        assert kept is not None and kept.body == b"not a customer line"
