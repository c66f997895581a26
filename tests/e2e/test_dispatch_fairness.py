"""Fair dispatch on the real processes (docs/architecture.md "Dispatch"): a small sync of one
organisation started beside a big one of another finishes within twice its time alone, and the
lines queue never holds more than the window times the syncs under way."""

from __future__ import annotations

import time
from uuid import UUID

import aio_pika
import pytest

from shared import organizations, topology
from shared.repository import sync_queues
from shared.messages import StartSync
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

WINDOW = 20
TERMINAL = ("done", "failed", "partial", "cancelled")


def a_request(org_id: UUID, store_url: str, key: str, **options: str) -> StartSync:
    return StartSync.model_validate({
        "org_id": str(org_id), "idempotency_key": key, "options": options,
        "store": {"url": store_url, "consumer_key": "ck_test", "consumer_secret": "cs_test"},
    })


async def queue_of(pipeline, key: str):
    return await pipeline.pool.fetchrow(
        "SELECT id, state, total_count, done_count, draft_count, queued_count, processing_count, started_at FROM woo_customer_sync_queue"
        " WHERE idempotency_key = $1", key)


async def timed_sync(pipeline, request: StartSync) -> float:
    """Seconds from publishing the request to its queue's end; it must end done."""
    started = time.monotonic()
    await pipeline.publish(request)

    async def finished():
        queue = await queue_of(pipeline, request.idempotency_key)
        return queue if queue is not None and queue["state"] in TERMINAL else None

    queue = await eventually(finished, timeout=60, interval=0.02, what=f"sync {request.idempotency_key} to finish")
    elapsed = time.monotonic() - started
    assert queue["state"] == "done" and queue["done_count"] == queue["total_count"] > 0, dict(queue)
    return elapsed


async def unfinished_syncs(pipeline) -> int:
    return await pipeline.pool.fetchval(
        "SELECT count(*) FROM woo_customer_sync_queue WHERE state NOT IN ('done', 'failed', 'partial', 'cancelled')")


async def a_big_and_a_small_store(pipeline, *, big: int, small: int, seed: int) -> tuple[str, str, UUID]:
    """Two simulated stores: the big one synced by the pipeline's organisation, the small one by
    an organisation of its own (returned)."""
    pipeline.simulator("--valid-emails-only", customers=big, seed=seed)
    big_store = pipeline.store_url
    pipeline.simulator("--valid-emails-only", customers=small, seed=seed + 1)
    small_store = pipeline.store_url
    async with pipeline.pool.acquire() as conn:
        small_org, _ = await organizations.create_organization(conn, name="small")
    return big_store, small_store, small_org


async def test_a_small_sync_beside_a_big_one_does_not_wait_behind_its_backlog_and_the_broker_stays_bounded(pipeline):
    big_store, small_store, small_org = await a_big_and_a_small_store(pipeline, big=3000, small=50, seed=8)
    pipeline.producer(WOOSYNC_DISPATCH_WINDOW=str(WINDOW), WOOSYNC_DISPATCH_INTERVAL_S="0.05")
    pipeline.consumer(WOOSYNC_PREFETCH="20", WOOSYNC_BATCH_SIZE="20")

    await timed_sync(pipeline, a_request(small_org, small_store, "warm-up"))  # connections, caches
    alone = await timed_sync(pipeline, a_request(small_org, small_store, "small-alone"))

    connection = await aio_pika.connect(pipeline.amqp_url)
    try:
        channel = await connection.channel()
        lines_queue = await channel.declare_queue(topology.CUSTOMER_LINES_QUEUE, passive=True)
        samples: list[tuple[int, int]] = []  # (lines ready in the broker, syncs under way)

        async def sample() -> None:
            before = await unfinished_syncs(pipeline)
            depth = (await channel.declare_queue(lines_queue.name, passive=True)).declaration_result.message_count
            samples.append((depth, max(before, await unfinished_syncs(pipeline))))

        # Bulk: every line of the big store becomes publishable at once once its orders are mirrored.
        await pipeline.publish(a_request(pipeline.org_id, big_store, "big", orders="bulk"))

        async def backlogged():
            await sample()
            queue = await queue_of(pipeline, "big")
            return queue if queue is not None and queue["done_count"] >= 100 and queue["draft_count"] >= 1000 else None

        await eventually(backlogged, timeout=120, interval=0.05, what="the big sync under way with a backlog")

        small = a_request(small_org, small_store, "small-beside")
        started = time.monotonic()
        await pipeline.publish(small)

        async def small_finished():
            await sample()
            queue = await queue_of(pipeline, small.idempotency_key)
            return queue if queue is not None and queue["state"] in TERMINAL else None

        queue = await eventually(small_finished, timeout=60, interval=0.02, what="the small sync beside the big one")
        beside = time.monotonic() - started
        assert queue["state"] == "done" and queue["done_count"] == 50, dict(queue)
        big = await queue_of(pipeline, "big")
        assert big["state"] not in TERMINAL, "the big sync ended before the small one: nothing was measured beside it"
        # The fairness itself, without a timing: the small sync did not wait behind the big one's
        # backlog (most of the big sync's lines were still to do when the small one ended).
        big_left = big["draft_count"] + big["queued_count"] + big["processing_count"]
        assert big_left > big["total_count"] // 2, f"the small sync ended only after {dict(big)}"

        async def big_finished():
            await sample()
            queue = await queue_of(pipeline, "big")
            return queue if queue["state"] in TERMINAL else None

        big = await eventually(big_finished, timeout=180, interval=0.1, what="the big sync to finish")
        await sample()
    finally:
        await connection.close()

    print(f"small sync (50 customers): {alone:.2f} s alone, {beside:.2f} s beside a 3,000-customer bulk sync "
          f"({beside / alone:.2f}x); broker depth at most {max(depth for depth, _ in samples)} over {len(samples)} samples "
          f"(window {WINDOW})")
    assert big["state"] == "done" and big["done_count"] == 3000, dict(big)
    # The figure (within 2x alone) is reported above, not asserted: timings belong to the
    # benchmark, and half a second alone is too short to bound on a shared machine.
    too_deep = [(depth, active) for depth, active in samples if depth > WINDOW * max(active, 1)]
    assert not too_deep, f"the lines queue held more than {WINDOW} x the syncs under way: {too_deep[:10]}"
    assert len(samples) > 50


async def test_a_hundred_customer_sync_beside_a_fifty_thousand_customer_backfill_does_not_wait_behind_it(pipeline):
    """The issue's scale: every line of a 50,000-customer bulk sync publishable at once. The
    small sync is measured once the backfill has a backlog; then the backfill is cancelled (its
    end adds nothing here, and the 3,000-customer test above runs one to the end)."""
    big_store, small_store, small_org = await a_big_and_a_small_store(pipeline, big=50_000, small=100, seed=10)
    pipeline.producer()  # the default window: the prefetch times the consumers attached
    pipeline.consumer("consumer-1")
    pipeline.consumer("consumer-2")

    await timed_sync(pipeline, a_request(small_org, small_store, "warm-up"))
    alone = await timed_sync(pipeline, a_request(small_org, small_store, "small-alone"))

    await pipeline.publish(a_request(pipeline.org_id, big_store, "big", orders="bulk"))

    async def backlogged():
        queue = await queue_of(pipeline, "big")
        return queue if queue is not None and queue["done_count"] >= 500 and queue["draft_count"] >= 10_000 else None

    await eventually(backlogged, timeout=300, interval=0.1, what="the 50,000-customer sync under way with a backlog")
    beside = await timed_sync(pipeline, a_request(small_org, small_store, "small-beside"))
    big = await queue_of(pipeline, "big")
    print(f"100-customer sync: {alone:.2f} s alone, {beside:.2f} s beside a 50,000-customer bulk sync "
          f"({beside / alone:.2f}x; the big one had {big['draft_count']:,} lines still in draft)")
    assert big["state"] not in TERMINAL, "the backfill ended first: nothing was measured beside it"
    assert big["draft_count"] > 25_000, f"the small sync ended only after most of the backfill: {dict(big)}"

    cancelled = await sync_queues.cancel_queue(pipeline.pool, big["id"], pipeline.org_id, cancelled_by="test")
    assert cancelled.state == "cancelled"

    async def settled():
        queue = await queue_of(pipeline, "big")
        return queue if queue["draft_count"] + queue["queued_count"] + queue["processing_count"] == 0 else None

    await eventually(settled, timeout=120, interval=0.2, what="the cancelled backfill to settle")
