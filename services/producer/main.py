"""`woosync run producer`: the composition root of the producer.

settings -> logging -> database -> broker + topology -> request handler, dispatcher, scheduler,
page worker -> ops endpoints -> consume sync requests, each handled (its queue, plan and pages
recorded) once it has a fair slot -> until SIGTERM -> send the requests still waiting for a slot
back to the queue, finish the ones in hand, give the page worker its drain time -> close. Every
resource enters one AsyncExitStack as it is made, so whatever fails at start-up or during
shutdown, the requests in hand get their time and the channel, the connection and the pool close.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from services.producer.dispatcher import Dispatcher
from services.producer.scheduler import Scheduler
from services.producer.fair_slots import FairSlots, SlotsClosed, organisation_of
from services.producer.handler import SyncRequestHandler
from services.producer.page_worker import PageWorker
from shared import amqp, topology
from shared.logs import setup_logging
from shared.metrics import Metrics
from shared.ops_server import start_ops_server
from shared.runtime import run_service, stop_event
from shared.settings import Settings
from shared.startup import StartupError, StopRequested, connections_ready, open_connections

log = logging.getLogger("woosync.producer")

DEFAULT_METRICS_PORT = 9101


def main(settings: Settings, args: argparse.Namespace | None = None) -> int:
    setup_logging(settings.log_level, settings.log_format, service="producer")
    return run_service(serve(settings))


async def serve(settings: Settings) -> int:
    log.info("producer starting: %s", settings.masked())
    stop = stop_event()
    metrics = Metrics()
    try:
        async with contextlib.AsyncExitStack() as resources:
            pool, connection = await resources.enter_async_context(
                open_connections(settings, "woosync-producer", stop))
            channel = await amqp.open_publisher_channel(connection)
            resources.push_async_callback(channel.close)
            await amqp.declare_topology(channel, settings)
            # More requests in hand than slots, so that another organisation's request is there
            # to take the next free slot (docs/contract.md section 3).
            await channel.set_qos(prefetch_count=settings.producer_prefetch)
            requests = await amqp.consumable_queue(channel, topology.SYNC_REQUESTS_QUEUE, settings)

            # The dispatcher publishes every recorded line, in bounded windows per sync.
            handler = SyncRequestHandler(pool, channel, settings, metrics, publish_lines=False)
            dispatcher = asyncio.create_task(Dispatcher(pool, channel, settings, metrics).run(stop), name="dispatcher")
            resources.push_async_callback(_stop_dispatcher, dispatcher)
            # Store schedules due now become sync requests, each run by one producer of the fleet.
            scheduler = asyncio.create_task(Scheduler(pool, channel, settings).run(stop), name="scheduler")
            resources.push_async_callback(_stop_dispatcher, scheduler)  # a run cut short stays due
            # Every full sync's pages, read and recorded by whichever producers have room (each
            # page leased by one); stopped after the requests in hand, it gets the drain time.
            page_worker = PageWorker(pool, settings, metrics, handler.budgets)
            page_stop = asyncio.Event()
            pages = asyncio.create_task(page_worker.run(page_stop), name="page worker")
            resources.push_async_callback(_stop_page_worker, pages, page_stop)
            slots = FairSlots(settings.producer_concurrency, settings.producer_org_concurrency)
            in_hand: set[asyncio.Task[None]] = set()

            async def on_request(message: AbstractIncomingMessage) -> None:
                task = asyncio.current_task()
                in_hand.add(task)
                try:
                    async with slots.slot(organisation_of(message.body)):
                        if still_held(message):
                            await handler(message)
                except SlotsClosed:
                    await _return_to_queue(message)
                finally:
                    in_hand.discard(task)

            async def live() -> tuple[bool, str]:
                return True, "ok"

            async def ready() -> tuple[bool, str]:
                return await connections_ready(pool, connection)

            port = settings.metrics_port if settings.metrics_port is not None else DEFAULT_METRICS_PORT
            ops = await start_ops_server(host="0.0.0.0", port=port, registry=metrics.registry,
                                         liveness=live, readiness=ready)
            resources.push_async_callback(ops.close)

            # Unwound in reverse: stop consuming, send back what waits for a slot, then give the
            # requests being handled their time.
            resources.push_async_callback(_finish, in_hand, settings.drain_timeout_s)
            resources.callback(slots.close)
            resources.push_async_callback(requests.cancel, await requests.consume(on_request))
            log.info("producer ready: consuming %s (%d at a time, %d per organisation, %d in hand), "
                     "page worker %s, metrics on :%d", topology.SYNC_REQUESTS_QUEUE, settings.producer_concurrency,
                     settings.producer_org_concurrency, settings.producer_prefetch, page_worker.producer_id, ops.port)

            await stop.wait()
            log.info("stopping: no new sync requests; %d being handled, %d waiting for a slot",
                     slots.in_use, slots.waiting)
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except StopRequested:
        return 0
    log.info("producer stopped")
    return 0


async def _stop_dispatcher(dispatcher: asyncio.Task[None]) -> None:
    """A dispatch round in progress is cut short safely: its lines wait in draft, or queued until
    the re-publish timeout (services/producer/dispatcher.py)."""
    dispatcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await dispatcher


async def _stop_page_worker(worker: asyncio.Task[None], stop: asyncio.Event) -> None:
    """Pages in hand finish within the drain time, the rest go back to pending for another producer."""
    stop.set()
    await asyncio.wait([worker])


def still_held(message: AbstractIncomingMessage) -> bool:
    """False when the channel the request came on closed while it waited for a slot (a broker
    reconnect): the broker has returned it to the queue and redelivers it on the new channel, so
    enumerating this copy would do the work twice."""
    try:
        message.channel
    except aio_pika.exceptions.ChannelInvalidStateError:
        log.info("a sync request waited through a reconnect: its redelivered copy will run instead")
        return False
    return True


async def _return_to_queue(message: AbstractIncomingMessage) -> None:
    """A request still waiting for a slot when the producer stops goes back to the queue as it
    came, for the next producer: a nack with requeue (a reject would dead-letter it)."""
    try:
        await message.nack(requeue=True)
    except Exception as exc:  # the channel is gone: the broker returns unacked messages anyway
        log.info("could not hand a waiting sync request back (%s): the broker returns it", exc)


async def _finish(in_hand: set[asyncio.Task[None]], timeout_s: float) -> None:
    """A request not handled to its ack (its pages recorded, or a sweep done) is redelivered and
    resumes, so waiting is a courtesy bounded by the drain time, not a requirement."""
    if not in_hand:
        return
    _, pending = await asyncio.wait(set(in_hand), timeout=timeout_s)
    for task in pending:
        task.cancel()
    if pending:
        log.info("%d sync requests unfinished: they return to the queue and resume later", len(pending))
        await asyncio.wait(pending, timeout=5)
