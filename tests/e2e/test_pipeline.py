"""The pipeline end to end: the real producer and consumer processes, RabbitMQ, PostgreSQL and a
simulated store (SPEC sections 3-5)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import aio_pika
import pytest

from shared import queue_repository, topology
from shared.mapping import map_customer
from tests.waiting import eventually
from woosync.simulator.data import SimulatedStore

pytestmark = pytest.mark.e2e

TERMINAL = {"done", "failed", "partial", "cancelled"}


async def only_queue(pipeline):
    queues = await queue_repository.list_queues(pipeline.pool, pipeline.org_id, limit=10, offset=0)
    return queues[0] if len(queues) == 1 else None


async def finished_queue(pipeline, timeout: float = 120):
    async def finished():
        queue = await only_queue(pipeline)
        return queue if queue and queue.state in TERMINAL else None

    return await eventually(finished, timeout=timeout, interval=0.2, what="the sync to finish")


async def true_counts(pipeline, queue_id) -> dict[str, int]:
    rows = await pipeline.pool.fetch(
        "SELECT state, count(*) AS n FROM woo_customer_sync_queue_line WHERE queue_id = $1 GROUP BY state", queue_id)
    return {row["state"]: row["n"] for row in rows}


def assert_counts_exact(queue, counts: dict[str, int]) -> None:
    for state in ("draft", "processing", "done", "failed", "cancelled"):
        assert getattr(queue, f"{state}_count") == counts.get(state, 0), (state, queue, counts)
    assert queue.total_count == sum(counts.values())


async def test_a_5000_customer_sync_with_two_consumers_ends_done_with_every_row_mapped(pipeline):
    pipeline.simulator("--valid-emails-only", customers=5000, seed=11)
    pipeline.producer()
    pipeline.consumer("consumer-1")
    pipeline.consumer("consumer-2")
    await pipeline.publish(pipeline.request(idempotency_key="five-thousand"))

    queue = await finished_queue(pipeline, timeout=300)
    now = datetime.now(timezone.utc)
    assert queue.state == "done", queue
    assert queue.total_count == 5000
    assert_counts_exact(queue, await true_counts(pipeline, queue.id))

    store = SimulatedStore(5000, 11, base_url=pipeline.store_url, **({"valid_emails_only": True}))
    rows = {r["woo_customer_id"]: r for r in await pipeline.pool.fetch("SELECT * FROM customer WHERE org_id = $1", pipeline.org_id)}
    assert len(rows) == 5000
    for woo_id in store.customer_ids("all"):
        expected = map_customer(store.customer(woo_id), store.orders_for(woo_id), store_url=pipeline.store_url, now=now)
        row = rows[woo_id]
        got = (row["email"], row["name"], row["phone"], row["company"], row["segment"], row["status"],
               row["lifetime_value"], row["acquisition_date"], row["last_interaction_date"], row["address"],
               row["metadata"], sorted(row["tags"]))
        want = (expected.email, expected.name, expected.phone, expected.company, expected.segment, expected.status,
                expected.lifetime_value, expected.acquisition_date, expected.last_interaction_date, expected.address,
                expected.metadata, sorted(expected.tags))
        assert got == want, woo_id
    lines = await pipeline.pool.fetchval(
        "SELECT count(*) FROM woo_customer_sync_queue_line WHERE queue_id = $1 AND result_customer_id IS NOT NULL AND was_update = false",
        queue.id)
    assert lines == 5000


async def test_a_line_whose_orders_always_fail_is_tried_max_attempts_times_then_dead_lettered(pipeline):
    pipeline.simulator("--fail-orders-for", "7", customers=30, seed=5)
    pipeline.producer()
    pipeline.consumer(WOOSYNC_MAX_ATTEMPTS="3", WOOSYNC_RETRY_DELAY_MS="300")
    await pipeline.publish(pipeline.request())

    queue = await finished_queue(pipeline)
    assert queue.state == "partial" and queue.is_action_required
    line = await pipeline.pool.fetchrow(
        "SELECT id, state, error_message, error_count FROM woo_customer_sync_queue_line WHERE queue_id = $1 AND woo_customer_id = 7",
        queue.id)
    assert line["state"] == "failed"
    assert "gave up after 3 attempts" in line["error_message"] and "500" in line["error_message"]
    tries = await pipeline.pool.fetch(
        "SELECT status, created_at FROM woo_sync_activity WHERE queue_line_id = $1 ORDER BY created_at", line["id"])
    assert [t["status"] for t in tries] == ["retry", "retry", "failed"]
    gaps = [(b["created_at"] - a["created_at"]).total_seconds() for a, b in zip(tries, tries[1:])]
    assert all(gap >= 0.3 for gap in gaps), gaps  # a delay between tries (300 ms, then 600 ms)

    # Every other line is done, or failed at once for bad data (the store has a few invalid emails).
    others = await pipeline.pool.fetch(
        "SELECT state, error_message, error_count FROM woo_customer_sync_queue_line WHERE queue_id = $1 AND woo_customer_id <> 7",
        queue.id)
    assert all(o["state"] == "done" or ("email" in o["error_message"] and o["error_count"] == 1) for o in others)
    assert sum(o["state"] == "done" for o in others) >= queue.total_count - 5

    connection = await aio_pika.connect(pipeline.amqp_url)
    try:
        channel = await connection.channel()
        dead = await channel.declare_queue(topology.CUSTOMER_LINES_DEAD_QUEUE, passive=True)
        message = await dead.get(timeout=5)
        assert message.headers[topology.DEAD_REASON_HEADER] == "max_attempts"
        assert b'"woo_customer_id":7' in message.body
        assert dead.declaration_result.message_count == 1
    finally:
        await connection.close()


async def test_the_same_request_twice_with_one_idempotency_key_makes_one_queue_and_no_duplicate_lines(pipeline):
    pipeline.simulator(customers=300, seed=2)
    pipeline.producer()
    request = pipeline.request(idempotency_key="nightly-2026-11-22")
    await pipeline.publish(request)
    await pipeline.publish(request)
    pipeline.consumer()
    queue = await finished_queue(pipeline)
    await asyncio.sleep(1)  # let the second request be handled too
    queues = await queue_repository.list_queues(pipeline.pool, pipeline.org_id, limit=10, offset=0)
    assert len(queues) == 1
    assert queue.total_count == 300
    assert await pipeline.pool.fetchval("SELECT count(*) FROM woo_customer_sync_queue_line") == 300
