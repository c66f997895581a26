"""The producer's composition root on a real broker: a request that waited for a slot while its
channel closed (a broker reconnect) is not enumerated from that stale copy, since the broker has
already returned it to the queue for redelivery (docs/contract.md section 3, fair shares)."""

from __future__ import annotations

import aio_pika
import pytest

from services.producer.main import still_held

pytestmark = pytest.mark.integration


async def test_a_request_whose_channel_closed_while_it_waited_is_no_longer_held(amqp_url):
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await channel.default_exchange.publish(aio_pika.Message(b"{}"), routing_key=queue.name)
        message = await queue.get(timeout=5)
        assert still_held(message)

        await channel.close()
        assert not still_held(message)

        again = await (await connection.channel()).get_queue(queue.name)
        redelivered = await again.get(timeout=5)
        assert redelivered.redelivered and redelivered.body == b"{}"
    finally:
        await connection.close()
