"""The producer's first contact with a store is short (docs/contract.md section 6): a store that
accepts the TCP connection and never answers ends the request within
WOOSYNC_STORE_CONNECT_TEST_TIMEOUT_S, not after WOOSYNC_STORE_MAX_TRIES tries of
WOOSYNC_STORE_TIMEOUT_S, so it frees its producer slot; the request is dead-lettered with a reason
naming the limit and the queue is marked for action."""

from __future__ import annotations

import asyncio

import pytest

from services.producer.handler import SyncRequestHandler
from shared import amqp, organizations, topology
from shared.messages import StartSync
from shared.metrics import Metrics
from shared.settings import Settings

pytestmark = pytest.mark.integration

# Today's defaults for one store request: 5 tries of 30 s (2.5 minutes for a dead store).
SLOW_REQUESTS = {"store_timeout_s": 30.0, "store_max_tries": 5}
# Far above the connection test's 1 s, far below the 150 s of the store requests' own limits.
GENEROUS_BOUND_S = 60.0


async def test_a_store_that_accepts_the_connection_and_never_answers_is_given_up_within_the_connection_test_timeout(
        db_pool, amqp_url):
    held: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # the connection stays open, the request unanswered

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with db_pool.acquire() as conn:
        org_id, _ = await organizations.create_organization(conn, name="p")
    settings = Settings(store_allowed_networks="127.0.0.0/8", store_connect_test_timeout_s=1.0, **SLOW_REQUESTS)
    connection = await amqp.connect(amqp_url)
    try:
        channel = await amqp.open_publisher_channel(connection)
        await amqp.declare_topology(channel, settings)
        request = StartSync.model_validate({"org_id": str(org_id), "store": {
            "url": f"http://127.0.0.1:{port}", "consumer_key": "ck_test", "consumer_secret": "cs_test"}})
        await amqp.publish_sync_request(channel, request)
        requests = await amqp.consumable_queue(channel, topology.SYNC_REQUESTS_QUEUE, settings)
        message = await requests.get(timeout=5)

        handler = SyncRequestHandler(db_pool, channel, settings, Metrics())
        await asyncio.wait_for(handler(message), GENEROUS_BOUND_S)

        dead_queue = await channel.declare_queue(topology.SYNC_REQUESTS_DEAD_QUEUE, passive=True)
        dead = await dead_queue.get(timeout=5)
        await dead.ack()
    finally:
        await connection.close()
        for writer in held:
            writer.close()
        server.close()

    assert held, "the connection test never reached the store"
    assert dead.headers[topology.DEAD_REASON_HEADER] == "store_unavailable"
    error = dead.headers[topology.ERROR_HEADER]
    error = error.decode() if isinstance(error, bytes) else error
    assert "did not answer the connection test within 1 s (WOOSYNC_STORE_CONNECT_TEST_TIMEOUT_S)" in error
    queue = await db_pool.fetchrow("SELECT error_message, is_action_required FROM woo_customer_sync_queue")
    assert queue["is_action_required"] and "connection test within 1 s" in queue["error_message"]
