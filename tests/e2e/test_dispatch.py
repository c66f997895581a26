"""Bounded dispatch, pause and resume on the real processes (docs/architecture.md "Dispatch",
docs/contract.md section 10): a sync never has more than the window of lines queued or
processing, a paused sync publishes nothing more and resumes to exact counts without a line
spending a try on the pause, a paused sync can be cancelled, and a producer killed mid-dispatch
loses no line and leaves none queued."""

from __future__ import annotations

import time

import aio_pika
import pytest

from shared import topology
from shared.repository import sync_queues
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

WINDOW = 20
TERMINAL = {"done", "failed", "partial", "cancelled"}


async def the_queue(pipeline):
    queues = await sync_queues.list_queues(pipeline.pool, pipeline.org_id, limit=10, offset=0)
    return queues[0] if len(queues) == 1 else None


async def lines_ready(channel) -> int:
    queue = await channel.declare_queue(topology.CUSTOMER_LINES_QUEUE, passive=True)
    return queue.declaration_result.message_count


async def true_counts(pipeline, queue_id) -> dict[str, int]:
    rows = await pipeline.pool.fetch(
        "SELECT state, count(*) AS n FROM woo_customer_sync_queue_line WHERE queue_id = $1 GROUP BY state", queue_id)
    return {row["state"]: row["n"] for row in rows}


def assert_counts_exact(queue, counts: dict[str, int]) -> None:
    for state in ("draft", "queued", "processing", "done", "failed", "cancelled"):
        assert getattr(queue, f"{state}_count") == counts.get(state, 0), (state, queue, counts)
    assert queue.total_count == sum(counts.values())


async def test_a_paused_sync_publishes_nothing_more_and_resumes_to_exact_counts_without_spending_tries(pipeline):
    pipeline.simulator("--valid-emails-only", "--latency-ms", "15", customers=400, seed=4)
    pipeline.producer(WOOSYNC_DISPATCH_WINDOW=str(WINDOW), WOOSYNC_DISPATCH_INTERVAL_S="0.05")
    pipeline.consumer(WOOSYNC_PREFETCH="10", WOOSYNC_BATCH_SIZE="10")
    await pipeline.publish(pipeline.request(options={"orders": "per_customer"}))

    connection = await aio_pika.connect(pipeline.amqp_url)
    try:
        channel = await connection.channel()
        depths: list[int] = []
        in_flight: list[int] = []

        async def sampled(probe):
            async def sample():
                depths.append(await lines_ready(channel))
                queue = await the_queue(pipeline)
                if queue is not None:
                    in_flight.append(queue.queued_count + queue.processing_count)
                return await probe(queue)
            return sample

        async def some_done(queue):
            return queue if queue and queue.done_count >= 60 else None

        queue = await eventually(await sampled(some_done), timeout=120, interval=0.05, what="60 lines done")
        paused = await sync_queues.pause_queue(pipeline.pool, queue.id, pipeline.org_id, paused_by="test")
        assert paused.state == "paused" and paused.paused_by == "test"
        again = await sync_queues.pause_queue(pipeline.pool, queue.id, pipeline.org_id, paused_by="test")
        assert again.paused_at == paused.paused_at  # idempotent

        async def drained(queue):
            return queue if queue.queued_count + queue.processing_count == 0 else None

        drained_queue = await eventually(await sampled(drained), timeout=30, interval=0.05, what="in-flight lines to finish")
        assert drained_queue.state == "paused" and drained_queue.draft_count > 0
        # Nothing more is published: the draft lines stay draft and the lines queue stays empty.
        until = time.monotonic() + 1.5
        while time.monotonic() < until:
            still = await the_queue(pipeline)
            assert still.draft_count == drained_queue.draft_count and still.queued_count == 0
            assert await lines_ready(channel) == 0

        resumed = await sync_queues.resume_queue(pipeline.pool, queue.id, pipeline.org_id, resumed_by="test")
        assert resumed.state == "processing"

        async def finished(queue):
            return queue if queue and queue.state in TERMINAL else None

        final = await eventually(await sampled(finished), timeout=120, interval=0.05, what="the sync to finish")
    finally:
        await connection.close()

    assert final.state == "done" and final.done_count == 400
    assert_counts_exact(final, await true_counts(pipeline, final.id))
    assert max(depths) <= WINDOW, max(depths)
    assert max(in_flight) <= WINDOW, max(in_flight)
    tries = await pipeline.pool.fetchval(
        "SELECT max(process_count) FROM woo_customer_sync_queue_line WHERE queue_id = $1", final.id)
    assert tries == 1  # no line spent a try on the pause
    activity = await pipeline.pool.fetch(
        "SELECT activity_type, details FROM woo_sync_activity WHERE queue_id = $1 AND activity_type IN ('pause', 'resume')"
        " ORDER BY created_at", final.id)
    assert [(a["activity_type"]) for a in activity] == ["pause", "resume"]
    with pytest.raises(sync_queues.QueueFinished):
        await sync_queues.pause_queue(pipeline.pool, final.id, pipeline.org_id, paused_by="test")


async def test_a_paused_sync_can_be_cancelled(pipeline):
    pipeline.simulator("--latency-ms", "15", customers=300, seed=4)
    pipeline.producer(WOOSYNC_DISPATCH_WINDOW=str(WINDOW))
    pipeline.consumer(WOOSYNC_PREFETCH="10", WOOSYNC_BATCH_SIZE="10")
    await pipeline.publish(pipeline.request(options={"orders": "per_customer"}))
    queue = await eventually(lambda: the_queue(pipeline), timeout=60, what="the queue")
    await sync_queues.pause_queue(pipeline.pool, queue.id, pipeline.org_id, paused_by="test")
    cancelled = await sync_queues.cancel_queue(pipeline.pool, queue.id, pipeline.org_id, cancelled_by="test")
    assert cancelled.state == "cancelled"

    async def settled():
        queue = await the_queue(pipeline)
        return queue if queue.enumeration_done and queue.queued_count + queue.processing_count + queue.draft_count == 0 else None

    final = await eventually(settled, timeout=60, what="the cancelled sync to settle")
    assert final.state == "cancelled"
    assert_counts_exact(final, await true_counts(pipeline, final.id))


async def test_a_producer_killed_mid_dispatch_loses_no_line_and_leaves_none_queued(pipeline):
    pipeline.simulator("--valid-emails-only", customers=1500, seed=6)
    settings = dict(WOOSYNC_DISPATCH_WINDOW="50", WOOSYNC_DISPATCH_INTERVAL_S="0.01",
                    WOOSYNC_DISPATCH_REPUBLISH_AFTER_S="3")
    first = pipeline.producer(**settings)
    pipeline.producer("producer-2", **settings)  # two dispatchers at once
    pipeline.consumer()
    await pipeline.publish(pipeline.request())

    async def under_way():
        queue = await the_queue(pipeline)
        return queue if queue and queue.done_count >= 100 else None

    await eventually(under_way, timeout=120, interval=0.02, what="the sync under way")
    first.kill()
    pipeline.producer("producer-3", **settings)

    async def finished():
        queue = await the_queue(pipeline)
        return queue if queue and queue.state in TERMINAL else None

    final = await eventually(finished, timeout=180, interval=0.2, what="the sync to finish")
    assert final.state == "done" and final.done_count == 1500
    counts = await true_counts(pipeline, final.id)
    assert_counts_exact(final, counts)
    assert counts.get("queued", 0) == 0
