"""RabbitMQ plumbing every service shares: connect, declare the topology, publish reliably.

Publishing is always persistent, `mandatory` and confirmed, on a channel opened with
`on_return_raises=True`: an unroutable message is confirmed by the broker all the same, so
without the return it would be lost silently (docs/architecture.md section 4).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from shared import topology
from shared.errors import StartupError
from shared.messages import CustomerLine, StartSync

if TYPE_CHECKING:
    from shared.settings import Settings

JSON = "application/json"
# Confirms outstanding at once when publishing many lines: ~500 in flight reaches the broker's
# ceiling on this class of machine (docs/architecture.md section 7: 4,200-5,300 msg/s) without unbounded memory.
DEFAULT_MAX_IN_FLIGHT = 500
# An error travels in a header at most this long (headers share one frame with the body's metadata).
ERROR_HEADER_MAX = 1000


class PublishFailed(Exception):
    """The broker refused a message (nack), returned it as unroutable, or the channel closed."""


class TopologyMismatch(StartupError):
    """A queue exists on the broker with other arguments than this woosync declares (an older
    version's, or someone else's): the broker refuses the declaration (PRECONDITION_FAILED)."""


async def connect(url: str, *, name: str | None = None, timeout: float = 10.0) -> AbstractRobustConnection:
    """A robust connection: aio-pika restores channels, topology and consumers after a reconnect.

    The first connect is bounded by `timeout` so a wrong URL fails start-up instead of hanging."""
    properties = {"connection_name": name} if name else None
    return await aio_pika.connect_robust(url, timeout=timeout, client_properties=properties)


async def open_publisher_channel(connection: aio_pika.abc.AbstractConnection) -> AbstractChannel:
    """A channel with publisher confirms whose unroutable `mandatory` publishes raise."""
    return await connection.channel(publisher_confirms=True, on_return_raises=True)


def topology_for(settings: Settings) -> topology.Topology:
    return topology.build_topology(
        dead_letter_ttl_ms=settings.dead_letter_ttl_hours * 3_600_000,
        dead_letter_max_length=settings.dead_letter_max_length,
        dead_letter_max_bytes=settings.dead_letter_max_bytes,
        retry_delays_ms=tuple(
            topology.retry_delay_ms(settings.retry_delay_ms, attempt) for attempt in range(1, settings.max_attempts + 1)
        ),
    )


async def declare_topology(channel: AbstractChannel, settings: Settings) -> None:
    """Declare every exchange, queue and binding of docs/contract.md section 3, idempotently.

    Arguments must match any existing declaration exactly (the broker refuses a redeclaration
    with different arguments, PRECONDITION_FAILED), hence one builder for every service. A queue
    left by an older woosync with other arguments raises TopologyMismatch, whose one line names
    the queue and the upgrade step (docs/contract.md section 3)."""
    plan = topology_for(settings)
    exchanges = {}
    for name, kind in plan.exchanges:
        exchanges[name] = await channel.declare_exchange(name, kind, durable=True)
    for spec in plan.queues:
        try:
            queue = await channel.declare_queue(spec.name, durable=True, arguments=dict(spec.arguments) or None)
        except aio_pika.exceptions.ChannelPreconditionFailed as exc:
            raise TopologyMismatch(
                f"RabbitMQ refuses to declare queue {spec.name}: the queue {spec.name} exists with other arguments "
                f"than this woosync declares ({_arguments_text(spec.arguments)}), probably from an older version "
                f"(broker said: {_reply_text(exc)}). To upgrade: stop the services that use it, drain it, delete it "
                f"(rabbitmqctl delete_queue {spec.name} -p <vhost>), and start woosync again; see docs/contract.md "
                "section 3"
            ) from None
        for exchange_name, routing_key in spec.bindings:
            await queue.bind(exchanges[exchange_name], routing_key)


def _arguments_text(arguments: Mapping[str, object]) -> str:
    return ", ".join(f"{name}={value}" for name, value in arguments.items()) or "no arguments"


def _reply_text(exc: BaseException) -> str:
    """The broker's reason in one line (aiormq gives it as (code, text) arguments)."""
    return " ".join(str(part) for part in exc.args).replace("\n", " ")[:300]


async def publish_sync_request(
    channel: AbstractChannel,
    request: StartSync,
    *,
    reply_to: str | None = None,
    correlation_id: str | None = None,
    user_id: str | None = None,
    timeout: float = 10.0,
) -> None:
    """Publish a sync request to `woosync.requests` and wait for the broker's confirm.

    `user_id` is the publishing connection's RabbitMQ user (the broker refuses any other), which
    the producer checks against the organisation's registered publishers (docs/contract.md section 4)."""
    message = aio_pika.Message(
        request.to_body(),
        content_type=JSON,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        reply_to=reply_to,
        correlation_id=correlation_id,
        user_id=user_id,
    )
    exchange = await channel.get_exchange(request.exchange, ensure=False)
    try:
        await exchange.publish(message, request.routing_key, mandatory=True, timeout=timeout)
    except (aio_pika.exceptions.AMQPError, aio_pika.exceptions.ChannelInvalidStateError, ConnectionError) as exc:
        raise PublishFailed(f"the broker did not accept the sync request on {request.exchange}: {exc!r}") from exc
    except asyncio.TimeoutError as exc:
        raise PublishFailed(f"no confirm from the broker within {timeout:g} s for the sync request") from exc


def customer_line_message(line: CustomerLine) -> aio_pika.Message:
    return aio_pika.Message(
        line.model_dump_json().encode(),
        content_type=JSON,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(line.line_id),
    )


def republished_copy(message: AbstractIncomingMessage, headers: Mapping[str, object], *,
                     content_type: str = JSON, body: bytes | None = None) -> aio_pika.Message:
    """A persistent copy of a delivered message (body, ids, headers) with `headers` added, to
    publish again: as a retry or as a dead letter. `content_type` stands in when it had none;
    `body` replaces the message's own (a dead letter with its credentials removed)."""
    return aio_pika.Message(
        body=message.body if body is None else body,
        headers={**(message.headers or {}), **headers},
        content_type=message.content_type or content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
    )


def dead_letter_copy(message: AbstractIncomingMessage, *, reason: str, error: str, content_type: str = JSON,
                     body: bytes | None = None, headers: Mapping[str, object] | None = None) -> aio_pika.Message:
    """The copy of a message to park in a dead-letter queue, carrying why (docs/contract.md section 3);
    `body` and `headers` replace and add to the message's own."""
    return republished_copy(
        message,
        {**(headers or {}), topology.DEAD_REASON_HEADER: reason, topology.ERROR_HEADER: error[:ERROR_HEADER_MAX]},
        content_type=content_type, body=body,
    )


async def publish_customer_lines(
    channel: AbstractChannel,
    lines: Iterable[CustomerLine],
    *,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    timeout: float = 30.0,
) -> int:
    """Publish customer lines to `woosync.lines` with up to `max_in_flight` confirms outstanding.

    Returns how many were confirmed. Raises PublishFailed on the first refused or unroutable
    line, after the lines already in flight have settled: the caller then knows that some lines
    may not have been published and must treat all of them as unconfirmed (redelivery of a line
    is harmless, losing one is not)."""
    exchange = await channel.get_exchange(topology.LINES_EXCHANGE, ensure=False)
    in_flight: set[asyncio.Task[object]] = set()
    confirmed = 0
    failure: BaseException | None = None

    def settle(done: Iterable[asyncio.Task[object]]) -> None:
        nonlocal confirmed, failure
        for task in done:
            error = asyncio.CancelledError() if task.cancelled() else task.exception()
            if error is None:
                confirmed += 1
            elif failure is None:
                failure = error

    try:
        for line in lines:
            if failure is not None:
                break
            task = asyncio.ensure_future(
                exchange.publish(
                    customer_line_message(line), topology.CUSTOMER_LINE_ROUTING_KEY, mandatory=True, timeout=timeout
                )
            )
            in_flight.add(task)
            if len(in_flight) >= max_in_flight:
                done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                settle(done)
        if in_flight:
            done, in_flight = await asyncio.wait(in_flight)
            settle(done)
    finally:
        for task in in_flight:  # only when cancelled from outside
            task.cancel()
    if failure is not None:
        raise PublishFailed(f"the broker did not accept a customer line on {topology.LINES_EXCHANGE}: {failure!r}") from failure
    return confirmed


async def consumable_queue(channel: AbstractChannel, name: str, settings: Settings) -> aio_pika.abc.AbstractQueue:
    """A queue of the topology, declared on `channel` with its exact arguments.

    Consume from this object, never from `get_queue(..., ensure=False)`: a robust channel
    re-declares the queues it knows after a reconnect, and one known without its arguments is
    re-declared without them, which the broker refuses (PRECONDITION_FAILED): the consumer would
    silently never come back after a broker restart."""
    spec = next(q for q in topology_for(settings).queues if q.name == name)
    return await channel.declare_queue(spec.name, durable=True, arguments=dict(spec.arguments) or None)
