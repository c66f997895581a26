"""The status service for tests: the real app on a real database and broker, in-process.

- `status_service(...)`: the app with an httpx client over ASGI (fast, no socket), and
  `serve(app)` to put it on a real loopback port when a test needs streaming (SSE) or a
  subprocess client (the CLI).
- `LiveStatusServer`: the same on its own thread and event loop, for synchronous tests
  (schemathesis calls the API with `requests`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import uvicorn

from services.status.app import create_app
from services.status.context import StatusContext
from services.status.sse import QueueWatchHub, watched_queues_reader
from shared.amqp import connect, declare_topology, open_publisher_channel
from shared.db import create_pool
from shared.metrics import Metrics
from shared.organizations import create_organization
from shared.repository import queue_lines, stores, sync_queues
from shared.settings import Settings, load_settings
from tests.waiting import eventually

STORE_URL = "http://127.0.0.1:8090"


@dataclass
class StatusUnderTest:
    ctx: StatusContext
    app: Any
    client: httpx.AsyncClient

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def status_service(
    pool: asyncpg.Pool,
    amqp_url: str,
    *,
    settings: Settings | None = None,
    hub_interval: float = 0.05,
    heartbeat_s: float = 15.0,
) -> AsyncIterator[StatusUnderTest]:
    settings = settings or load_settings()
    connection = await connect(amqp_url, name="status under test")
    try:
        channel = await open_publisher_channel(connection)
        await declare_topology(channel, settings)

        hub = QueueWatchHub(watched_queues_reader(pool), interval=hub_interval)
        ctx = StatusContext(settings=settings, pool=pool, amqp_connection=connection, channel=channel,
                            metrics=Metrics(), hub=hub, heartbeat_s=heartbeat_s)
        app = create_app(ctx)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://status.test") as client:
            yield StatusUnderTest(ctx, app, client)
        await hub.close()
    finally:
        await connection.close()


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def serve(app: Any, hub: QueueWatchHub | None = None) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a free loopback port in this event loop; yields the base URL."""
    sock = _free_socket()
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None, access_log=False,
                                           timeout_graceful_shutdown=5))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]  # the test owns signals
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        def started() -> bool:
            if task.done():
                task.result()  # it failed to start: raise its error
            return server.started

        await eventually(started, timeout=30, interval=0.01, what="uvicorn to start")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        if hub is not None:
            await hub.close()
        await asyncio.wait_for(task, 15)
        sock.close()


class LiveStatusServer:
    """The status service on its own thread and event loop, for synchronous clients."""

    def __init__(self, database_url: str, amqp_url: str, *, settings: Settings | None = None) -> None:
        self.database_url = database_url
        self.amqp_url = amqp_url
        self.settings = settings
        self.base_url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="live status server", daemon=True)

    def __enter__(self) -> LiveStatusServer:
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"status server did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)  # type: ignore[union-attr]
        self._thread.join(30)

    def run(self, coroutine: Any) -> Any:
        """Run a coroutine on the server's loop (e.g. to arrange data with its pool)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to __enter__
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self.pool = await create_pool(self.database_url, min_size=1, max_size=5)
        try:
            async with status_service(self.pool, self.amqp_url, settings=self.settings) as status:
                self.status = status
                async with serve(status.app, status.ctx.hub) as base_url:
                    self.base_url = base_url
                    self._ready.set()
                    await self._stop.wait()
        finally:
            await self.pool.close()


@contextlib.asynccontextmanager
async def unreachable_database(ctx: StatusContext) -> AsyncIterator[None]:
    """Point the service at a PostgreSQL that refuses connections, as during an outage."""
    dead = await asyncpg.create_pool("postgresql://postgres@127.0.0.1:1/woosync", min_size=0, max_size=1)
    live, ctx.pool = ctx.pool, dead
    try:
        yield
    finally:
        ctx.pool = live
        await dead.close()


# ------------------------------------------------------------------------------------ data
async def an_organization(pool: asyncpg.Pool, name: str = "Acme") -> tuple[UUID, str]:
    return await create_organization(pool, name=name)


def a_customer(woo_customer_id: int) -> dict[str, Any]:
    return {"id": woo_customer_id, "email": f"customer{woo_customer_id}@example.com",
            "first_name": "Ada", "last_name": f"Number {woo_customer_id}"}


async def a_queue(
    pool: asyncpg.Pool,
    org_id: UUID,
    *,
    lines: int = 0,
    enumerated: bool = False,
    idempotency_key: str | None = None,
) -> tuple[sync_queues.QueueStatus, list[UUID]]:
    """A queue of `lines` draft lines (woo ids 1..lines) with a recorded store; its line ids."""
    store_id = await stores.upsert_store(pool, org_id=org_id, url=STORE_URL, consumer_key="ck_test",
                                         consumer_secret="cs_test", cipher=None)
    status, _ = await sync_queues.find_or_create_queue(
        pool, org_id=org_id, queue_name=f"test queue {uuid.uuid4().hex[:6]}", idempotency_key=idempotency_key,
        store_id=store_id, store_url=STORE_URL, created_by="test", options={},
    )
    added = await queue_lines.add_lines(pool, queue_id=status.id, org_id=org_id,
                                   customers=[(n, a_customer(n)) for n in range(1, lines + 1)])
    if enumerated:
        await sync_queues.mark_enumeration_done(pool, status.id, org_id)
    line_ids = [line_id for line_id, _ in sorted(added, key=lambda pair: pair[1])]
    current = await sync_queues.queue_status(pool, status.id, org_id)
    assert current is not None
    return current, line_ids
