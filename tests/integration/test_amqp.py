"""shared.amqp against a real RabbitMQ (a fresh vhost per test)."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import orjson
import pytest

from shared import topology
from shared.amqp import (
    PublishFailed,
    connect,
    declare_topology,
    open_publisher_channel,
    publish_customer_lines,
    publish_sync_request,
)
from shared.messages import CustomerLine, StartSync, StoreConfig
from shared.settings import load_settings

pytestmark = pytest.mark.integration


@pytest.fixture
async def channel(amqp_url: str):
    connection = await connect(amqp_url, name="test")
    try:
        channel = await open_publisher_channel(connection)
        await declare_topology(channel, load_settings())
        yield channel
    finally:
        await connection.close()


def a_sync_request(**overrides) -> StartSync:
    fields = dict(
        org_id=uuid.uuid4(),
        store=StoreConfig(url="http://127.0.0.1:8090", consumer_key="ck_test", consumer_secret="cs_test"),
        idempotency_key="nightly-1",
    )
    fields.update(overrides)
    return StartSync(**fields)


async def test_declaring_the_topology_twice_is_harmless(amqp_url: str, channel) -> None:
    await declare_topology(channel, load_settings())
    for name in (topology.SYNC_REQUESTS_QUEUE, topology.CUSTOMER_LINES_QUEUE, topology.CUSTOMER_LINES_DEAD_QUEUE,
                 topology.SYNC_REQUESTS_DEAD_QUEUE):
        await channel.declare_queue(name, passive=True)


async def test_sync_request_reaches_the_producer_queue_persistent_json_with_secrets(channel) -> None:
    request = a_sync_request()
    await publish_sync_request(channel, request, reply_to="client-replies", correlation_id="c-1")

    queue = await channel.declare_queue(topology.SYNC_REQUESTS_QUEUE, passive=True)
    message = await queue.get(timeout=5)
    await message.ack()
    assert message.content_type == "application/json"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert (message.reply_to, message.correlation_id) == ("client-replies", "c-1")
    assert StartSync.model_validate_json(message.body) == request
    assert orjson.loads(message.body)["store"]["consumer_secret"] == "cs_test"


async def test_an_unroutable_sync_request_raises_instead_of_vanishing(amqp_url: str) -> None:
    connection = await connect(amqp_url)
    try:
        channel = await open_publisher_channel(connection)
        # The exchange exists but nothing is bound to it: the broker confirms and returns.
        await channel.declare_exchange(topology.REQUESTS_EXCHANGE, "topic", durable=True)
        with pytest.raises(PublishFailed, match="did not accept the sync request"):
            await publish_sync_request(channel, a_sync_request())
    finally:
        await connection.close()


def customer_lines(count: int) -> list[CustomerLine]:
    queue_id, org_id, store_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    return [
        CustomerLine(line_id=uuid.uuid4(), queue_id=queue_id, org_id=org_id, store_id=store_id,
                     woo_customer_id=n, customer={"id": n, "email": f"c{n}@example.com"})
        for n in range(1, count + 1)
    ]


async def test_many_customer_lines_are_all_confirmed_and_all_arrive(channel) -> None:
    lines = customer_lines(1200)
    confirmed = await publish_customer_lines(channel, lines, max_in_flight=100)
    assert confirmed == 1200

    queue = await channel.declare_queue(topology.CUSTOMER_LINES_QUEUE, passive=True)
    received: dict[str, CustomerLine] = {}
    async with queue.iterator() as messages:
        async for message in messages:
            await message.ack()
            assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
            line = CustomerLine.model_validate_json(message.body)
            assert message.message_id == str(line.line_id)
            received[message.message_id] = line
            if len(received) == len(lines):
                break
    assert received == {str(line.line_id): line for line in lines}


async def test_customer_lines_with_no_bound_queue_raise(amqp_url: str) -> None:
    connection = await connect(amqp_url)
    try:
        channel = await open_publisher_channel(connection)
        await channel.declare_exchange(topology.LINES_EXCHANGE, "direct", durable=True)
        with pytest.raises(PublishFailed, match="customer line"):
            await asyncio.wait_for(publish_customer_lines(channel, customer_lines(10)), 20)
    finally:
        await connection.close()
