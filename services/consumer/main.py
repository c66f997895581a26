"""`woosync run consumer`: the composition root of one consumer.

settings -> logging -> database -> broker + topology -> handler, settler, batcher -> ops
endpoints -> consume lines and dead letters -> until SIGTERM -> drain -> close. Every resource
enters one AsyncExitStack as it is made, so whatever fails at start-up or during shutdown, the
drain runs and the channels, the connection and the pool close, in reverse order of opening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from services.consumer.acks import BatchAcks
from services.consumer.batcher import Batcher
from services.consumer.dead_letters import DeadLetterRecorder
from services.consumer.handler import LineHandler
from services.consumer.health import ConsumerHealth
from services.consumer.settle import Settler
from services.consumer.store_clients import StoreClients
from services.consumer.worker import BatchWorker
from shared import amqp, topology
from shared.logs import setup_logging
from shared.metrics import Metrics
from shared.ops_server import start_ops_server
from shared.runtime import run_service, stop_event
from shared.settings import Settings
from shared.startup import StartupError, StopRequested, open_connections

log = logging.getLogger("woosync.consumer")

DEFAULT_METRICS_PORT = 9102


def main(settings: Settings, args: argparse.Namespace | None = None) -> int:
    setup_logging(settings.log_level, settings.log_format, service="consumer")
    return run_service(serve(settings))


async def serve(settings: Settings) -> int:
    log.info("consumer starting: %s", settings.masked())
    stop = stop_event()
    metrics = Metrics()
    try:
        async with contextlib.AsyncExitStack() as resources:
            pool, connection = await resources.enter_async_context(
                open_connections(settings, "woosync-consumer", stop))
            stores = StoreClients(pool, settings, metrics)
            resources.push_async_callback(stores.aclose)
            channel = await amqp.open_publisher_channel(connection)
            resources.push_async_callback(channel.close)
            await amqp.declare_topology(channel, settings)
            await channel.set_qos(prefetch_count=settings.prefetch)
            audit_channel = await connection.channel()
            resources.push_async_callback(audit_channel.close)
            await audit_channel.set_qos(prefetch_count=20)
            lines = await amqp.consumable_queue(channel, topology.CUSTOMER_LINES_QUEUE, settings)
            dead = await amqp.consumable_queue(audit_channel, topology.CUSTOMER_LINES_DEAD_AUDIT_QUEUE, settings)

            acks = BatchAcks()
            worker = BatchWorker(LineHandler(pool, stores, settings, metrics),
                                 await Settler.on_channel(channel, metrics), acks)
            batcher = Batcher(worker, size=settings.batch_size, linger_s=settings.batch_linger_ms / 1000,
                              max_in_flight=settings.batches_in_flight)
            health = ConsumerHealth(pool, connection, lines, lambda: batcher.busy,
                                    stall_after_s=settings.consumer_stall_s, stopping=stop)
            port = settings.metrics_port if settings.metrics_port is not None else DEFAULT_METRICS_PORT
            ops = await start_ops_server(host="0.0.0.0", port=port, registry=metrics.registry,
                                         liveness=health.live, readiness=health.ready)
            resources.push_async_callback(ops.close)

            async def on_line(message) -> None:
                metrics.deliveries.inc()
                health.delivered()
                acks.delivered(message)
                await batcher.add(message)

            # Unwound in reverse: stop both consumers, drain the batcher, then stop its loop.
            batching = asyncio.create_task(batcher.run())
            resources.callback(batching.cancel)
            resources.push_async_callback(_drain, batcher, settings.drain_timeout_s)
            resources.push_async_callback(lines.cancel, await lines.consume(on_line))
            resources.push_async_callback(dead.cancel, await dead.consume(DeadLetterRecorder(pool, metrics)))
            log.info("consumer ready: consuming %s (prefetch %d, batches of %d), metrics on :%d",
                     topology.CUSTOMER_LINES_QUEUE, settings.prefetch, settings.batch_size, ops.port)

            await stop.wait()
            log.info("stopping: no new deliveries; finishing the lines already received (at most %.0f s)",
                     settings.drain_timeout_s)
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except StopRequested:
        return 0
    log.info("consumer stopped")
    return 0


async def _drain(batcher: Batcher, timeout_s: float) -> None:
    try:
        await asyncio.wait_for(batcher.drain(), timeout_s)
    except asyncio.TimeoutError:
        log.warning("drain timed out: unfinished lines return to the queue and will be redelivered")
