"""The pipeline end to end: the real producer and consumer processes, RabbitMQ, PostgreSQL and a
simulated store (docs/contract.md sections 3-5)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import aio_pika
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared import topology
from shared.repository import sync_queues
from tests.waiting import eventually
from woosync.simulator.data import SimulatedStore

pytestmark = pytest.mark.e2e

TERMINAL = {"done", "failed", "partial", "cancelled"}


async def only_queue(pipeline):
    queues = await sync_queues.list_queues(pipeline.pool, pipeline.org_id, limit=10, offset=0)
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


async def sync_requests_handled(producer) -> int:
    """How many sync requests the producer has finished with (counted after each ack), from its /metrics."""
    port = re.search(r"metrics on :(\d+)", producer.log()).group(1)
    async with httpx.AsyncClient() as client:
        exposition = (await client.get(f"http://127.0.0.1:{port}/metrics", timeout=5)).text
    return int(sum(sample.value for family in text_string_to_metric_families(exposition)
                   for sample in family.samples if sample.name == "woosync_sync_requests_total"))


# ---- the expected customer rows, computed from the store's data by docs/contract.md section 5 alone
# (written out here, not taken from shared.mapping, so that a mapping bug shows up as a wrong row)

PAID = ("completed", "processing")


def utc(wordpress_gmt: str) -> datetime:
    """A `*_gmt` date as WooCommerce sends it (no zone, UTC by name)."""
    return datetime.fromisoformat(wordpress_gmt).replace(tzinfo=timezone.utc)


def present(*values: str) -> str | None:
    """The first value that is not empty, else None."""
    return next((value for value in values if value), None)


def expected_row(customer: dict[str, Any], orders: list[dict[str, Any]], *, org_id, store_url: str) -> dict[str, Any]:
    """Every column of the customer row but `tags` (see expected_tags), plus the latest order's date."""
    billing, shipping = customer["billing"], customer["shipping"]
    email = customer["email"].strip().lower()
    name = (customer["first_name"] + " " + customer["last_name"]).strip() \
        or (billing["first_name"] + " " + billing["last_name"]).strip() or email

    paid = [order for order in orders if order["status"] in PAID]
    lifetime_value = sum((Decimal(order["total"]) for order in paid), Decimal(0)) \
        + sum((Decimal(refund["total"]) for order in paid for refund in order["refunds"]), Decimal(0))
    lifetime_value = lifetime_value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    completed = sum(1 for order in orders if order["status"] == "completed")
    if lifetime_value > 50000:
        segment = "enterprise"
    elif lifetime_value > 20000 or completed > 50:
        segment = "mid_market"
    elif lifetime_value > 5000 or completed > 10:
        segment = "smb"
    elif completed > 2:
        segment = "startup"
    else:
        segment = "individual"

    order_dates = [utc(order["date_created_gmt"]) for order in orders]
    signed_up = utc(customer["date_created_gmt"])
    return {
        "org_id": org_id,
        "email": email,
        "name": name,
        "phone": present(billing["phone"], shipping["phone"]),
        "company": present(billing["company"], shipping["company"]),
        "segment": segment,
        "status": "active" if completed > 0 else "prospect",
        "lifetime_value": lifetime_value,
        "acquisition_date": min(order_dates, default=signed_up),
        "last_interaction_date": max(order_dates, default=signed_up),
        "address": {
            "street": ", ".join(part for part in (billing["address_1"], billing["address_2"]) if part),
            "city": billing["city"],
            "state": billing["state"],
            "postal_code": billing["postcode"],
            "country": billing["country"],
        },
        "metadata": {
            "woocommerce_id": customer["id"],
            "store_url": store_url,
            "username": customer["username"],
            "role": customer["role"],
            "total_orders": len(orders),
            "completed_orders": completed,
            "meta": {entry["key"]: entry["value"] for entry in customer["meta_data"]},
        },
        "woo_store_url": store_url,
        "woo_customer_id": customer["id"],
    }


def expected_tags(orders: list[dict[str, Any]], *, started: datetime, finished: datetime) -> list[set[str]]:
    """The tag sets the row may have. `active` depends on when the consumer mapped the customer,
    somewhere between `started` and `finished`: a latest order that turned 30 days old in between
    allows both answers."""
    completed = sum(1 for order in orders if order["status"] == "completed")
    tags = {"woocommerce"}
    if completed > 10:
        tags.add("high-value")
    if completed == 0:
        tags.add("prospect")
    latest = max((utc(order["date_created_gmt"]) for order in orders), default=None)
    if latest is None or started - latest >= timedelta(days=30):
        return [tags]
    if finished - latest < timedelta(days=30):
        return [tags | {"active"}]
    return [tags, tags | {"active"}]


async def test_a_5000_customer_sync_with_two_consumers_ends_done_with_every_row_mapped(pipeline):
    as_of = datetime.now(timezone.utc).date()  # pinned: the store's dates do not move at midnight
    pipeline.simulator("--valid-emails-only", "--as-of", as_of.isoformat(), customers=5000, seed=11)
    pipeline.producer()
    pipeline.consumer("consumer-1")
    pipeline.consumer("consumer-2")
    started = datetime.now(timezone.utc)
    await pipeline.publish(pipeline.request(idempotency_key="five-thousand"))

    queue = await finished_queue(pipeline, timeout=300)
    finished = datetime.now(timezone.utc)
    assert queue.state == "done", queue
    assert queue.total_count == 5000
    assert_counts_exact(queue, await true_counts(pipeline, queue.id))

    store = SimulatedStore(5000, 11, as_of=as_of, base_url=pipeline.store_url, valid_emails_only=True)
    rows = {r["woo_customer_id"]: dict(r) for r in await pipeline.pool.fetch("SELECT * FROM customer WHERE org_id = $1", pipeline.org_id)}
    assert sorted(rows) == list(store.customer_ids("all"))
    wrong = []
    for woo_id in store.customer_ids("all"):
        customer, orders = store.customer(woo_id), store.orders_for(woo_id)
        row = rows[woo_id]
        expected = expected_row(customer, orders, org_id=pipeline.org_id, store_url=pipeline.store_url)
        assert set(row) == {*expected, "tags", "id", "created_at", "updated_at"}, sorted(row)
        wrong += [(woo_id, column, row[column], want) for column, want in expected.items() if row[column] != want]
        if set(row["tags"]) not in expected_tags(orders, started=started, finished=finished) or len(set(row["tags"])) != len(row["tags"]):
            wrong.append((woo_id, "tags", row["tags"], expected_tags(orders, started=started, finished=finished)))
    assert not wrong, f"{len(wrong)} wrong values, the first: {wrong[:10]}"
    lines = await pipeline.pool.fetchval(
        "SELECT count(*) FROM woo_customer_sync_queue_line WHERE queue_id = $1 AND result_customer_id IS NOT NULL AND was_update = false",
        queue.id)
    assert lines == 5000


async def test_a_line_whose_orders_always_fail_is_tried_max_attempts_times_then_dead_lettered(pipeline):
    pipeline.simulator("--fail-orders-for", "7", customers=30, seed=5)
    pipeline.producer()
    pipeline.consumer(WOOSYNC_MAX_ATTEMPTS="3", WOOSYNC_RETRY_DELAY_MS="300")
    # Per-customer order requests (the store fails those of customer 7): under `auto` a store
    # this small is cheaper in bulk, and its one orders listing does not fail.
    await pipeline.publish(pipeline.request(options={"orders": "per_customer"}))

    queue = await finished_queue(pipeline)
    assert queue.state == "partial" and queue.is_action_required
    assert queue.plan is not None and queue.plan["orders"] == "per_customer", queue.plan
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
    producer = pipeline.producer()
    request = pipeline.request(idempotency_key="nightly-2026-11-22")
    await pipeline.publish(request)
    await pipeline.publish(request)
    pipeline.consumer()
    queue = await finished_queue(pipeline)

    async def both_handled() -> list[int]:
        handled = await sync_requests_handled(producer)
        return [handled] if handled >= 2 else []

    assert await eventually(both_handled, timeout=60, what="the producer to finish with both requests") == [2]
    queues = await sync_queues.list_queues(pipeline.pool, pipeline.org_id, limit=10, offset=0)
    assert len(queues) == 1
    assert queue.total_count == 300
    assert await pipeline.pool.fetchval("SELECT count(*) FROM woo_customer_sync_queue_line") == 300


async def test_each_invalid_request_is_dead_lettered_with_its_reason_and_the_producer_goes_on(pipeline):
    pipeline.simulator(customers=40, seed=4)
    producer = pipeline.producer()
    pipeline.consumer()
    store = {"url": pipeline.store_url, "consumer_key": "ck_test", "consumer_secret": "cs_test"}
    import orjson

    unknown_org = orjson.dumps({"org_id": "6f1c7c1e-6c1b-4d43-9a8e-0d6c1b8e2f10", "store": store})
    invalid = {
        "not_json": b"{this is not json",
        "invalid": orjson.dumps({"org_id": str(pipeline.org_id), "store": {**store, "url": "ftp://shop"}}),
        "unknown_org": unknown_org,
        "store_unavailable": orjson.dumps({"org_id": str(pipeline.org_id),
                                           "store": {**store, "consumer_secret": "cs_wrong"}}),
    }
    missing_secret = orjson.dumps({"org_id": str(pipeline.org_id), "store": {**store, "consumer_secret": ""}})
    for body in [*invalid.values(), missing_secret]:
        await pipeline.publish(body)
    await pipeline.publish(pipeline.request(idempotency_key="after-the-bad-ones"))

    async def served():
        queues = await sync_queues.list_queues(pipeline.pool, pipeline.org_id, limit=10, offset=0)
        return [q for q in queues if q.idempotency_key == "after-the-bad-ones" and q.state in TERMINAL]

    [good] = await eventually(served, timeout=60, what="the valid request to be served")
    assert good.total_count == 40
    assert producer.running

    connection = await aio_pika.connect(pipeline.amqp_url)
    try:
        channel = await connection.channel()
        dead = await channel.declare_queue(topology.SYNC_REQUESTS_DEAD_QUEUE, passive=True)
        reasons = []
        while (message := await dead.get(timeout=5, fail=False)) is not None:
            reasons.append((message.headers[topology.DEAD_REASON_HEADER], message.headers[topology.ERROR_HEADER]))
            await message.ack()
    finally:
        await connection.close()
    assert sorted(r for r, _ in reasons) == sorted([*invalid, "invalid"])
    errors = dict(reasons)
    assert "not JSON" in errors["not_json"]
    assert "store.url" in errors["invalid"] or "consumer_secret" in errors["invalid"]
    assert "not registered" in errors["unknown_org"]
    assert "credentials" in errors["store_unavailable"].lower() or "401" in errors["store_unavailable"]
    # The refused store's queue records the error and asks for action.
    failed = [q for q in await sync_queues.list_queues(pipeline.pool, pipeline.org_id, limit=10, offset=0)
              if q.error_message]
    assert len(failed) == 1 and failed[0].is_action_required and failed[0].state == "failed"


async def test_the_consumer_secret_appears_in_no_line_message_log_line_or_table_row(pipeline):
    secret = "cs_very_secret_value_42"
    pipeline.simulator("--consumer-secret", secret, customers=50, seed=6)
    # Credentials kept at rest for the consumers are encrypted when a key is configured.
    key = __import__("cryptography.fernet", fromlist=["Fernet"]).Fernet.generate_key().decode()
    producer = pipeline.producer(WOOSYNC_SECRET_KEY=key)
    consumer = pipeline.consumer(WOOSYNC_SECRET_KEY=key)

    connection = await aio_pika.connect(pipeline.amqp_url)
    channel = await connection.channel()
    tap = await channel.declare_queue(exclusive=True)
    lines_exchange = await channel.declare_exchange(topology.LINES_EXCHANGE, "direct", durable=True)
    await tap.bind(lines_exchange, topology.CUSTOMER_LINE_ROUTING_KEY)

    request = pipeline.request()
    request = request.model_copy(update={"store": request.store.model_copy(update={"consumer_secret": __import__("pydantic").SecretStr(secret)})})
    await pipeline.publish(request)
    queue = await finished_queue(pipeline)
    assert queue.done_count > 0

    bodies = []
    while (message := await tap.get(timeout=5, fail=False)) is not None:
        bodies.append(message.body)
        await message.ack()
    await connection.close()
    assert len(bodies) == queue.total_count
    assert not any(secret.encode() in body for body in bodies)
    for process in (producer, consumer):
        assert secret not in process.log()
    dump = await pipeline.pool.fetch(
        "SELECT t::text AS row FROM (SELECT * FROM woo_customer_sync_queue) t UNION ALL "
        "SELECT t::text FROM (SELECT * FROM woo_customer_sync_queue_line) t UNION ALL "
        "SELECT t::text FROM (SELECT * FROM woo_sync_activity) t UNION ALL "
        "SELECT t::text FROM (SELECT * FROM customer) t UNION ALL "
        "SELECT t::text FROM (SELECT * FROM woo_store) t")
    assert dump and not any(secret in r["row"] for r in dump)
    assert await pipeline.pool.fetchval("SELECT credentials_format FROM woo_store") == "fernet"


async def test_a_malformed_line_message_is_dead_lettered_and_the_consumer_goes_on(pipeline):
    pipeline.simulator(customers=20, seed=13)
    pipeline.producer()
    consumer = pipeline.consumer()
    connection = await aio_pika.connect(pipeline.amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(topology.LINES_EXCHANGE)
        for body in (b"not json at all", b'{"line_id": "not-a-uuid"}', b"[]"):
            await exchange.publish(aio_pika.Message(body), routing_key=topology.CUSTOMER_LINE_ROUTING_KEY)
        await pipeline.publish(pipeline.request())
        queue = await finished_queue(pipeline)
        assert queue.total_count == 20 and queue.draft_count == queue.processing_count == 0

        dead = await channel.declare_queue(topology.CUSTOMER_LINES_DEAD_QUEUE, passive=True)
        reasons = []
        while (message := await dead.get(timeout=5, fail=False)) is not None:
            reasons.append((message.headers[topology.DEAD_REASON_HEADER], message.headers[topology.ERROR_HEADER], message.body))
            await message.ack()
    finally:
        await connection.close()
    assert sorted(body for _, _, body in reasons) == sorted([b"not json at all", b'{"line_id": "not-a-uuid"}', b"[]"])
    assert all(reason == "malformed" and "malformed customer line" in error for reason, error, _ in reasons)
    assert consumer.running
