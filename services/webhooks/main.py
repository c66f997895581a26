"""`woosync run webhooks`: the composition root of the webhooks service, the one part of woosync
meant to be reachable from the internet (docs/contract.md section 10).

settings -> logging -> listening socket -> Postgres pool -> RabbitMQ connection + topology ->
handler and app -> ops endpoints (/metrics, /healthz, /readyz on WOOSYNC_METRICS_PORT, default
9103, never on the public port) -> uvicorn (shared/http_server.py: bounded heads, header deadline,
connection cap) -> old delivery ids forgotten hourly -> graceful close on SIGTERM/SIGINT: uvicorn
stops accepting, in-flight deliveries finish, then the broker connection and the pool close.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

import asyncpg
import uvicorn
from prometheus_client import CollectorRegistry

from services.webhooks.app import Endpoints, StoreRates, WebhookMetrics, WebhooksApp
from services.webhooks.handler import DeliveryHandler
from shared.amqp import declare_topology, open_publisher_channel
from shared.db import translate_db_error
from shared.http_server import QuietServer, listen, server_config
from shared.logs import setup_logging
from shared.ops_server import start_ops_server
from shared.repository.webhooks import delete_old_deliveries
from shared.runtime import run_service, stop_event
from shared.settings import Settings
from shared.startup import StartupError, StopRequested, connections_ready, open_connections

log = logging.getLogger("services.webhooks")

DEFAULT_METRICS_PORT = 9103
GRACEFUL_SHUTDOWN_S = 10
PRUNE_EVERY_S = 3600.0


def main(settings: Settings, args: argparse.Namespace) -> int:
    setup_logging(settings.log_level, settings.log_format, service="webhooks")
    port = args.port if args.port is not None else settings.webhooks_port
    log.info("starting the webhooks service on %s:%d with %s", args.host, port, settings.masked())
    return run_service(serve(settings, host=args.host, port=port))


async def serve(settings: Settings, *, host: str, port: int) -> int:
    try:
        listening = listen(host, port)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s (--host/--port, WOOSYNC_WEBHOOKS_PORT)", host, port, exc.strerror or exc)
        return 1
    if settings.credentials_cipher is None:
        log.warning("WOOSYNC_SECRET_KEY is not set: webhook secrets cannot be read, every delivery will get 503")
    stop = stop_event()
    async with contextlib.AsyncExitStack() as resources:
        resources.callback(listening.close)
        try:
            pool, connection = await resources.enter_async_context(open_connections(settings, "woosync webhooks", stop))
        except StartupError as exc:
            log.error("cannot start: %s", exc)
            return 1
        except StopRequested:
            return 0
        channel = await open_publisher_channel(connection)
        try:
            await declare_topology(channel, settings)
        except StartupError as exc:
            log.error("cannot start: %s", exc)
            return 1

        metrics = WebhookMetrics(CollectorRegistry())
        app = WebhooksApp(
            Endpoints(pool, settings.credentials_cipher),
            DeliveryHandler(pool, channel, settings),
            StoreRates(settings.webhooks_store_rate, settings.webhooks_store_burst),
            metrics,
            max_body_bytes=settings.webhooks_max_body_bytes,
        )
        ops_port = settings.metrics_port if settings.metrics_port is not None else DEFAULT_METRICS_PORT

        async def live() -> tuple[bool, str]:
            return True, "ok"

        ops = await start_ops_server(host="0.0.0.0", port=ops_port, registry=metrics.registry, liveness=live,
                                     readiness=lambda: connections_ready(pool, connection))
        resources.push_async_callback(ops.close)
        pruning = asyncio.create_task(_forget_old_deliveries(pool, settings), name="prune deliveries")
        resources.callback(pruning.cancel)

        server = QuietServer(server_config(app, settings, graceful_shutdown_s=GRACEFUL_SHUTDOWN_S))
        serving = asyncio.create_task(server.serve(sockets=[listening]), name="uvicorn")
        resources.push_async_callback(_drain, server, serving)
        stopping = asyncio.create_task(stop.wait(), name="stop signal")
        resources.callback(stopping.cancel)
        log.info("webhooks service on http://%s:%d (deliveries to /woocommerce/<store token>), metrics on :%d",
                 host, listening.getsockname()[1], ops.port)
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            log.info("stop signal: finishing the deliveries in flight (at most %d s)", GRACEFUL_SHUTDOWN_S)
    log.info("webhooks service stopped")
    return 0


async def _forget_old_deliveries(pool: asyncpg.Pool, settings: Settings) -> None:
    """Delivery ids are kept WOOSYNC_WEBHOOKS_DELIVERY_RETENTION_HOURS to spot repeats, then forgotten."""
    while True:
        try:
            while await delete_old_deliveries(pool, older_than_hours=settings.webhooks_delivery_retention_hours):
                pass
        except Exception as exc:
            if not (isinstance(exc, asyncpg.PostgresError) or translate_db_error(exc)):
                raise
            log.warning("could not forget old webhook deliveries (%s); will try again in %.0f s", exc, PRUNE_EVERY_S)
        await asyncio.sleep(PRUNE_EVERY_S)


async def _drain(server: uvicorn.Server, serving: asyncio.Task[None]) -> None:
    server.should_exit = True
    await serving
