"""Kubernetes probes of the real consumer process (docs/contract.md section 1, issue: a consumer that stopped receiving
deliveries while lines wait is not healthy)."""

from __future__ import annotations

import asyncio
import re
import uuid

import aio_pika
import httpx
import pytest

from shared import amqp, topology
from shared.settings import Settings
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


def metrics_port(process) -> int:
    return int(re.search(r"metrics on :(\d+)", process.log()).group(1))


async def probe(port: int, path: str) -> tuple[int, dict]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    return response.status_code, response.json()


async def test_a_running_consumer_is_live_and_ready(pipeline):
    consumer = pipeline.consumer()
    port = metrics_port(consumer)
    assert await probe(port, "/healthz") == (200, {"ok": True})
    assert await probe(port, "/readyz") == (200, {"ok": True})


async def test_liveness_fails_when_lines_wait_but_nothing_is_delivered(amqp_url, db_pool):
    # The probe's own logic against a real broker: a queue with ready lines, a consumer that has
    # received nothing for longer than the stall time. (aio-pika 10 recovers a consumer the broker
    # cancelled, aio-pika #334; the probe is the safety net for any other way deliveries stop.)
    from services.consumer.health import ConsumerHealth

    connection = await amqp.connect(amqp_url)
    try:
        channel = await amqp.open_publisher_channel(connection)
        await amqp.declare_topology(channel, Settings())
        lines = await amqp.consumable_queue(channel, topology.CUSTOMER_LINES_QUEUE, Settings())
        health = ConsumerHealth(db_pool, connection, lines, lambda: False, stall_after_s=0.2, stopping=asyncio.Event())
        assert await health.live() == (True, "ok")  # idle, but nothing waits

        exchange = await channel.get_exchange(topology.LINES_EXCHANGE)
        for _ in range(3):
            await exchange.publish(aio_pika.Message(b'{"line_id": "%s"}' % str(uuid.uuid4()).encode()),
                                   routing_key=topology.CUSTOMER_LINE_ROUTING_KEY)

        async def stalled() -> list[str]:
            ok, reason = await health.live()
            return [] if ok else [reason]

        # Not live once the stall time has passed with the lines waiting and nothing delivered.
        [reason] = await eventually(stalled, timeout=10, interval=0.05, what="liveness to report the stall")
        assert "3 lines wait" in reason and topology.CUSTOMER_LINES_QUEUE in reason

        health.delivered()
        assert await health.live() == (True, "ok")  # a delivery just arrived
        assert await health.ready() == (True, "ok")
    finally:
        await connection.close()


async def test_readiness_fails_while_the_database_is_unreachable_and_liveness_holds(pipeline, pg_server_url):
    consumer = pipeline.consumer()
    port = metrics_port(consumer)
    assert (await probe(port, "/readyz"))[0] == 200
    # Drop the consumer's database connections for good by removing the database under it.
    import asyncpg

    name = pipeline.database_url.rsplit("/", 1)[1]
    await pipeline.pool.close()
    admin = await asyncpg.connect(pg_server_url)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        await admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")

        async def not_ready():
            status, body = await probe(port, "/readyz")
            return body if status == 503 else None

        body = await eventually(not_ready, timeout=30, what="/readyz to report the database")
        assert "PostgreSQL" in body["reason"]
        assert (await probe(port, "/healthz"))[0] == 200
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        await admin.close()
