"""The one place where a decision becomes ack, retry or dead-letter on the broker.

Handlers commit the line's outcome in Postgres first and return a decision; only then is the
message settled, so a crash in between redelivers a message whose line is already terminal
(acked without work) or back in draft (tried again): at-least-once, never lost.
"""

from __future__ import annotations

import logging

from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage

from services.consumer.decisions import Ack, DeadLetter, Decision, Retry
from shared import amqp, topology
from shared.metrics import Metrics

log = logging.getLogger(__name__)


class Settler:
    def __init__(self, retry_exchange: AbstractExchange, dead_exchange: AbstractExchange, metrics: Metrics) -> None:
        self._retry_exchange = retry_exchange
        self._dead_exchange = dead_exchange
        self._metrics = metrics

    @classmethod
    async def on_channel(cls, channel: AbstractChannel, metrics: Metrics) -> "Settler":
        return cls(
            await channel.get_exchange(topology.RETRY_EXCHANGE, ensure=False),
            await channel.get_exchange(topology.DEAD_EXCHANGE, ensure=False),
            metrics,
        )

    async def settle(self, message: AbstractIncomingMessage, decision: Decision) -> None:
        """Publish what the decision needs (a retry, a dead letter); the caller then acks the
        message (BatchAcks), only after this returned."""
        if isinstance(decision, Retry):
            await self._retry_exchange.publish(
                amqp.republished_copy(message, {topology.ATTEMPT_HEADER: decision.next_attempt,
                                                topology.ERROR_HEADER: decision.error[:amqp.ERROR_HEADER_MAX]}),
                routing_key=topology.delay_routing_key(decision.delay_ms),
                mandatory=True,
            )
            if not decision.held:  # a held line is counted in woosync_lines_held
                self._metrics.lines_processed.labels("retried").inc()
        elif isinstance(decision, DeadLetter):
            await self._dead_exchange.publish(
                amqp.dead_letter_copy(message, reason=decision.reason, error=decision.error),
                routing_key=topology.CUSTOMER_LINE_ROUTING_KEY,
                mandatory=True,
            )
            self._metrics.lines_processed.labels("dead_lettered").inc()
            if decision.line_failed:
                self._metrics.lines_processed.labels("failed").inc()
        elif isinstance(decision, Ack) and decision.outcome:
            self._metrics.lines_processed.labels(decision.outcome).inc()
