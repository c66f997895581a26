"""BatchAcks on a real broker: a settled run at the head of the window is acked with one frame,
a batch settled behind an unsettled one is acked message by message, nothing unsettled is acked."""

from __future__ import annotations

import aio_pika
import pytest

from services.consumer.acks import BatchAcks
from tests.waiting import eventually

pytestmark = pytest.mark.integration


async def deliveries(amqp_url: str, count: int):
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=count)
    queue = await channel.declare_queue("acks.test", durable=True)
    for i in range(count):
        await channel.default_exchange.publish(aio_pika.Message(str(i).encode()), routing_key=queue.name)
    received: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def collect(message):
        received.append(message)

    await queue.consume(collect)

    async def all_in():
        return len(received) == count

    await eventually(all_in, timeout=10, what="the deliveries")
    return connection, queue, received


async def remaining_after_reconnect(amqp_url: str, connection) -> int:
    """Close the consumer's connection and count the messages back in the queue.

    The acks were written before the close on the same connection, so the broker has applied
    them when it closes the channel. It then drops the channel's consumer and returns its
    unacked messages in one step, asynchronously: wait for the consumer to be gone, then count.
    """
    await connection.close()
    again = await aio_pika.connect(amqp_url)
    try:
        channel = await again.channel()

        async def consumer_gone() -> list[int]:
            declared = (await channel.declare_queue("acks.test", passive=True)).declaration_result
            return [declared.message_count] if declared.consumer_count == 0 else []

        [remaining] = await eventually(consumer_gone, timeout=10, interval=0.05,
                                       what="the broker to drop the closed consumer")
        return remaining
    finally:
        await again.close()


async def test_batches_settled_in_order_and_out_of_order_ack_exactly_the_settled_messages(amqp_url):
    connection, _, received = await deliveries(amqp_url, 30)
    acks = BatchAcks()
    for message in received:
        acks.delivered(message)
    first, second = received[:10], received[10:20]

    await acks.ack(second)  # finishes while the first batch is still at work: acked one by one
    await acks.ack(first)  # now at the head: one multiple ack covers it
    # the third batch never settles (a crash): it must come back
    assert await remaining_after_reconnect(amqp_url, connection) == 10


async def test_a_forgotten_message_is_not_covered_by_a_later_multiple_ack(amqp_url):
    connection, _, received = await deliveries(amqp_url, 6)
    acks = BatchAcks()
    for message in received:
        acks.delivered(message)
    nacked = received[2]
    acks.forget(nacked)
    await nacked.nack(requeue=False)  # settled another way (dropped here: no dead-letter exchange)
    await acks.ack(received[:2] + received[3:])
    assert await remaining_after_reconnect(amqp_url, connection) == 0


async def test_a_batch_settled_behind_an_unsettled_one_never_acks_the_earlier_one(amqp_url):
    connection, _, received = await deliveries(amqp_url, 30)
    acks = BatchAcks()
    for message in received:
        acks.delivered(message)
    await acks.ack(received[10:20])  # the first and third batches are still at work when we crash
    assert await remaining_after_reconnect(amqp_url, connection) == 20
