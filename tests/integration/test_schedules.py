"""Store schedules (docs/contract.md section 10) against real PostgreSQL and RabbitMQ: two
producers' schedulers running at once publish each due schedule's sync request once."""

from __future__ import annotations

import asyncio

import asyncpg
import orjson
import pytest

from services.producer.scheduler import Scheduler
from shared import amqp, organizations, topology
from shared.repository import schedules, stores
from shared.settings import Settings

pytestmark = pytest.mark.integration


async def test_two_schedulers_run_each_due_schedule_once(db_pool, database_url, amqp_url):
    settings = Settings()
    async with db_pool.acquire() as conn:
        org_id, _ = await organizations.create_organization(conn, name="s")
        store_ids = [await stores.record_store(conn, org_id=org_id, url=f"https://shop{i}.example.com",
                                               consumer_key=f"ck_{i}", consumer_secret=f"cs_{i}", cipher=None)
                     for i in range(6)]
        for store_id in store_ids:
            for kind in schedules.KINDS:
                await schedules.set_schedule(conn, org_id=org_id, store_id=store_id, kind=kind, every_s=3600)
    pools = [await asyncpg.create_pool(database_url, min_size=1, max_size=3) for _ in range(2)]
    connection = await amqp.connect(amqp_url)
    try:
        channel = await amqp.open_publisher_channel(connection)
        await amqp.declare_topology(channel, settings)
        runners = [Scheduler(pool, channel, settings) for pool in pools]
        ran = await asyncio.gather(*(runner.run_due() for runner in runners for _ in range(2)))
        assert sum(ran) == len(store_ids) * 2
        assert sum(await asyncio.gather(*(runner.run_due() for runner in runners))) == 0  # nothing due now

        requests = await amqp.consumable_queue(channel, topology.SYNC_REQUESTS_QUEUE, settings)
        published = []
        while (message := await requests.get(timeout=5, fail=False)) is not None:
            published.append(orjson.loads(message.body))
            await message.ack()
    finally:
        await connection.close()
        for pool in pools:
            await pool.close()
    assert sorted((r["store"]["url"], r["options"]["mode"]) for r in published) == sorted(
        (f"https://shop{i}.example.com", kind) for i in range(6) for kind in schedules.KINDS)
    assert all(r["store"]["consumer_key"].startswith("ck_") and r["org_id"] == str(org_id) for r in published)
    async with db_pool.acquire() as conn:
        listed = await schedules.list_schedules(conn, org_id)
    assert len(listed) == 12 and all(s.last_run_at is not None and s.last_error is None for s in listed)
    assert all((s.next_run_at - s.last_run_at).total_seconds() > 3000 for s in listed)
