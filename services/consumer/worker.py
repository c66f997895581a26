"""Runs one micro-batch end to end: decode -> handle -> settle, and keeps going through outages.

- Database unavailable: nothing is settled; the batch runs again after a backoff, for as long as
  the outage lasts (messages stay unacked, so a crash meanwhile loses nothing).
- An unexpected error (a bug, a poison message): the batch is split and each message handled
  alone, so one bad message cannot sink its neighbours; one that still fails is returned to the
  queue, where the quorum queue's delivery limit eventually dead-letters it.
"""

from __future__ import annotations

import asyncio
import logging

import aio_pika
import asyncpg
from aio_pika.abc import AbstractIncomingMessage

from services.consumer.acks import BatchAcks
from services.consumer.decisions import Delivery
from services.consumer.handler import LineHandler
from services.consumer.settle import Settler
from shared.outage import wait_out_database_outage

log = logging.getLogger(__name__)

BROKER_GONE = (
    aio_pika.exceptions.AMQPConnectionError,
    aio_pika.exceptions.ChannelInvalidStateError,
    aio_pika.exceptions.ChannelClosed,
    ConnectionError,
    asyncio.TimeoutError,
)
_RERUNNABLE = (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


class BatchWorker:
    def __init__(self, handler: LineHandler, settler: Settler, acks: BatchAcks, *, max_backoff_s: float = 10.0) -> None:
        self._handler = handler
        self._settler = settler
        self._acks = acks
        self._max_backoff_s = max_backoff_s

    async def __call__(self, messages: list[AbstractIncomingMessage]) -> None:
        deliveries = [Delivery.decode(message) for message in messages]
        try:
            await self._run(deliveries)
        except asyncio.CancelledError:
            raise
        except Exception:
            if len(deliveries) == 1:
                log.exception("a customer line keeps failing unexpectedly: returning it to the queue")
                await self._requeue(deliveries[0].message)
                return
            log.exception("unexpected error in a batch of %d: handling its messages one by one", len(deliveries))
            for delivery in deliveries:
                try:
                    await self._run([delivery])
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("a customer line keeps failing unexpectedly: returning it to the queue")
                    await self._requeue(delivery.message)

    async def _run(self, deliveries: list[Delivery]) -> None:
        decisions = await wait_out_database_outage(
            lambda: self._handler.process(deliveries), doing=f"the batch of {len(deliveries)}",
            first_delay_s=0.2, max_delay_s=self._max_backoff_s, also_retry=_RERUNNABLE,
        )
        try:
            for delivery, decision in zip(deliveries, decisions):
                await self._settler.settle(delivery.message, decision)
            await self._acks.ack(delivery.message for delivery in deliveries)
        except BROKER_GONE as exc:
            # Outcomes are committed; the unacked messages come back after the reconnect and are
            # acked without work (their lines are terminal) or tried again.
            log.warning("broker connection lost while settling (%s): unacked messages of the batch of %d "
                        "will be redelivered", type(exc).__name__, len(deliveries))

    async def _requeue(self, message: AbstractIncomingMessage) -> None:
        self._acks.forget(message)
        try:
            await message.nack(requeue=True)
        except Exception:  # the channel is gone: the broker requeues it anyway
            log.debug("could not nack a message; the broker will redeliver it", exc_info=True)
