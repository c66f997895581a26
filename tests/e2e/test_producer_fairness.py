"""The producer shares its slots across organisations (docs/contract.md section 3): while one
organisation's many requests for a slow store are in hand, another organisation's sync is
enumerated; and on SIGTERM the requests still waiting for a slot go back to the queue, none
dead-lettered. Asserted on order and state, not timings: the slow store answers each request in
3 s, so none of the flooding organisation's syncs can finish before the other's is enumerated."""

from __future__ import annotations

import aio_pika
import pytest

from shared import organizations, topology
from shared.messages import StartSync
from tests.waiting import eventually
from woosync.stack import free_port

pytestmark = pytest.mark.e2e

FLOOD = 8  # requests of organisation A, all within the producer's prefetch (4 x 4) with B's


def sync_request(org_id, store_url: str) -> StartSync:
    return StartSync.model_validate({"org_id": str(org_id), "store": {
        "url": store_url, "consumer_key": "ck_test", "consumer_secret": "cs_test"}})


async def queues_of(pipeline, org_id) -> list:
    return await pipeline.pool.fetch(
        "SELECT id, enumeration_done FROM woo_customer_sync_queue WHERE org_id = $1", org_id)


async def messages_in(pipeline, queue_name: str) -> int:
    connection = await aio_pika.connect(pipeline.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        return queue.declaration_result.message_count
    finally:
        await connection.close()


async def test_another_organisations_sync_is_enumerated_while_one_organisation_floods_a_slow_store(pipeline):
    slow_port = free_port()
    pipeline.stack.start("slow-store", ["simulator", "--port", str(slow_port), "--customers", "250",
                                        "--latency-ms", "3000"]).wait_for(r"simulator listening on", 60)
    pipeline.simulator(customers=50)
    producer = pipeline.producer()  # the defaults: 4 slots, 2 per organisation, 16 requests in hand
    org_a = pipeline.org_id
    async with pipeline.pool.acquire() as conn:
        org_b, _ = await organizations.create_organization(conn, name="b")

    for _ in range(FLOOD):
        await pipeline.publish(sync_request(org_a, f"http://127.0.0.1:{slow_port}"))
    await eventually(lambda: queues_of(pipeline, org_a), timeout=60, what="A's first sync to start")
    await pipeline.publish(sync_request(org_b, pipeline.store_url))

    async def b_enumerated():
        queues = await queues_of(pipeline, org_b)
        return queues if queues and queues[0]["enumeration_done"] else None

    await eventually(b_enumerated, timeout=60, interval=0.05, what="B's sync to be enumerated")
    a_queues = await queues_of(pipeline, org_a)
    assert not any(queue["enumeration_done"] for queue in a_queues), "B waited for A's syncs to finish"
    assert len(a_queues) <= 2, "A holds more than its share of the producer's slots"
    # A's other requests are in the producer's hands, unacked: none left ready in the queue.
    assert await messages_in(pipeline, topology.SYNC_REQUESTS_QUEUE) == 0

    assert producer.terminate(timeout=60) == 0

    async def all_of_a_accounted_for():
        # A request handled to the end is acked with its pages recorded (page work for the next
        # producer), or enumerated already; the others wait in the queue.
        recorded = await pipeline.pool.fetchval(
            "SELECT count(*) FROM woo_customer_sync_queue q WHERE org_id = $1 AND (enumeration_done "
            "OR EXISTS (SELECT 1 FROM woo_sync_enumeration e WHERE e.queue_id = q.id))", org_a)
        waiting = await messages_in(pipeline, topology.SYNC_REQUESTS_QUEUE)
        return (recorded, waiting) if recorded + waiting == FLOOD else None

    await eventually(all_of_a_accounted_for, timeout=30, what="A's unfinished requests back in the queue")
    assert await messages_in(pipeline, topology.SYNC_REQUESTS_DEAD_QUEUE) == 0
