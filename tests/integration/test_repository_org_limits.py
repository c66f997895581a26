"""Limits per organisation in PostgreSQL (shared/repository/org_limits.py, and the open-sync cap of
shared/repository/sync_queues.py): they hold under concurrent requests and across processes,
because the database, not a process, keeps them."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from shared.errors import TooManyOpenSyncs
from shared.repository import org_limits, sync_queues
from tests.integration.repository_setup import new_org

pytestmark = pytest.mark.integration


async def create(pool: asyncpg.Pool, org_id, *, key: str | None = None, cap: int | None):
    return await sync_queues.find_or_create_queue(
        pool, org_id=org_id, queue_name="q", idempotency_key=key, store_id=None, store_url=None, created_by=None,
        options={}, max_open_syncs=cap,
    )


# ------------------------------------------------------------------------ sync starts (GCRA)
async def test_a_burst_is_allowed_then_each_start_waits_its_interval(db_pool: asyncpg.Pool) -> None:
    org = await new_org(db_pool)
    waits = [await org_limits.take_sync_start(db_pool, org, per_minute=60, burst=3) for _ in range(4)]
    assert waits[:3] == [None, None, None]
    assert waits[3] is not None and 0 < waits[3] <= 1.0  # one start per second after the burst
    # A second later (the recorded arrival time moved back), one more start is allowed, not two.
    await db_pool.execute("UPDATE organization_rate_limit SET tat = tat - interval '1 second'")
    assert await org_limits.take_sync_start(db_pool, org, per_minute=60, burst=3) is None
    assert await org_limits.take_sync_start(db_pool, org, per_minute=60, burst=3) is not None


async def test_concurrent_starts_never_exceed_the_burst(db_pool: asyncpg.Pool) -> None:
    org = await new_org(db_pool)
    waits = await asyncio.gather(*(org_limits.take_sync_start(db_pool, org, per_minute=1, burst=5) for _ in range(30)))
    assert waits.count(None) == 5


async def test_each_organisation_has_its_own_allowance(db_pool: asyncpg.Pool) -> None:
    acme, globex = await new_org(db_pool, "Acme"), await new_org(db_pool, "Globex")
    assert await org_limits.take_sync_start(db_pool, acme, per_minute=1, burst=1) is None
    assert await org_limits.take_sync_start(db_pool, acme, per_minute=1, burst=1) is not None
    assert await org_limits.take_sync_start(db_pool, globex, per_minute=1, burst=1) is None


# ------------------------------------------------------------------------ open syncs
async def test_concurrent_creations_never_exceed_the_open_sync_cap(db_pool: asyncpg.Pool) -> None:
    org = await new_org(db_pool)
    results = await asyncio.gather(*(create(db_pool, org, cap=3) for _ in range(12)), return_exceptions=True)
    assert sum(1 for result in results if isinstance(result, tuple)) == 3
    refused = [result for result in results if isinstance(result, TooManyOpenSyncs)]
    assert len(refused) == 9 and refused[0].max_open_syncs == 3
    assert "WOOSYNC_ORG_MAX_OPEN_SYNCS" in str(refused[0])


async def test_an_existing_key_is_answered_at_the_cap_and_a_finished_sync_frees_its_place(db_pool: asyncpg.Pool) -> None:
    org = await new_org(db_pool)
    first, _ = await create(db_pool, org, key="a", cap=2)
    await create(db_pool, org, key="b", cap=2)
    with pytest.raises(TooManyOpenSyncs):
        await create(db_pool, org, key="c", cap=2)
    again, created = await create(db_pool, org, key="a", cap=2)
    assert again.id == first.id and not created
    await sync_queues.mark_enumeration_done(db_pool, first.id, org)  # no lines: it is done
    assert (await sync_queues.queue_status(db_pool, first.id, org)).state == "done"
    _, created = await create(db_pool, org, key="c", cap=2)
    assert created


async def test_the_open_sync_count_is_served_by_an_index(db_pool: asyncpg.Pool) -> None:
    org = await new_org(db_pool)
    async with db_pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN {sync_queues.COUNT_OPEN_SYNCS}", org, 20, ["draft", "processing"]))
    assert "Index" in plan and "Seq Scan" not in plan, plan
