"""`woosync run status`: the status HTTP service, top-down.

settings -> logging -> listening socket -> Postgres pool -> RabbitMQ connection + topology ->
app -> uvicorn -> graceful close on SIGTERM/SIGINT: uvicorn stops accepting, the watch hub ends
every event stream, in-flight requests finish, then the broker connection and the pool close.
Each resource enters one AsyncExitStack as it is made, so that close runs whatever fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

import uvicorn

from services.status.app import create_app
from services.status.context import StatusContext
from services.status.sse import QueueWatchHub, watched_queues_reader
from shared.amqp import declare_topology, open_publisher_channel
from shared.http_server import QuietServer, listen, server_config
from shared.logs import setup_logging
from shared.metrics import Metrics
from shared.runtime import run_service, stop_event
from shared.settings import Settings
from shared.startup import StartupError, StopRequested, open_connections

log = logging.getLogger("services.status")

# SSE watchers are told to go (their streams end) and get this long to do so.
GRACEFUL_SHUTDOWN_S = 10


def main(settings: Settings, args: argparse.Namespace) -> int:
    setup_logging(settings.log_level, settings.log_format, service="status")
    log.info("starting the status service on %s:%d with %s", args.host, args.port, settings.masked())
    return run_service(serve(settings, host=args.host, port=args.port))


async def serve(settings: Settings, *, host: str, port: int) -> int:
    try:
        listening = listen(host, port)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s (--host/--port)", host, port, exc.strerror or exc)
        return 1
    stop = stop_event()
    async with contextlib.AsyncExitStack() as resources:
        resources.callback(listening.close)
        # Requests hold a connection for one or two indexed reads: a small pool serves hundreds of clients.
        try:
            pool, connection = await resources.enter_async_context(open_connections(settings, "woosync status", stop))
        except StartupError as exc:
            log.error("cannot start: %s", exc)
            return 1
        except StopRequested:
            return 0
        channel = await open_publisher_channel(connection)
        try:
            await declare_topology(channel, settings)
        except StartupError as exc:  # a queue left by an older woosync (TopologyMismatch)
            log.error("cannot start: %s", exc)
            return 1

        hub = QueueWatchHub(watched_queues_reader(pool), interval=0.5)  # one query per tick for every stream
        ctx = StatusContext(settings=settings, pool=pool, amqp_connection=connection, channel=channel,
                            metrics=Metrics(), hub=hub)
        server = QuietServer(
            server_config(create_app(ctx), settings, graceful_shutdown_s=GRACEFUL_SHUTDOWN_S)
        )
        serving = asyncio.create_task(server.serve(sockets=[listening]), name="uvicorn")
        resources.push_async_callback(_drain, server, hub, serving)
        stopping = asyncio.create_task(stop.wait(), name="stop signal")
        resources.callback(stopping.cancel)
        log.info("status API on http://%s:%d", host, listening.getsockname()[1])
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            log.info("stop signal: draining requests and ending event streams (at most %d s)", GRACEFUL_SHUTDOWN_S)
    log.info("status service stopped")
    return 0


async def _drain(server: uvicorn.Server, hub: QueueWatchHub, serving: asyncio.Task[None]) -> None:
    server.should_exit = True  # stop accepting; in-flight requests finish
    await hub.close()  # event streams end cleanly (their watchers see the end of the stream)
    await serving
