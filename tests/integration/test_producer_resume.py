"""services.producer.resume against real PostgreSQL and RabbitMQ: a resumed request publishes
every line still in draft (recorded, perhaps never published) once each, in woo_customer_id
order, across pages; lines already claimed or finished, and other queues' lines, stay unpublished."""

from __future__ import annotations

import uuid

import asyncpg
import orjson
import pytest

from services.producer.resume import republish_draft_lines
from shared import amqp, topology
from shared.repository import queue_lines, stores
from shared.settings import Settings
from tests.integration.repository_setup import customer, new_org, new_queue

pytestmark = pytest.mark.integration


async def published_lines(tap) -> list[dict]:
    """Every message the tap queue holds, in queue order (the publisher's confirms are in: they are all there)."""
    messages = []
    while (message := await tap.get(timeout=5, fail=False)) is not None:
        messages.append(orjson.loads(message.body))
        await message.ack()
    return messages


async def test_draft_lines_are_published_again_once_each_in_order_across_pages(db_pool: asyncpg.Pool, amqp_url: str) -> None:
    org_id = await new_org(db_pool)
    store_id = await stores.upsert_store(db_pool, org_id=org_id, url="http://shop.test", consumer_key="ck_test",
                                         consumer_secret="cs_test", cipher=None)
    queue, lines = await new_queue(db_pool, org_id, customers=7)
    other_queue, _ = await new_queue(db_pool, org_id, customers=3)  # its drafts are not this queue's business
    # Customer 3 is being processed and customer 5 is done: neither is published again.
    await queue_lines.claim_lines(db_pool, [lines[2], lines[4]])
    await queue_lines.mark_lines_done(db_pool, [(lines[4], None, False)])
    drafts = [n for n in range(1, 8) if n not in (3, 5)]

    connection = await amqp.connect(amqp_url)
    try:
        channel = await amqp.open_publisher_channel(connection)
        await amqp.declare_topology(channel, Settings())
        tap = await channel.declare_queue(exclusive=True)
        await tap.bind(await channel.get_exchange(topology.LINES_EXCHANGE), topology.CUSTOMER_LINE_ROUTING_KEY)

        published = await republish_draft_lines(db_pool, channel, queue.id, org_id, store_id, page_size=2)
        messages = await published_lines(tap)

        # Another organisation's id finds no lines to publish.
        assert await republish_draft_lines(db_pool, channel, queue.id, await new_org(db_pool, "Other"), store_id) == 0
        assert await published_lines(tap) == []
    finally:
        await connection.close()

    assert published == len(drafts) == len(messages)
    assert [message["woo_customer_id"] for message in messages] == drafts
    assert [message["line_id"] for message in messages] == [str(lines[n - 1]) for n in drafts]
    assert all(message["queue_id"] == str(queue.id) and message["org_id"] == str(org_id)
               and message["store_id"] == str(store_id) for message in messages)
    assert [message["customer"] for message in messages] == [customer(n) for n in drafts]
    assert str(other_queue.id) not in {message["queue_id"] for message in messages}


async def test_a_queue_without_draft_lines_publishes_nothing(db_pool: asyncpg.Pool, amqp_url: str) -> None:
    org_id = await new_org(db_pool)
    queue, lines = await new_queue(db_pool, org_id, customers=2)
    await queue_lines.mark_lines_failed(db_pool, [(line_id, "no valid email") for line_id in lines])
    connection = await amqp.connect(amqp_url)
    try:
        channel = await amqp.open_publisher_channel(connection)
        await amqp.declare_topology(channel, Settings())
        assert await republish_draft_lines(db_pool, channel, queue.id, org_id, uuid.uuid4()) == 0
    finally:
        await connection.close()
