"""shared.repository.sync_queues against a real PostgreSQL: finding and creating queues, the
queue state rules of docs/contract.md section 4 as lines move, cancelling, housekeeping, and
organisation scoping (another organisation's queue id is an unknown id to every operation)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

from shared.errors import UnknownOrganization
from shared.repository import activity, queue_lines, sync_queues
from tests.integration.repository_setup import counts, customer, new_org, new_queue, status, true_counts

pytestmark = pytest.mark.integration


async def test_the_same_idempotency_key_maps_to_the_same_queue(db_pool: asyncpg.Pool) -> None:
    org = await new_org(db_pool)
    first, created = await sync_queues.find_or_create_queue(
        db_pool, org_id=org, queue_name="a", idempotency_key="nightly-1", store_id=None, store_url=None, created_by=None, options={}
    )
    again, created_again = await sync_queues.find_or_create_queue(
        db_pool, org_id=org, queue_name="b", idempotency_key="nightly-1", store_id=None, store_url=None, created_by=None, options={}
    )
    assert created and not created_again
    assert again.id == first.id and again.queue_name == "a"


async def test_racing_requests_with_one_key_create_one_queue(db_pool: asyncpg.Pool) -> None:
    org = await new_org(db_pool)
    results = await asyncio.gather(*(
        sync_queues.find_or_create_queue(db_pool, org_id=org, queue_name=f"q{n}", idempotency_key="race", store_id=None,
                                  store_url=None, created_by=None, options={})
        for n in range(8)
    ))
    assert len({queue.id for queue, _ in results}) == 1
    assert [created for _, created in results].count(True) == 1


async def test_idempotency_keys_are_per_organisation_and_optional(db_pool: asyncpg.Pool) -> None:
    acme, globex = await new_org(db_pool, "Acme"), await new_org(db_pool, "Globex")
    a, _ = await new_queue(db_pool, acme, key="k")
    g, _ = await new_queue(db_pool, globex, key="k")
    assert a.id != g.id
    no_key_1, _ = await new_queue(db_pool, acme)
    no_key_2, _ = await new_queue(db_pool, acme)
    assert no_key_1.id != no_key_2.id


async def test_a_queue_for_an_unknown_organisation_is_refused(db_pool: asyncpg.Pool) -> None:
    with pytest.raises(UnknownOrganization):
        await sync_queues.find_or_create_queue(db_pool, org_id=uuid.uuid4(), queue_name="q", idempotency_key=None,
                                        store_id=None, store_url=None, created_by=None, options={})


async def test_a_new_queue_is_draft_with_zero_counts(db_pool: asyncpg.Pool) -> None:
    queue, _ = await new_queue(db_pool, await new_org(db_pool), key="k")
    assert queue.state == "draft" and queue.total_count == 0 and queue.progress == 0
    assert queue.idempotency_key == "k" and not queue.is_terminal
    # the options as resolved: the organisation's conflict policy is recorded when the queue is created
    assert queue.options == {"role": "all", "conflict_policy": "store_wins"}


async def test_an_empty_sync_is_done_once_enumeration_finishes(db_pool: asyncpg.Pool) -> None:
    queue, _ = await new_queue(db_pool, await new_org(db_pool))
    finished = await sync_queues.mark_enumeration_done(db_pool, queue.id, queue.org_id)
    assert finished is not None and finished.state == "done" and finished.progress == 100
    assert finished.eta_seconds == 0


async def test_queue_state_follows_its_lines_through_a_sync(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=4)
    assert (await status(db_pool, queue)).state == "draft"

    await queue_lines.claim_lines(db_pool, lines[:2])
    in_progress = await status(db_pool, queue)
    assert in_progress.state == "processing" and in_progress.started_at is not None

    await queue_lines.mark_lines_done(db_pool, [(lines[0], None, False), (lines[1], None, True)])
    await queue_lines.claim_lines(db_pool, lines[2:])
    await queue_lines.mark_lines_done(db_pool, [(lines[2], None, False), (lines[3], None, False)])
    # Every line is done, but the producer may still be paging the store.
    assert (await status(db_pool, queue)).state == "processing"

    done = await sync_queues.mark_enumeration_done(db_pool, queue.id, queue.org_id)
    assert done is not None
    assert done.state == "done" and done.progress == 100 and done.finished_at is not None
    assert counts(done) == await true_counts(db_pool, queue.id) == {"draft": 0, "queued": 0, "processing": 0, "done": 4, "failed": 0, "cancelled": 0}
    assert not done.is_action_required


async def test_all_lines_failed_is_failed_and_some_failed_is_partial(db_pool: asyncpg.Pool) -> None:
    org = await new_org(db_pool)
    failing, failing_lines = await new_queue(db_pool, org, customers=2)
    await queue_lines.claim_lines(db_pool, failing_lines)
    await queue_lines.mark_lines_failed(db_pool, [(line, "no valid email") for line in failing_lines])
    failed = await sync_queues.mark_enumeration_done(db_pool, failing.id, org)
    assert failed is not None and failed.state == "failed" and failed.is_action_required

    mixed, mixed_lines = await new_queue(db_pool, org, customers=2)
    await queue_lines.mark_lines_done(db_pool, [(mixed_lines[0], None, False)])
    await queue_lines.mark_lines_failed(db_pool, [(mixed_lines[1], "no valid email")])
    partial = await sync_queues.mark_enumeration_done(db_pool, mixed.id, org)
    assert partial is not None and partial.state == "partial" and partial.is_action_required


async def test_a_failed_sync_request_ends_its_queue_failed_and_needing_action(db_pool: asyncpg.Pool) -> None:
    queue, _ = await new_queue(db_pool, await new_org(db_pool))
    await sync_queues.record_queue_error(db_pool, queue.id, queue.org_id, "the store refused the credentials (401)")
    ended = await status(db_pool, queue)
    assert ended.state == "failed"
    assert ended.is_action_required
    assert ended.error_message == "the store refused the credentials (401)"


async def test_a_request_error_that_does_not_end_enumeration_leaves_the_queue_running(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=1)
    await sync_queues.record_queue_error(db_pool, queue.id, queue.org_id, "page 7 timed out", ends_enumeration=False)
    still = await status(db_pool, queue)
    assert still.state == "draft" and still.is_action_required and not still.enumeration_done


async def test_list_queues_is_newest_first_paginated_and_per_organisation(db_pool: asyncpg.Pool) -> None:
    acme, globex = await new_org(db_pool, "Acme"), await new_org(db_pool, "Globex")
    made = [(await new_queue(db_pool, acme))[0].id for _ in range(3)]
    await new_queue(db_pool, globex)

    listed = await sync_queues.list_queues(db_pool, acme, limit=10, offset=0)
    assert [queue.id for queue in listed] == made[::-1]
    assert [queue.id for queue in await sync_queues.list_queues(db_pool, acme, limit=2, offset=1)] == made[::-1][1:3]
    assert len(await sync_queues.list_queues(db_pool, globex, limit=10, offset=0)) == 1


async def test_another_organisations_queue_is_unknown_to_every_operation(db_pool: asyncpg.Pool) -> None:
    owner, intruder = await new_org(db_pool, "Owner"), await new_org(db_pool, "Intruder")
    queue, lines = await new_queue(db_pool, owner, customers=3)
    await queue_lines.claim_lines(db_pool, [lines[0]])
    await queue_lines.mark_lines_failed(db_pool, [(lines[0], "bad data")])
    before = await status(db_pool, queue)

    assert await sync_queues.queue_status(db_pool, queue.id, intruder) is None
    assert await sync_queues.cancel_queue(db_pool, queue.id, intruder, cancelled_by="intruder") is None
    assert await queue_lines.retry_failed_lines(db_pool, queue.id, intruder, requested_by="intruder") == []
    assert await sync_queues.mark_enumeration_done(db_pool, queue.id, intruder) is None
    await sync_queues.record_queue_error(db_pool, queue.id, intruder, "intruded")
    assert await queue_lines.add_lines(db_pool, queue_id=queue.id, org_id=intruder, customers=[(99, customer(99))]) == []
    assert await queue_lines.list_lines(db_pool, queue.id, intruder, state=None, limit=10, offset=0) == []
    await activity.append_activity(db_pool, [activity.ActivityRow(queue_id=queue.id, org_id=owner, activity_type="note", status="ok")])
    assert await activity.read_activity(db_pool, queue.id, intruder, limit=10, offset=0) == []
    assert await sync_queues.list_queues(db_pool, intruder, limit=10, offset=0) == []

    after = await status(db_pool, queue)
    assert counts(after) == counts(before)
    assert (after.state, after.error_message, after.enumeration_done, after.cancelled_at) == ("processing", None, False, None)


async def test_cancel_cancels_draft_lines_and_lets_processing_ones_finish(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=4)
    await queue_lines.claim_lines(db_pool, lines[:2])
    await queue_lines.mark_lines_done(db_pool, [(lines[0], None, False)])

    cancelled = await sync_queues.cancel_queue(db_pool, queue.id, queue.org_id, cancelled_by="ops@example.com")
    assert cancelled is not None
    assert cancelled.state == "cancelled" and cancelled.cancelled_by == "ops@example.com"
    assert counts(cancelled) == {"draft": 0, "queued": 0, "processing": 1, "done": 1, "failed": 0, "cancelled": 2}

    # The in-flight line finishes normally.
    assert await queue_lines.mark_lines_done(db_pool, [(lines[1], None, False)]) == 1
    again = await sync_queues.cancel_queue(db_pool, queue.id, queue.org_id, cancelled_by="someone else")
    assert again is not None and again.cancelled_by == "ops@example.com" and again.cancelled_at == cancelled.cancelled_at
    assert counts(again) == {"draft": 0, "queued": 0, "processing": 0, "done": 2, "failed": 0, "cancelled": 2}
    entries = await activity.read_activity(db_pool, queue.id, queue.org_id, limit=10, offset=0)
    assert [entry.activity_type for entry in entries] == ["cancel"]
    assert entries[0].details == {"cancelled_by": "ops@example.com", "lines_cancelled": 2}


async def test_cancelling_a_finished_queue_changes_nothing(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=1)
    await queue_lines.mark_lines_done(db_pool, [(lines[0], None, False)])
    await sync_queues.mark_enumeration_done(db_pool, queue.id, queue.org_id)
    after = await sync_queues.cancel_queue(db_pool, queue.id, queue.org_id, cancelled_by="ops")
    assert after is not None and after.state == "done" and after.cancelled_at is None


async def test_delete_finished_queues_removes_only_old_finished_queues_with_their_lines(db_pool: asyncpg.Pool) -> None:
    org = await new_org(db_pool)
    old, old_lines = await new_queue(db_pool, org, customers=2)
    await queue_lines.mark_lines_done(db_pool, [(line, None, False) for line in old_lines])
    await sync_queues.mark_enumeration_done(db_pool, old.id, org)
    await activity.append_activity(db_pool, [activity.ActivityRow(queue_id=old.id, org_id=org, activity_type="note", status="ok", queue_line_id=old_lines[0])])
    await db_pool.execute("UPDATE woo_customer_sync_queue SET finished_at = now() - interval '40 days' WHERE id = $1", old.id)
    recent, _ = await new_queue(db_pool, org)
    await sync_queues.mark_enumeration_done(db_pool, recent.id, org)
    running, _ = await new_queue(db_pool, org, customers=1)

    assert await sync_queues.delete_finished_queues(db_pool, older_than_days=30) == 1
    remaining = {queue.id for queue in await sync_queues.list_queues(db_pool, org, limit=10, offset=0)}
    assert remaining == {recent.id, running.id}
    assert await db_pool.fetchval("SELECT count(*) FROM woo_customer_sync_queue_line WHERE queue_id = $1", old.id) == 0


async def test_line_counts_of_unfinished_queues_sum_the_running_queues_only(db_pool: asyncpg.Pool) -> None:
    org = await new_org(db_pool)
    running, lines = await new_queue(db_pool, org, customers=3)
    await queue_lines.claim_lines(db_pool, [lines[0]])
    await queue_lines.mark_lines_failed(db_pool, [(lines[1], "x")])
    finished, finished_lines = await new_queue(db_pool, org, customers=2)
    await queue_lines.mark_lines_done(db_pool, [(line, None, False) for line in finished_lines])
    await sync_queues.mark_enumeration_done(db_pool, finished.id, org)

    assert await sync_queues.line_counts_by_state_of_unfinished_queues(db_pool) == {
        "draft": 1, "queued": 0, "processing": 1, "done": 0, "failed": 1, "cancelled": 0}


def _status_row(**overrides: object) -> dict[str, object]:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    row: dict[str, object] = dict(
        id=uuid.uuid4(), org_id=uuid.uuid4(), queue_name="q", state="processing", total_count=100,
        draft_count=40, processing_count=10, done_count=45, failed_count=5, cancelled_count=0,
        is_action_required=True, enumeration_done=True, error_message=None, store_id=None, store_url=None,
        idempotency_key=None, created_by=None, options={}, started_at=now - timedelta(minutes=2), finished_at=None,
        cancelled_at=None, cancelled_by=None, created_at=now, updated_at=now, observed_at=now,
    )
    row.update(overrides)
    return row


def test_progress_rate_and_eta_come_from_the_counters() -> None:
    queue = sync_queues.QueueStatus.from_row(_status_row())  # type: ignore[arg-type]
    assert queue.progress == 50
    assert queue.items_per_min == 25.0  # 50 lines worked in 2 minutes
    assert queue.eta_seconds == 120  # 50 pending at 25 a minute

    not_started = sync_queues.QueueStatus.from_row(_status_row(started_at=None, done_count=0, failed_count=0, draft_count=100, processing_count=0))  # type: ignore[arg-type]
    assert (not_started.progress, not_started.items_per_min, not_started.eta_seconds) == (0, 0.0, None)

    almost = sync_queues.QueueStatus.from_row(_status_row(draft_count=0, processing_count=1, done_count=99, failed_count=0))  # type: ignore[arg-type]
    assert almost.progress == 99, "100 only when every line is finished"
