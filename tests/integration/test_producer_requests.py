"""Every sync request ends (docs/contract.md section 3): whatever goes wrong with one request, it is
dead-lettered with its reason, its queue records the error, and its producer slot is freed for the
others; a request that keeps killing the producer is dead-lettered after the delivery limit; what
rests in the dead-letter queue holds no credential; a body that is not JSON by its content type is
refused. The producer's handler in-process against real PostgreSQL and RabbitMQ; the consumer is
the real process."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aio_pika
import orjson
import pytest

from services.producer import handler as producer_handler
from services.producer.handler import SyncRequestHandler
from shared import amqp, organizations, topology
from shared.messages import StartSync
from shared.metrics import Metrics
from shared.repository import sync_queues
from shared.settings import Settings
from tests.integration.producer_background import page_work_and_dispatch
from tests.processes import WoosyncProcess, service_env
from tests.waiting import eventually
from woosync.simulator.app import serve
from woosync.simulator.config import SimulatorConfig
from woosync.simulator.data import SimulatedStore

pytestmark = pytest.mark.integration

SECRET = "cs_secret_that_must_not_rest_in_the_broker"
TERMINAL = {"done", "failed", "partial", "cancelled"}


def text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def dead_letters(channel: aio_pika.abc.AbstractChannel) -> list[aio_pika.abc.AbstractIncomingMessage]:
    queue = await channel.declare_queue(topology.SYNC_REQUESTS_DEAD_QUEUE, passive=True)
    found = []
    while (message := await queue.get(timeout=5, fail=False)) is not None:
        found.append(message)
        await message.ack()
    return found


def carries(message: aio_pika.abc.AbstractIncomingMessage, secret: str) -> bool:
    raw_headers = orjson.dumps(message.headers or {}, default=text)
    return secret.encode() in message.body or secret.encode() in raw_headers


@pytest.fixture
async def org_id(db_pool):
    async with db_pool.acquire() as conn:
        org, _ = await organizations.create_organization(conn, name="requests")
    return org


@pytest.fixture
async def channel(amqp_url) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await amqp.connect(amqp_url)
    try:
        channel = await amqp.open_publisher_channel(connection)
        await amqp.declare_topology(channel, Settings())
        yield channel
    finally:
        await connection.close()


def request_body(org_id, url: str, **fields) -> dict:
    return {"org_id": str(org_id), "store": {"url": url, "consumer_key": "ck_test", "consumer_secret": SECRET}, **fields}


async def publish_raw(channel, body: bytes, *, content_type: str | None = "application/json") -> None:
    exchange = await channel.get_exchange(topology.REQUESTS_EXCHANGE, ensure=False)
    await exchange.publish(aio_pika.Message(body, content_type=content_type, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                           routing_key=topology.SYNC_CUSTOMERS_ROUTING_KEY, mandatory=True)


async def settle_one(db_pool, channel, settings: Settings | None = None) -> None:
    """Hand the next sync request to the producer's handler."""
    settings = settings or Settings()
    requests = await amqp.consumable_queue(channel, topology.SYNC_REQUESTS_QUEUE, settings)
    await SyncRequestHandler(db_pool, channel, settings, Metrics())(await requests.get(timeout=5))


async def test_requests_that_break_the_handler_are_dead_lettered_and_a_good_one_behind_them_is_served(
        db_pool, database_url, amqp_url, org_id, channel, monkeypatch, tmp_path):
    real_pages = producer_handler._customer_pages

    def pages_breaking_for_poison(client, options, **kwargs):
        if options.email == "poison@example.com":
            raise ValueError(f"Port out of range 0-65535 (while holding {SECRET})")
        return real_pages(client, options, **kwargs)

    monkeypatch.setattr(producer_handler, "_customer_pages", pages_breaking_for_poison)
    settings = Settings(producer_concurrency=4)
    consumer = WoosyncProcess("consumer", ["run", "consumer"], service_env(database_url, amqp_url), tmp_path)
    async with await serve(SimulatedStore(30, seed=5, valid_emails_only=True), SimulatorConfig(port=0, customers=30, seed=5, valid_emails_only=True,
                                                                       consumer_secret=SECRET)) as simulator:
        for n in range(5):
            await publish_raw(channel, orjson.dumps(request_body(org_id, simulator.url, idempotency_key=f"poison-{n}",
                                                                 options={"email": "poison@example.com"})))
        await publish_raw(channel, orjson.dumps(request_body(org_id, simulator.url, idempotency_key="good")))

        # The producer's way of consuming, on a connection of its own: its concurrency as
        # prefetch, each request to the handler.
        producer = await amqp.connect(amqp_url)
        consumer.start()
        try:
            producer_channel = await amqp.open_publisher_channel(producer)
            await producer_channel.set_qos(prefetch_count=settings.producer_concurrency)
            requests = await amqp.consumable_queue(producer_channel, topology.SYNC_REQUESTS_QUEUE, settings)
            await requests.consume(SyncRequestHandler(db_pool, producer_channel, settings, Metrics()))

            async def good_queue_finished():
                queues = await sync_queues.list_queues(db_pool, org_id, limit=10, offset=0)
                return [q for q in queues if q.idempotency_key == "good" and q.state in TERMINAL]

            # The good request's pages are page work, its lines published by the dispatcher.
            async with page_work_and_dispatch(db_pool, producer_channel, settings):
                [good] = await eventually(good_queue_finished, timeout=60, what="the good request's queue to finish")
            dead: list[aio_pika.abc.AbstractIncomingMessage] = []

            async def five_dead_letters():
                dead.extend(await dead_letters(channel))
                return len(dead) >= 5

            await eventually(five_dead_letters, timeout=10, what="the poison requests' dead letters")
        finally:
            await producer.close()  # anything left unacked would now be back in the queue
            consumer.stop()

    assert good.state == "done" and good.total_count == 30
    assert len(dead) == 5
    for message in dead:
        assert message.headers[topology.DEAD_REASON_HEADER] == "internal_error"
        assert "ValueError: Port out of range 0-65535" in text(message.headers[topology.ERROR_HEADER])
        assert not carries(message, SECRET)
    poisoned = [q for q in await sync_queues.list_queues(db_pool, org_id, limit=10, offset=0)
                if q.idempotency_key.startswith("poison")]
    assert len(poisoned) == 5
    for queue in poisoned:
        assert queue.state == "failed" and queue.is_action_required and queue.enumeration_done
        assert "ValueError" in queue.error_message and SECRET not in queue.error_message
    requests = await channel.declare_queue(topology.SYNC_REQUESTS_QUEUE, passive=True)
    assert await requests.get(fail=False) is None  # every request was acked


async def _deliver_and_crash(amqp_url: str) -> int:
    """Take the next sync request and die holding it (the connection drops, nothing is settled);
    returns how many times it had been delivered before."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(topology.SYNC_REQUESTS_QUEUE, ensure=False)
        message = await queue.get(timeout=5)
        return int((message.headers or {}).get("x-delivery-count", 0))
    finally:
        await connection.close()


async def test_a_request_that_keeps_killing_the_producer_is_dead_lettered_without_its_secret_on_its_last_delivery(
        db_pool, amqp_url, org_id, channel):
    await publish_raw(channel, orjson.dumps(request_body(org_id, "http://127.0.0.1:1", idempotency_key="crashes")))
    counts = [await _deliver_and_crash(amqp_url) for _ in range(topology.SYNC_REQUESTS_DELIVERY_LIMIT)]
    assert counts == list(range(topology.SYNC_REQUESTS_DELIVERY_LIMIT))

    await settle_one(db_pool, channel)  # the last delivery the broker allows

    [dead] = await dead_letters(channel)
    assert dead.headers[topology.DEAD_REASON_HEADER] == "delivery_limit"
    assert f"delivered {topology.SYNC_REQUESTS_DELIVERY_LIMIT + 1} times" in text(dead.headers[topology.ERROR_HEADER])
    assert not carries(dead, SECRET)
    assert orjson.loads(dead.body)["store"]["consumer_secret"] == "[removed]"


async def test_a_request_that_kills_the_producer_on_every_delivery_is_dead_lettered_by_the_broker(amqp_url, org_id, channel):
    await publish_raw(channel, orjson.dumps(request_body(org_id, "http://127.0.0.1:1")))
    for _ in range(topology.SYNC_REQUESTS_DELIVERY_LIMIT + 1):
        await _deliver_and_crash(amqp_url)

    async def dead_lettered():
        return await dead_letters(channel)

    [dead] = await eventually(dead_lettered, timeout=10, what="the broker to dead-letter the request")
    [death] = dead.headers["x-death"]
    assert text(death["queue"]) == topology.SYNC_REQUESTS_QUEUE and text(death["reason"]) == "delivery_limit"
    requests = await channel.declare_queue(topology.SYNC_REQUESTS_QUEUE, passive=True)
    assert await requests.get(fail=False) is None


async def test_a_rejected_request_rests_in_the_dead_letter_queue_without_its_credentials(db_pool, org_id, channel):
    unknown_org = request_body(uuid.uuid4(), "https://shop.example.com")
    await publish_raw(channel, orjson.dumps(unknown_org))
    await publish_raw(channel, b'{"org_id": "' + str(org_id).encode() + b'", "store": {"consumer_secret": "' + SECRET.encode())
    await publish_raw(channel, orjson.dumps(request_body(org_id, f"https://admin:{SECRET}@shop.example.com")))
    for _ in range(3):
        await settle_one(db_pool, channel)

    dead = await dead_letters(channel)
    assert [m.headers[topology.DEAD_REASON_HEADER] for m in dead] == ["unknown_org", "not_json", "invalid"]
    for message in dead:
        assert not carries(message, SECRET)
    assert orjson.loads(dead[0].body)["store"] == {"url": "https://shop.example.com", "consumer_key": "[removed]",
                                                   "consumer_secret": "[removed]"}
    assert dead[1].body == b"" and "not JSON" in text(dead[1].headers[topology.BODY_HEADER])
    assert "store.url" in text(dead[2].headers[topology.ERROR_HEADER])


async def test_a_request_whose_content_type_is_not_json_is_dead_lettered_and_creates_no_queue(db_pool, org_id, channel):
    body = orjson.dumps(request_body(org_id, "http://127.0.0.1:1", idempotency_key="plain"))
    await publish_raw(channel, body, content_type="text/plain")
    await settle_one(db_pool, channel)

    [dead] = await dead_letters(channel)
    assert dead.headers[topology.DEAD_REASON_HEADER] == "unsupported_content_type"
    assert "text/plain" in text(dead.headers[topology.ERROR_HEADER])
    assert await db_pool.fetchval("SELECT count(*) FROM woo_customer_sync_queue") == 0


async def test_a_request_with_an_unknown_conflict_policy_is_dead_lettered_naming_the_allowed_ones_and_creates_no_queue(
        db_pool, org_id, channel):
    body = request_body(org_id, "https://shop.example.com", idempotency_key="newest",
                        options={"conflict_policy": "newest_wins"})
    await publish_raw(channel, orjson.dumps(body))
    await settle_one(db_pool, channel)

    [dead] = await dead_letters(channel)
    assert dead.headers[topology.DEAD_REASON_HEADER] == "invalid"
    error = text(dead.headers[topology.ERROR_HEADER])
    assert "conflict_policy" in error and "store_wins" in error and "local_wins" in error
    assert not carries(dead, SECRET)
    assert await db_pool.fetchval("SELECT count(*) FROM woo_customer_sync_queue") == 0


async def test_the_dead_letter_queues_are_declared_with_a_byte_cap(amqp_url, channel):
    plan = {spec.name: spec.arguments for spec in amqp.topology_for(Settings()).queues}
    for name in (topology.SYNC_REQUESTS_DEAD_QUEUE, topology.CUSTOMER_LINES_DEAD_QUEUE):
        assert "x-max-length-bytes" in plan[name]
        # The broker accepts the declaration only if the queue already has exactly these arguments.
        await channel.declare_queue(name, durable=True, arguments=plan[name])
