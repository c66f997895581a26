"""The RabbitMQ permissions docs/contract.md section 3 ("Who may publish where") gives a calling
system, on a real broker: enough to publish sync requests and get replies, and nothing else
(no line messages, no consuming, declaring or binding, no forged user_id)."""

from __future__ import annotations

import asyncio
import urllib.parse
import uuid

import aio_pika
import aiormq
import pytest

from shared import amqp, topology
from shared.settings import Settings

pytestmark = pytest.mark.integration

# As documented: configure, write, read; and the optional topic permission.
PUBLISHER_PERMISSIONS = ("^$", r"^woosync\.requests$", "^$")
PUBLISHER_TOPIC_WRITE = r"^sync\.customers$"


@pytest.fixture
async def publisher(broker, amqp_url):
    """A connection as a calling system's user with the documented permissions; (connection, user)."""
    user = f"woosync_pub_{uuid.uuid4().hex[:8]}"
    vhost = urllib.parse.unquote(urllib.parse.urlsplit(amqp_url).path[1:])
    configure, write, read = PUBLISHER_PERMISSIONS
    if broker.management_url:
        quoted_vhost, quoted_user = urllib.parse.quote(vhost, safe=""), urllib.parse.quote(user)
        broker._api("PUT", f"users/{quoted_user}", {"password": "pw", "tags": ""})
        broker._api("PUT", f"permissions/{quoted_vhost}/{quoted_user}", {"configure": configure, "write": write, "read": read})
        broker._api("PUT", f"topic-permissions/{quoted_vhost}/{quoted_user}",
                    {"exchange": topology.REQUESTS_EXCHANGE, "write": PUBLISHER_TOPIC_WRITE, "read": "^$"})
    else:
        broker._run_ctl("add_user", user, "pw")
        broker._run_ctl("set_permissions", "-p", vhost, user, configure, write, read)
        broker._run_ctl("set_topic_permissions", "-p", vhost, user, topology.REQUESTS_EXCHANGE, PUBLISHER_TOPIC_WRITE, "^$")
    service = await amqp.connect(amqp_url)
    await amqp.declare_topology(await service.channel(), Settings())
    parts = urllib.parse.urlsplit(amqp_url)
    connection = await aio_pika.connect(urllib.parse.urlunsplit(
        parts._replace(netloc=f"{user}:pw@{parts.hostname}:{parts.port or 5672}")))
    try:
        yield service, connection, user
    finally:
        await connection.close()
        await service.close()
        if broker.management_url:
            broker._api("DELETE", f"users/{urllib.parse.quote(user)}")
        else:
            broker._run_ctl("delete_user", user)


async def test_a_calling_systems_user_can_publish_a_request_and_get_the_reply_by_direct_reply_to(publisher):
    service, connection, user = publisher
    channel = await connection.channel(publisher_confirms=True)
    replies: asyncio.Queue = asyncio.Queue()
    reply_to = await channel.get_queue("amq.rabbitmq.reply-to", ensure=False)
    await reply_to.consume(replies.put, no_ack=True)
    requests = await channel.get_exchange(topology.REQUESTS_EXCHANGE, ensure=False)
    await requests.publish(aio_pika.Message(b"{}", user_id=user, reply_to="amq.rabbitmq.reply-to",
                                            content_type="application/json"),
                           routing_key="sync.customers", mandatory=True)

    # woosync's side: the request arrived with the publisher's user_id; the reply reaches it.
    service_channel = await service.channel()
    queue = await service_channel.declare_queue(topology.SYNC_REQUESTS_QUEUE, passive=True)
    request = await queue.get(timeout=5)
    assert request.user_id == user
    await service_channel.default_exchange.publish(aio_pika.Message(b'{"error": "x"}'), routing_key=request.reply_to)
    await request.ack()
    reply = await asyncio.wait_for(replies.get(), timeout=10)
    assert reply.body == b'{"error": "x"}'


async def _refused(connection, action) -> str:
    channel = await connection.channel(publisher_confirms=True)
    with pytest.raises((aiormq.exceptions.ChannelAccessRefused, aiormq.exceptions.ChannelPreconditionFailed)) as refused:
        await action(channel)
    return str(refused.value)


async def test_a_calling_systems_user_cannot_forge_its_user_id(publisher):
    _, connection, _ = publisher

    async def forge(channel):
        exchange = await channel.get_exchange(topology.REQUESTS_EXCHANGE, ensure=False)
        await exchange.publish(aio_pika.Message(b"{}", user_id="woosync"), routing_key="sync.customers", mandatory=True)

    assert "PRECONDITION_FAILED" in await _refused(connection, forge)


@pytest.mark.parametrize(("exchange", "routing_key"), [
    (topology.LINES_EXCHANGE, topology.CUSTOMER_LINE_ROUTING_KEY),
    (topology.RETRY_EXCHANGE, "delay.2000ms"),
    (topology.DEAD_EXCHANGE, topology.CUSTOMER_LINE_ROUTING_KEY),
    ("", topology.CUSTOMER_LINES_QUEUE),
    (topology.REQUESTS_EXCHANGE, "sync.anything_else"),
])
async def test_a_calling_systems_user_can_publish_nowhere_else(publisher, exchange, routing_key):
    _, connection, _ = publisher

    async def publish(channel):
        target = channel.default_exchange if exchange == "" else await channel.get_exchange(exchange, ensure=False)
        await target.publish(aio_pika.Message(b"{}"), routing_key=routing_key, mandatory=True)

    assert "ACCESS_REFUSED" in await _refused(connection, publish)


@pytest.mark.parametrize("queue", [topology.SYNC_REQUESTS_QUEUE, topology.CUSTOMER_LINES_QUEUE,
                                   topology.CUSTOMER_LINES_DEAD_QUEUE, topology.SYNC_REQUESTS_DEAD_QUEUE])
async def test_a_calling_systems_user_can_neither_consume_nor_bind_woosyncs_queues(publisher, queue):
    _, connection, _ = publisher

    async def consume(channel):
        await (await channel.get_queue(queue, ensure=False)).get(fail=False)

    async def bind(channel):
        await (await channel.get_queue(queue, ensure=False)).bind(topology.REQUESTS_EXCHANGE, "#")

    async def declare(channel):
        await channel.declare_queue(f"{queue}.copy", durable=True)

    for action in (consume, bind, declare):
        assert "ACCESS_REFUSED" in await _refused(connection, action)
