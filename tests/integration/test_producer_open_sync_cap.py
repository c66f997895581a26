"""A sync request published on the broker for an organisation that already has its
WOOSYNC_ORG_MAX_OPEN_SYNCS syncs open is dead-lettered with reason too_many_open_syncs
(docs/contract.md section 3), and creates no queue."""

from __future__ import annotations

import orjson
import pytest

from services.producer.handler import SyncRequestHandler
from shared import amqp, organizations, topology
from shared.messages import StartSync
from shared.metrics import Metrics
from shared.repository import sync_queues
from shared.settings import Settings

pytestmark = pytest.mark.integration


async def test_a_request_beyond_the_open_sync_cap_is_dead_lettered_too_many_open_syncs(db_pool, amqp_url) -> None:
    org_id, _ = await organizations.create_organization(db_pool, name="busy")
    settings = Settings(org_max_open_syncs=2)
    for key in ("open-1", "open-2"):
        await sync_queues.find_or_create_queue(db_pool, org_id=org_id, queue_name=key, idempotency_key=key, store_id=None,
                                               store_url=None, created_by=None, options={})
    connection = await amqp.connect(amqp_url)
    try:
        channel = await amqp.open_publisher_channel(connection)
        await amqp.declare_topology(channel, settings)
        request = StartSync.model_validate({"org_id": str(org_id), "idempotency_key": "one-too-many", "store": {
            "url": "https://shop.example.com", "consumer_key": "ck_test", "consumer_secret": "cs_test"}})
        await amqp.publish_sync_request(channel, request)
        requests = await amqp.consumable_queue(channel, topology.SYNC_REQUESTS_QUEUE, settings)

        await SyncRequestHandler(db_pool, channel, settings, Metrics())(await requests.get(timeout=5))

        dead_queue = await channel.declare_queue(topology.SYNC_REQUESTS_DEAD_QUEUE, passive=True)
        dead = await dead_queue.get(timeout=5)
        await dead.ack()
        # Not back in the queue (a quorum queue's declare-ok count lags: ask for a message instead).
        left = await (await channel.declare_queue(topology.SYNC_REQUESTS_QUEUE, passive=True)).get(fail=False)
    finally:
        await connection.close()

    assert dead.headers[topology.DEAD_REASON_HEADER] == "too_many_open_syncs"
    error = dead.headers[topology.ERROR_HEADER]
    assert "WOOSYNC_ORG_MAX_OPEN_SYNCS" in (error.decode() if isinstance(error, bytes) else str(error))
    assert orjson.loads(dead.body)["idempotency_key"] == "one-too-many"
    assert left is None
    keys = {queue.idempotency_key for queue in await sync_queues.list_queues(db_pool, org_id, limit=10, offset=0)}
    assert keys == {"open-1", "open-2"}
