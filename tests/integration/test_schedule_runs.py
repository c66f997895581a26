"""What a due schedule's run does (shared/repository/schedules.py, docs/contract.md section 10) against a
real PostgreSQL: a run whose previous sync is still open is skipped, a failed run is recorded and
due again a minute later, a disabled schedule is not run. The run itself is a stand-in for the
producer's publish."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.repository import schedules, stores

pytestmark = pytest.mark.integration

SHOP = "https://shop.example.com"


@pytest.fixture
async def schedule(db_pool):
    org_id = await db_pool.fetchval("INSERT INTO organization (name) VALUES ('o') RETURNING id")
    store_id = await stores.record_store(db_pool, org_id=org_id, url=SHOP, consumer_key="ck", consumer_secret="cs",
                                         cipher=None)
    await schedules.set_schedule(db_pool, org_id=org_id, store_id=store_id, kind="full", every_s=600)
    return org_id, store_id


async def the_schedule(db_pool, org_id) -> schedules.Schedule:
    [found] = await schedules.list_schedules(db_pool, org_id)
    return found


async def test_a_run_is_skipped_while_the_previous_runs_sync_is_open_and_runs_once_it_ended(db_pool, schedule) -> None:
    org_id, _ = schedule
    published: list[str] = []

    async def publish(due: schedules.Schedule) -> str:
        key = f"run-{len(published) + 1}"
        published.append(key)
        # The producer creates the run's queue (still open here).
        await db_pool.execute("INSERT INTO woo_customer_sync_queue (org_id, queue_name, idempotency_key) "
                              "VALUES ($1, 'q', $2)", org_id, key)
        return key

    async with db_pool.acquire() as conn:
        assert await schedules.run_due(conn, publish) == 1
        first = await the_schedule(db_pool, org_id)
        assert (first.last_queue_key, first.last_queue_state, first.last_error) == ("run-1", "draft", None)

        await db_pool.execute("UPDATE woo_sync_schedule SET next_run_at = now()")
        assert await schedules.run_due(conn, publish) == 0
        skipped = await the_schedule(db_pool, org_id)
        assert published == ["run-1"] and "still draft" in skipped.last_error and str(first.last_queue_id) in skipped.last_error
        assert skipped.next_run_at - skipped.updated_at > timedelta(seconds=590)

        # The sync ended: the next due time runs.
        await db_pool.execute("UPDATE woo_customer_sync_queue SET state = 'cancelled', cancelled_at = now()")
        await db_pool.execute("UPDATE woo_sync_schedule SET next_run_at = now()")
        assert await schedules.run_due(conn, publish) == 1
        assert published == ["run-1", "run-2"] and (await the_schedule(db_pool, org_id)).last_error is None


async def test_a_failed_run_is_recorded_and_due_again_a_minute_later(db_pool, schedule) -> None:
    org_id, _ = schedule

    async def refuse(due: schedules.Schedule) -> str:
        raise ConnectionError("the broker is gone")

    async with db_pool.acquire() as conn:
        assert await schedules.run_due(conn, refuse) == 0
    failed = await the_schedule(db_pool, org_id)
    assert failed.last_error == "ConnectionError: the broker is gone" and failed.last_run_at is None
    assert timedelta(seconds=50) < failed.next_run_at - failed.updated_at <= timedelta(seconds=60)


async def test_a_disabled_schedule_is_not_run_and_enabling_it_makes_it_due(db_pool, schedule) -> None:
    org_id, store_id = schedule
    runs: list[str] = []

    async def publish(due: schedules.Schedule) -> str:
        runs.append(due.kind)
        return "key"

    await schedules.set_schedule(db_pool, org_id=org_id, store_id=store_id, kind="full", every_s=None, enabled=False)
    async with db_pool.acquire() as conn:
        assert await schedules.run_due(conn, publish) == 0
        await schedules.set_schedule(db_pool, org_id=org_id, store_id=store_id, kind="full", every_s=None)
        assert await schedules.run_due(conn, publish) == 1
    assert runs == ["full"]


async def test_a_disabled_organisations_schedules_wait_until_it_is_enabled_again(db_pool, schedule) -> None:
    org_id, _ = schedule
    runs: list[str] = []

    async def publish(due: schedules.Schedule) -> str:
        runs.append(due.kind)
        return "key"

    await db_pool.execute("UPDATE organization SET disabled_at = now() WHERE id = $1", org_id)
    async with db_pool.acquire() as conn:
        assert await schedules.run_due(conn, publish) == 0
        await db_pool.execute("UPDATE organization SET disabled_at = NULL WHERE id = $1", org_id)
        assert await schedules.run_due(conn, publish) == 1
    assert runs == ["full"]
