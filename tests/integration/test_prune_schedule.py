"""Retention on a schedule (docs/contract.md section 10, "Schedules"; sql/011_maintenance_schedule.sql)
against a real PostgreSQL: the producers' schedulers prune finished queues as `woosync prune` does,
one runner at a time however many schedulers run, once per due time."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from services.producer.scheduler import Scheduler
from shared.db import create_pool
from shared.repository import schedules
from shared.settings import Settings
from tests.waiting import eventually

pytestmark = pytest.mark.integration


async def finished_queues(conn, org_id, *ages_days: int) -> None:
    """Queues that finished `age` days ago (an empty enumerated queue is done; its finish time is aged by hand)."""
    for age in ages_days:
        queue_id = await conn.fetchval(
            "INSERT INTO woo_customer_sync_queue (org_id, queue_name, enumeration_done) VALUES ($1, 'q', true) "
            "RETURNING id", org_id)
        await conn.execute("UPDATE woo_customer_sync_queue SET finished_at = now() - make_interval(days => $2) "
                           "WHERE id = $1 AND state = 'done'", queue_id, age)


@pytest.fixture
async def world(db_pool, database_url):
    """Two finished queues long ago, one recent, one open; two schedulers on pools of their own."""
    async with db_pool.acquire() as conn:
        org_id = await conn.fetchval("INSERT INTO organization (name) VALUES ('o') RETURNING id")
        await finished_queues(conn, org_id, 40, 45, 2)
        await conn.execute("INSERT INTO woo_customer_sync_queue (org_id, queue_name) VALUES ($1, 'open')", org_id)
    settings = Settings(prune_keep_days=30, prune_every_s=3600)
    pools = [await create_pool(database_url, min_size=1, max_size=2) for _ in range(2)]
    try:
        # Retention needs no broker: the schedulers get no channel.
        yield [Scheduler(pool, None, settings) for pool in pools]  # type: ignore[arg-type]
    finally:
        for pool in pools:
            await pool.close()


async def queue_states(db_pool) -> list[str]:
    return [row["state"] for row in await db_pool.fetch("SELECT state FROM woo_customer_sync_queue ORDER BY state")]


async def test_two_schedulers_prune_once_per_due_time_and_keep_recent_and_open_queues(db_pool, world) -> None:
    results = await asyncio.gather(*(scheduler.prune_if_due() for scheduler in world for _ in range(3)))
    assert sorted(results, key=lambda r: r is not None) == [None] * 5 + [2]
    assert await queue_states(db_pool) == ["done", "draft"]

    task = await schedules.maintenance_task(db_pool)
    assert task.last_result == {"deleted_queues": 2, "keep_days": 30} and task.last_error is None
    assert timedelta(seconds=3500) < task.next_run_at - task.last_run_at <= timedelta(seconds=3600)
    # Not due again before its time, whichever scheduler asks.
    assert await asyncio.gather(*(scheduler.prune_if_due() for scheduler in world)) == [None, None]

    # The next due time: one of them runs it (nothing old is left to delete), once.
    await db_pool.execute("UPDATE maintenance_task SET next_run_at = now() WHERE task = 'prune'")
    again = await asyncio.gather(*(scheduler.prune_if_due() for scheduler in world for _ in range(2)))
    assert sorted(again, key=lambda r: r is not None) == [None, None, None, 0]


async def test_while_one_runner_holds_the_task_the_others_skip_it_without_waiting(db_pool, database_url, world) -> None:
    holder = await asyncpg.connect(database_url)
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT 1 FROM maintenance_task WHERE task = 'prune' FOR UPDATE")
        # Each returns at once (SKIP LOCKED): bounded here so that a runner that waited would fail.
        skipped = await asyncio.wait_for(asyncio.gather(*(scheduler.prune_if_due() for scheduler in world)), 10)
        assert skipped == [None, None]
        assert await queue_states(db_pool) == ["done", "done", "done", "draft"]
        await transaction.rollback()  # the holder "died": the task is still due
    finally:
        await holder.close()
    assert sorted(await asyncio.gather(*(scheduler.prune_if_due() for scheduler in world)),
                  key=lambda r: r is not None) == [None, 2]


async def test_without_keep_days_the_scheduler_prunes_nothing(db_pool, world) -> None:
    off = Scheduler(world[0]._pool, None, Settings(prune_keep_days=None))  # type: ignore[arg-type]
    assert await off.prune_if_due() is None
    assert await queue_states(db_pool) == ["done", "done", "done", "draft"]
    assert (await schedules.maintenance_task(db_pool)).last_run_at is None


async def test_the_scheduler_loop_runs_retention_when_due(db_pool, world) -> None:
    stop = asyncio.Event()
    loop = asyncio.create_task(Scheduler(world[0]._pool, None, Settings(prune_keep_days=30),  # type: ignore[arg-type]
                                         every_s=0.05).run(stop))
    try:
        async def pruned() -> bool:
            return (await schedules.maintenance_task(db_pool)).last_run_at is not None

        await eventually(pruned, timeout=20, interval=0.05, what="the scheduler's retention run")
    finally:
        stop.set()
        await asyncio.wait_for(loop, 10)
    assert await queue_states(db_pool) == ["done", "draft"]
