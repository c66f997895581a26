"""The event streams' poller reads every watched queue of the status process in one query per
tick (services/status/sse.py): the database's load follows the poll interval, not the number of
streams or of queues they watch."""

from __future__ import annotations

import contextlib

import aiohttp
import pytest

from shared.db import create_pool
from shared.settings import Settings
from tests.integration.status_harness import a_queue, an_organization, serve, status_service
from tests.waiting import eventually

pytestmark = pytest.mark.integration

ORGANISATIONS = 3
QUEUES_PER_ORGANISATION = 20
STREAMS_PER_QUEUE = 2
TICKS = 20


async def test_many_streams_on_many_queues_cost_one_query_per_tick(database_url, db_pool, amqp_url) -> None:
    queries: list[str] = []

    async def count_queries(conn) -> None:
        conn.add_query_logger(lambda record: queries.append(record.query))

    watched = []
    for n in range(ORGANISATIONS):
        org_id, token = await an_organization(db_pool, f"org {n}")
        for _ in range(QUEUES_PER_ORGANISATION):
            queue, _ = await a_queue(db_pool, org_id, lines=1)
            watched.extend([(queue.id, token)] * STREAMS_PER_QUEUE)

    service_pool = await create_pool(database_url, min_size=1, max_size=10, init=count_queries)
    settings = Settings(org_max_event_streams=QUEUES_PER_ORGANISATION * STREAMS_PER_QUEUE)
    try:
        async with status_service(service_pool, amqp_url, settings=settings, hub_interval=0.05) as api:
            hub = api.ctx.hub
            async with serve(api.app, hub) as base_url, aiohttp.ClientSession(base_url, connector=aiohttp.TCPConnector(limit=0)) as session, \
                    contextlib.AsyncExitStack() as streams:
                for queue_id, token in watched:
                    response = await streams.enter_async_context(session.get(
                        f"/api/v1/sync/queues/{queue_id}/events", headers={"Authorization": f"Bearer {token}"}))
                    assert response.status == 200
                    while not (await response.content.readline()).startswith(b"event: status"):
                        pass  # each stream has its first snapshot
                assert hub.watched_queues == ORGANISATIONS * QUEUES_PER_ORGANISATION

                ticks_before, queries_before = hub.ticks, len(queries)
                await eventually(lambda: hub.ticks >= ticks_before + TICKS, timeout=30, interval=0.01,
                                 what=f"{TICKS} polls of the watched queues")
                ticks, polled = hub.ticks - ticks_before, queries[queries_before:]
    finally:
        await service_pool.close()

    # One read per tick for all 60 queues and 120 streams (one more for a tick under way); with the
    # pool's reset of the connection it gives back, two statements per tick.
    reads = [query for query in polled if "woo_customer_sync_queue" in query]
    assert len(reads) <= ticks + 1, (ticks, len(reads), reads[:3])
    assert len(polled) <= 2 * (ticks + 1), (ticks, len(polled), polled[:4])
