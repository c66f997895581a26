"""Poison sync requests published straight to the broker (bypassing every client's model) do not
stall the real producer: a store URL with a port out of range or a user:password in it is
refused at the edge of the producer, dead-lettered with the reason and without the credentials,
and the valid request published after them is served (docs/contract.md section 3)."""

from __future__ import annotations

import aio_pika
import orjson
import pytest

from shared import topology
from shared.repository import sync_queues
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

SECRET = "cs_poison_secret_42"


async def test_five_poison_requests_do_not_stall_a_producer_of_four_slots(pipeline):
    pipeline.simulator("--valid-emails-only", customers=25, seed=8)
    producer = pipeline.producer(WOOSYNC_PRODUCER_CONCURRENCY="4")
    pipeline.consumer()
    store = {"url": pipeline.store_url, "consumer_key": "ck_test", "consumer_secret": SECRET}
    poison_urls = ["http://127.0.0.1:99991", "http://127.0.0.1:99992/shop", f"http://admin:{SECRET}@127.0.0.1:8080",
                   "https://shop.example.com:0", "http://[::1"]
    for url in poison_urls:
        await pipeline.publish(orjson.dumps({"org_id": str(pipeline.org_id), "store": {**store, "url": url}}))
    await pipeline.publish(pipeline.request(idempotency_key="after-the-poison"))

    async def served():
        queues = await sync_queues.list_queues(pipeline.pool, pipeline.org_id, limit=10, offset=0)
        return [q for q in queues if q.idempotency_key == "after-the-poison" and q.state == "done"]

    [good] = await eventually(served, timeout=60, what="the valid request behind the poison ones to be done")
    assert good.total_count == 25 and producer.running

    connection = await aio_pika.connect(pipeline.amqp_url)
    try:
        channel = await connection.channel()
        dead = await channel.declare_queue(topology.SYNC_REQUESTS_DEAD_QUEUE, passive=True)
        found = []
        while (message := await dead.get(timeout=5, fail=False)) is not None:
            found.append(message)
            await message.ack()
        # Nothing back in the queue (a quorum queue's declare-ok count lags: ask for a message).
        left = await (await channel.declare_queue(topology.SYNC_REQUESTS_QUEUE, passive=True)).get(fail=False)
    finally:
        await connection.close()
    assert len(found) == len(poison_urls)
    for message in found:
        error = message.headers[topology.ERROR_HEADER]
        assert message.headers[topology.DEAD_REASON_HEADER] == "invalid"
        assert "store.url" in (error.decode() if isinstance(error, bytes) else error)
        assert SECRET.encode() not in message.body and SECRET not in str(message.headers)
    assert left is None
    assert SECRET not in producer.log()
