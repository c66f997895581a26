"""The producer's connection test goes through the store-address guard (docs/contract.md
section 10): a sync pointed at this machine is refused before anything is sent to it, and the
queue's error names the rule, never what the address would have answered."""

from __future__ import annotations

import pytest
from aiohttp import web

from services.producer.handler import SyncRequestHandler
from shared import amqp, organizations, topology
from shared.messages import StartSync
from shared.metrics import Metrics
from shared.settings import Settings

pytestmark = pytest.mark.integration


async def test_a_sync_of_a_store_on_loopback_is_refused_unless_allowed_and_the_queue_says_why(db_pool, amqp_url):
    contacted: list[str] = []

    async def internal_service(request: web.Request) -> web.Response:
        contacted.append(request.path)
        return web.json_response({"code": "internal", "message": "db_password=hunter2"}, status=401)

    app = web.Application()
    app.router.add_get("/{tail:.*}", internal_service)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with db_pool.acquire() as conn:
        org_id, _ = await organizations.create_organization(conn, name="p")
    settings = Settings(store_allowed_networks=())  # the default, whatever the test environment allows
    connection = await amqp.connect(amqp_url)
    try:
        channel = await amqp.open_publisher_channel(connection)
        await amqp.declare_topology(channel, settings)
        request = StartSync.model_validate({"org_id": str(org_id), "store": {
            "url": f"http://localhost:{port}", "consumer_key": "ck_test", "consumer_secret": "cs_test"}})
        await amqp.publish_sync_request(channel, request)
        requests = await amqp.consumable_queue(channel, topology.SYNC_REQUESTS_QUEUE, settings)
        message = await requests.get(timeout=5)

        await SyncRequestHandler(db_pool, channel, settings, Metrics())(message)
    finally:
        await connection.close()
        await runner.cleanup()

    assert contacted == [], "the producer sent a request to a refused address"
    queue = await db_pool.fetchrow("SELECT error_message, is_action_required FROM woo_customer_sync_queue")
    assert queue["is_action_required"]
    error = queue["error_message"]
    assert f"store http://localhost:{port} was not contacted: store address " in error
    assert "is in the loopback network" in error and "set WOOSYNC_STORE_ALLOWED_NETWORKS to allow it" in error
    assert "hunter2" not in error
