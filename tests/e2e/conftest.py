"""End-to-end fixtures: the real woosync processes, a simulated store, a fresh database and vhost."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import asyncpg
import pytest

from shared import amqp, organizations
from shared.db import create_pool
from shared.messages import StartSync
from woosync.stack import LOCAL_STORE_NETWORKS, Process, Stack, free_port

# Fast retries and short store timeouts keep fault tests short; the logic is the production one.
E2E_SETTINGS = {
    "WOOSYNC_METRICS_PORT": "0",
    "WOOSYNC_LOG_FORMAT": "json",
    "WOOSYNC_LOG_LEVEL": "INFO",
    "WOOSYNC_RETRY_DELAY_MS": "300",
    "WOOSYNC_STORE_MAX_TRIES": "2",
    "WOOSYNC_STORE_TIMEOUT_S": "5",
    "WOOSYNC_DRAIN_TIMEOUT_S": "10",
    "WOOSYNC_STORE_ALLOWED_NETWORKS": LOCAL_STORE_NETWORKS,  # the simulated store listens on this machine
}


class Pipeline:
    """The processes of one test and the handles to talk to them."""

    def __init__(self, stack: Stack, database_url: str, amqp_url: str, pool: asyncpg.Pool, org_id: UUID) -> None:
        self.stack = stack
        self.database_url = database_url
        self.amqp_url = amqp_url
        self.pool = pool
        self.org_id = org_id
        self.store_url: str | None = None

    def simulator(self, *args: str, customers: int = 200, seed: int = 3) -> Process:
        port = free_port()
        self.store_url = f"http://127.0.0.1:{port}"
        process = self.stack.start("simulator", ["simulator", "--port", str(port), "--customers", str(customers),
                                                 "--seed", str(seed), *args])
        process.wait_for(r"simulator listening on", 60)
        return process

    def producer(self, name: str = "producer", **env: str) -> Process:
        process = self.stack.start(name, ["run", "producer"], **env)
        process.wait_for(r"producer ready", 60)
        return process

    def consumer(self, name: str = "consumer", **env: str) -> Process:
        process = self.stack.start(name, ["run", "consumer"], **env)
        process.wait_for(r"consumer ready", 60)
        return process

    def status(self, name: str = "status") -> tuple[Process, int]:
        port = free_port()
        process = self.stack.start(name, ["run", "status", "--host", "127.0.0.1", "--port", str(port)])
        process.wait_for(r"status API on http://", 60)
        return process, port

    def request(self, **fields) -> StartSync:
        body = {
            "org_id": str(self.org_id),
            "store": {"url": self.store_url, "consumer_key": "ck_test", "consumer_secret": "cs_test"},
            **fields,
        }
        return StartSync.model_validate(body)

    async def publish(self, request: StartSync | bytes, **properties) -> None:
        connection = await amqp.connect(self.amqp_url)
        try:
            channel = await amqp.open_publisher_channel(connection)
            await amqp.declare_topology(channel, _settings())
            if isinstance(request, StartSync):
                await amqp.publish_sync_request(channel, request, **properties)
            else:
                import aio_pika

                exchange = await channel.get_exchange("woosync.requests")
                await exchange.publish(aio_pika.Message(request, content_type="application/json", **properties),
                                       routing_key="sync.customers", mandatory=True)
        finally:
            await connection.close()


def _settings():
    from shared.settings import Settings

    return Settings(**{k.removeprefix("WOOSYNC_").lower(): v for k, v in E2E_SETTINGS.items()
                       if k in ("WOOSYNC_RETRY_DELAY_MS",)})


@pytest.fixture
async def pipeline(database_url: str, amqp_url: str, tmp_path: Path) -> AsyncIterator[Pipeline]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOOSYNC_")}
    env.update(E2E_SETTINGS, WOOSYNC_DATABASE_URL=database_url, WOOSYNC_AMQP_URL=amqp_url)
    pool = await create_pool(database_url, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        org_id, _ = await organizations.create_organization(conn, name="e2e")
    stack = Stack(env, tmp_path / "logs")
    try:
        yield Pipeline(stack, database_url, amqp_url, pool, org_id)
    finally:
        stack.stop_all(timeout=20)
        await pool.close()
