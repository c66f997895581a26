"""shared.queue_repository against a real PostgreSQL: each operation, the queue state rules of
docs/contract.md section 4, and organisation scoping (another organisation's queue id is an unknown id)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest
from cryptography.fernet import Fernet

from shared import queue_repository as repo
from shared.errors import UnknownOrganization
from shared.organizations import create_organization

pytestmark = pytest.mark.integration

CONTRACT_STATUS_KEYS = {
    "id", "queue_name", "state", "total_count", "draft_count", "processing_count", "done_count",
    "failed_count", "cancelled_count", "progress", "is_action_required", "items_per_min",
    "eta_seconds", "created_at", "updated_at",
}


async def new_org(pool: asyncpg.Pool, name: str = "Acme") -> uuid.UUID:
    org_id, _ = await create_organization(pool, name=name)
    return org_id


async def new_queue(pool: asyncpg.Pool, org_id: uuid.UUID, *, key: str | None = None, customers: int = 0) -> tuple[repo.QueueStatus, list[uuid.UUID]]:
    queue, _ = await repo.find_or_create_queue(
        pool, org_id=org_id, queue_name="nightly", idempotency_key=key, store_id=None,
        store_url="https://shop.example.com", created_by="tests", options={"role": "all"},
    )
    lines = await repo.add_lines(pool, queue_id=queue.id, org_id=org_id, customers=[(n, customer(n)) for n in range(1, customers + 1)])
    return queue, [line_id for line_id, _ in sorted(lines, key=lambda pair: pair[1])]


def customer(n: int) -> dict:
    return {"id": n, "email": f"customer{n}@example.com", "first_name": "Ada", "meta_data": [{"key": "k", "value": n}]}


async def status(pool: asyncpg.Pool, queue: repo.QueueStatus) -> repo.QueueStatus:
    found = await repo.queue_status(pool, queue.id, queue.org_id)
    assert found is not None
    return found


async def true_counts(pool: asyncpg.Pool, queue_id: uuid.UUID) -> dict[str, int]:
    rows = await pool.fetch("SELECT state, count(*) FROM woo_customer_sync_queue_line WHERE queue_id = $1 GROUP BY state", queue_id)
    return {state: 0 for state in repo.LINE_STATES} | {row["state"]: row["count"] for row in rows}


def counts(queue: repo.QueueStatus) -> dict[str, int]:
    return {state: getattr(queue, f"{state}_count") for state in repo.LINE_STATES}


async def line_states(pool: asyncpg.Pool, line_ids: list[uuid.UUID]) -> list[str]:
    rows = await pool.fetch("SELECT id, state FROM woo_customer_sync_queue_line WHERE id = ANY($1::uuid[])", line_ids)
    by_id = {row["id"]: row["state"] for row in rows}
    return [by_id[line_id] for line_id in line_ids]


# ---------------------------------------------------------------------------------------------
# Queues


async def test_the_same_idempotency_key_maps_to_the_same_queue(db_pool: asyncpg.Pool) -> None:
    org = await new_org(db_pool)
    first, created = await repo.find_or_create_queue(
        db_pool, org_id=org, queue_name="a", idempotency_key="nightly-1", store_id=None, store_url=None, created_by=None, options={}
    )
    again, created_again = await repo.find_or_create_queue(
        db_pool, org_id=org, queue_name="b", idempotency_key="nightly-1", store_id=None, store_url=None, created_by=None, options={}
    )
    assert created and not created_again
    assert again.id == first.id and again.queue_name == "a"


async def test_racing_requests_with_one_key_create_one_queue(db_pool: asyncpg.Pool) -> None:
    org = await new_org(db_pool)
    results = await asyncio.gather(*(
        repo.find_or_create_queue(db_pool, org_id=org, queue_name=f"q{n}", idempotency_key="race", store_id=None,
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
        await repo.find_or_create_queue(db_pool, org_id=uuid.uuid4(), queue_name="q", idempotency_key=None,
                                        store_id=None, store_url=None, created_by=None, options={})


async def test_a_new_queue_is_draft_with_zero_counts_and_spec_status_keys(db_pool: asyncpg.Pool) -> None:
    queue, _ = await new_queue(db_pool, await new_org(db_pool), key="k")
    assert queue.state == "draft" and queue.total_count == 0 and queue.progress == 0
    api = queue.to_api()
    assert CONTRACT_STATUS_KEYS <= set(api)
    json.dumps(api)  # JSON-ready as it is
    assert api["id"] == str(queue.id)
    assert api["idempotency_key"] == "k"


async def test_an_empty_sync_is_done_once_enumeration_finishes(db_pool: asyncpg.Pool) -> None:
    queue, _ = await new_queue(db_pool, await new_org(db_pool))
    finished = await repo.mark_enumeration_done(db_pool, queue.id, queue.org_id)
    assert finished is not None and finished.state == "done" and finished.progress == 100
    assert finished.eta_seconds == 0


async def test_queue_state_follows_its_lines_through_a_sync(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=4)
    assert (await status(db_pool, queue)).state == "draft"

    await repo.claim_lines(db_pool, lines[:2])
    in_progress = await status(db_pool, queue)
    assert in_progress.state == "processing" and in_progress.started_at is not None

    await repo.mark_lines_done(db_pool, [(lines[0], None, False), (lines[1], None, True)])
    await repo.claim_lines(db_pool, lines[2:])
    await repo.mark_lines_done(db_pool, [(lines[2], None, False), (lines[3], None, False)])
    # Every line is done, but the producer may still be paging the store.
    assert (await status(db_pool, queue)).state == "processing"

    done = await repo.mark_enumeration_done(db_pool, queue.id, queue.org_id)
    assert done is not None
    assert done.state == "done" and done.progress == 100 and done.finished_at is not None
    assert counts(done) == await true_counts(db_pool, queue.id) == {"draft": 0, "processing": 0, "done": 4, "failed": 0, "cancelled": 0}
    assert not done.is_action_required


async def test_all_lines_failed_is_failed_and_some_failed_is_partial(db_pool: asyncpg.Pool) -> None:
    org = await new_org(db_pool)
    failing, failing_lines = await new_queue(db_pool, org, customers=2)
    await repo.claim_lines(db_pool, failing_lines)
    await repo.mark_lines_failed(db_pool, [(line, "no valid email") for line in failing_lines])
    failed = await repo.mark_enumeration_done(db_pool, failing.id, org)
    assert failed is not None and failed.state == "failed" and failed.is_action_required

    mixed, mixed_lines = await new_queue(db_pool, org, customers=2)
    await repo.mark_lines_done(db_pool, [(mixed_lines[0], None, False)])
    await repo.mark_lines_failed(db_pool, [(mixed_lines[1], "no valid email")])
    partial = await repo.mark_enumeration_done(db_pool, mixed.id, org)
    assert partial is not None and partial.state == "partial" and partial.is_action_required


async def test_a_failed_sync_request_ends_its_queue_failed_and_needing_action(db_pool: asyncpg.Pool) -> None:
    queue, _ = await new_queue(db_pool, await new_org(db_pool))
    await repo.record_queue_error(db_pool, queue.id, queue.org_id, "the store refused the credentials (401)")
    ended = await status(db_pool, queue)
    assert ended.state == "failed"
    assert ended.is_action_required
    assert ended.error_message == "the store refused the credentials (401)"


async def test_a_request_error_that_does_not_end_enumeration_leaves_the_queue_running(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=1)
    await repo.record_queue_error(db_pool, queue.id, queue.org_id, "page 7 timed out", ends_enumeration=False)
    still = await status(db_pool, queue)
    assert still.state == "draft" and still.is_action_required and not still.enumeration_done


async def test_list_queues_is_newest_first_paginated_and_per_organisation(db_pool: asyncpg.Pool) -> None:
    acme, globex = await new_org(db_pool, "Acme"), await new_org(db_pool, "Globex")
    made = [(await new_queue(db_pool, acme))[0].id for _ in range(3)]
    await new_queue(db_pool, globex)

    listed = await repo.list_queues(db_pool, acme, limit=10, offset=0)
    assert [queue.id for queue in listed] == made[::-1]
    assert [queue.id for queue in await repo.list_queues(db_pool, acme, limit=2, offset=1)] == made[::-1][1:3]
    assert len(await repo.list_queues(db_pool, globex, limit=10, offset=0)) == 1


async def test_another_organisations_queue_is_unknown_to_every_operation(db_pool: asyncpg.Pool) -> None:
    owner, intruder = await new_org(db_pool, "Owner"), await new_org(db_pool, "Intruder")
    queue, lines = await new_queue(db_pool, owner, customers=3)
    await repo.claim_lines(db_pool, [lines[0]])
    await repo.mark_lines_failed(db_pool, [(lines[0], "bad data")])
    before = await status(db_pool, queue)

    assert await repo.queue_status(db_pool, queue.id, intruder) is None
    assert await repo.cancel_queue(db_pool, queue.id, intruder, cancelled_by="intruder") is None
    assert await repo.retry_failed_lines(db_pool, queue.id, intruder, requested_by="intruder") == []
    assert await repo.mark_enumeration_done(db_pool, queue.id, intruder) is None
    await repo.record_queue_error(db_pool, queue.id, intruder, "intruded")
    assert await repo.add_lines(db_pool, queue_id=queue.id, org_id=intruder, customers=[(99, customer(99))]) == []
    assert await repo.list_lines(db_pool, queue.id, intruder, state=None, limit=10, offset=0) == []
    await repo.append_activity(db_pool, [repo.ActivityRow(queue_id=queue.id, org_id=owner, activity_type="note", status="ok")])
    assert await repo.read_activity(db_pool, queue.id, intruder, limit=10, offset=0) == []
    assert await repo.list_queues(db_pool, intruder, limit=10, offset=0) == []

    after = await status(db_pool, queue)
    assert counts(after) == counts(before)
    assert (after.state, after.error_message, after.enumeration_done, after.cancelled_at) == ("processing", None, False, None)


# ---------------------------------------------------------------------------------------------
# Lines


async def test_add_lines_returns_only_the_lines_inserted_now(db_pool: asyncpg.Pool) -> None:
    queue, _ = await new_queue(db_pool, await new_org(db_pool))
    first = await repo.add_lines(db_pool, queue_id=queue.id, org_id=queue.org_id, customers=[(1, customer(1)), (2, customer(2))])
    # A re-run of the same request: customer 2 is already in the queue, 3 is new, 3 twice in one batch.
    second = await repo.add_lines(db_pool, queue_id=queue.id, org_id=queue.org_id,
                                  customers=[(2, customer(2)), (3, customer(3)), (3, customer(3))])
    assert sorted(woo_id for _, woo_id in first) == [1, 2]
    assert [woo_id for _, woo_id in second] == [3]
    current = await status(db_pool, queue)
    assert current.total_count == current.draft_count == 3
    stored = await db_pool.fetchval("SELECT customer_data FROM woo_customer_sync_queue_line WHERE queue_id = $1 AND woo_customer_id = 3", queue.id)
    assert stored == customer(3)


async def test_a_cancelled_queue_takes_no_new_lines(db_pool: asyncpg.Pool) -> None:
    queue, _ = await new_queue(db_pool, await new_org(db_pool), customers=1)
    await repo.cancel_queue(db_pool, queue.id, queue.org_id, cancelled_by="ops")
    assert await repo.add_lines(db_pool, queue_id=queue.id, org_id=queue.org_id, customers=[(5, customer(5))]) == []
    assert (await status(db_pool, queue)).total_count == 1


async def test_claim_lines_reports_every_existing_line_and_claims_only_pending_ones(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=3)
    await repo.mark_lines_done(db_pool, [(lines[2], None, False)])
    unknown = uuid.uuid4()

    claims = {claim.line_id: claim for claim in await repo.claim_lines(db_pool, [lines[0], lines[1], lines[2], unknown, lines[0]])}

    assert unknown not in claims
    assert claims[lines[0]].claimed and claims[lines[0]].state == "processing" and claims[lines[0]].process_count == 1
    assert claims[lines[2]].state == "done" and not claims[lines[2]].claimed
    assert claims[lines[0]].queue_id == queue.id and claims[lines[0]].org_id == queue.org_id
    assert claims[lines[0]].woo_customer_id == 1 and not claims[lines[0]].queue_cancelled
    # A redelivery of a line being processed claims it again and counts the attempt.
    again = await repo.claim_lines(db_pool, [lines[0]])
    assert again[0].claimed and again[0].process_count == 2
    assert counts(await status(db_pool, queue)) == await true_counts(db_pool, queue.id)


async def test_claiming_a_line_of_a_cancelled_queue_reports_it_and_leaves_it(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=2)
    await repo.claim_lines(db_pool, [lines[0]])
    await repo.cancel_queue(db_pool, queue.id, queue.org_id, cancelled_by="ops")

    claims = {claim.line_id: claim for claim in await repo.claim_lines(db_pool, lines)}
    assert claims[lines[0]].queue_cancelled and not claims[lines[0]].claimed and claims[lines[0]].state == "processing"
    assert claims[lines[1]].state == "cancelled"

    assert await repo.cancel_lines_of_cancelled_queues(db_pool, lines) == 1
    assert await line_states(db_pool, lines) == ["cancelled", "cancelled"]
    final = await status(db_pool, queue)
    assert final.state == "cancelled" and final.cancelled_count == 2 and final.processing_count == 0


async def test_cancel_lines_of_cancelled_queues_leaves_running_queues_alone(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=1)
    await repo.claim_lines(db_pool, lines)
    assert await repo.cancel_lines_of_cancelled_queues(db_pool, lines) == 0
    assert await line_states(db_pool, lines) == ["processing"]


async def test_finished_lines_are_never_moved_again_by_done_failed_or_retry(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=2)
    await repo.claim_lines(db_pool, lines)
    customer_id = await db_pool.fetchval(
        "INSERT INTO customer (org_id, email, name) VALUES ($1, 'a@example.com', 'A') RETURNING id", queue.org_id
    )
    assert await repo.mark_lines_done(db_pool, [(lines[0], customer_id, True)]) == 1
    assert await repo.mark_lines_failed(db_pool, [(lines[1], "no valid email")]) == 1

    # Redeliveries of finished work change nothing and count nothing twice.
    assert await repo.mark_lines_done(db_pool, [(lines[0], None, False), (lines[1], None, False)]) == 0
    assert await repo.mark_lines_failed(db_pool, [(lines[0], "late"), (lines[1], "late")]) == 0
    assert await repo.return_lines_to_draft(db_pool, [(lines[0], "late"), (lines[1], "late")]) == 0

    rows = {row["id"]: row for row in await db_pool.fetch("SELECT * FROM woo_customer_sync_queue_line WHERE queue_id = $1", queue.id)}
    assert rows[lines[0]]["state"] == "done" and rows[lines[0]]["result_customer_id"] == customer_id and rows[lines[0]]["was_update"] is True
    assert rows[lines[1]]["state"] == "failed" and rows[lines[1]]["error_message"] == "no valid email" and rows[lines[1]]["error_count"] == 1
    assert counts(await status(db_pool, queue)) == await true_counts(db_pool, queue.id)


async def test_a_transient_failure_returns_a_processing_line_to_draft(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=2)
    await repo.claim_lines(db_pool, [lines[0]])
    # Only a processing line goes back: lines[1] was never claimed.
    assert await repo.return_lines_to_draft(db_pool, [(lines[0], "store answered 503"), (lines[1], "x")]) == 1
    row = await db_pool.fetchrow("SELECT state, error_count, error_message FROM woo_customer_sync_queue_line WHERE id = $1", lines[0])
    assert dict(row) == {"state": "draft", "error_count": 1, "error_message": "store answered 503"}
    assert (await status(db_pool, queue)).state == "processing"


async def test_the_database_refuses_to_move_a_finished_line(db_pool: asyncpg.Pool) -> None:
    _, lines = await new_queue(db_pool, await new_org(db_pool), customers=1)
    await repo.mark_lines_done(db_pool, [(lines[0], None, False)])
    with pytest.raises(asyncpg.CheckViolationError, match="cannot become processing"):
        await db_pool.execute("UPDATE woo_customer_sync_queue_line SET state = 'processing' WHERE id = $1", lines[0])


async def test_list_lines_filters_by_state_and_shows_errors(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=3)
    await repo.mark_lines_failed(db_pool, [(lines[1], "email 'x' is not valid")])

    failed = await repo.list_lines(db_pool, queue.id, queue.org_id, state="failed", limit=10, offset=0)
    assert [(line["woo_customer_id"], line["error_message"]) for line in failed] == [(2, "email 'x' is not valid")]
    assert failed[0]["email"] == "customer2@example.com"
    json.dumps(failed)
    every = await repo.list_lines(db_pool, queue.id, queue.org_id, state=None, limit=2, offset=1)
    assert [line["woo_customer_id"] for line in every] == [2, 3]
    with pytest.raises(ValueError, match="finished"):
        await repo.list_lines(db_pool, queue.id, queue.org_id, state="finished", limit=10, offset=0)


async def test_pending_lines_pages_through_draft_lines_for_republishing(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=5)
    await repo.claim_lines(db_pool, [lines[1]])
    page = await repo.pending_lines(db_pool, queue.id, queue.org_id, limit=2)
    assert [line.woo_customer_id for line in page] == [1, 3]
    rest = await repo.pending_lines(db_pool, queue.id, queue.org_id, limit=10, after_woo_customer_id=page[-1].woo_customer_id)
    assert [line.woo_customer_id for line in rest] == [4, 5]
    assert rest[0].customer_data == customer(4)


# ---------------------------------------------------------------------------------------------
# Cancel and retry


async def test_cancel_cancels_draft_lines_and_lets_processing_ones_finish(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=4)
    await repo.claim_lines(db_pool, lines[:2])
    await repo.mark_lines_done(db_pool, [(lines[0], None, False)])

    cancelled = await repo.cancel_queue(db_pool, queue.id, queue.org_id, cancelled_by="ops@example.com")
    assert cancelled is not None
    assert cancelled.state == "cancelled" and cancelled.cancelled_by == "ops@example.com"
    assert counts(cancelled) == {"draft": 0, "processing": 1, "done": 1, "failed": 0, "cancelled": 2}

    # The in-flight line finishes normally.
    assert await repo.mark_lines_done(db_pool, [(lines[1], None, False)]) == 1
    again = await repo.cancel_queue(db_pool, queue.id, queue.org_id, cancelled_by="someone else")
    assert again is not None and again.cancelled_by == "ops@example.com" and again.cancelled_at == cancelled.cancelled_at
    assert counts(again) == {"draft": 0, "processing": 0, "done": 2, "failed": 0, "cancelled": 2}
    activity = await repo.read_activity(db_pool, queue.id, queue.org_id, limit=10, offset=0)
    assert [row["activity_type"] for row in activity] == ["cancel"]


async def test_cancelling_a_finished_queue_changes_nothing(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=1)
    await repo.mark_lines_done(db_pool, [(lines[0], None, False)])
    await repo.mark_enumeration_done(db_pool, queue.id, queue.org_id)
    after = await repo.cancel_queue(db_pool, queue.id, queue.org_id, cancelled_by="ops")
    assert after is not None and after.state == "done" and after.cancelled_at is None


async def test_retry_puts_failed_lines_back_and_clears_action_required(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=3)
    await repo.mark_lines_done(db_pool, [(lines[0], None, False)])
    await repo.mark_lines_failed(db_pool, [(lines[1], "store 500"), (lines[2], "store 500")])
    await repo.mark_enumeration_done(db_pool, queue.id, queue.org_id)
    assert (await status(db_pool, queue)).state == "partial"

    retried = await repo.retry_failed_lines(db_pool, queue.id, queue.org_id, requested_by="ops")
    assert [line.line_id for line in retried] == lines[1:]
    assert retried[0].customer_data == customer(2) and retried[0].queue_id == queue.id and retried[0].org_id == queue.org_id
    after = await status(db_pool, queue)
    assert after.state == "processing" and not after.is_action_required and after.finished_at is None
    assert counts(after) == {"draft": 2, "processing": 0, "done": 1, "failed": 0, "cancelled": 0}
    assert await repo.retry_failed_lines(db_pool, queue.id, queue.org_id, requested_by="ops") == []

    await repo.claim_lines(db_pool, lines[1:])
    await repo.mark_lines_done(db_pool, [(lines[1], None, False), (lines[2], None, False)])
    assert (await status(db_pool, queue)).state == "done"


async def test_retrying_every_line_of_a_failed_queue_makes_it_processing_not_draft(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=2)
    await repo.mark_lines_failed(db_pool, [(line, "boom") for line in lines])
    await repo.mark_enumeration_done(db_pool, queue.id, queue.org_id)
    await repo.retry_failed_lines(db_pool, queue.id, queue.org_id, requested_by="ops")
    assert (await status(db_pool, queue)).state == "processing"


async def test_retry_keeps_action_required_while_the_request_itself_failed(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=1)
    await repo.mark_lines_failed(db_pool, [(lines[0], "boom")])
    await repo.record_queue_error(db_pool, queue.id, queue.org_id, "page 3: store unreachable")
    assert len(await repo.retry_failed_lines(db_pool, queue.id, queue.org_id, requested_by="ops")) == 1
    assert (await status(db_pool, queue)).is_action_required


async def test_a_cancelled_queue_is_not_retried(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=2)
    await repo.mark_lines_failed(db_pool, [(lines[0], "boom")])
    await repo.cancel_queue(db_pool, queue.id, queue.org_id, cancelled_by="ops")
    assert await repo.retry_failed_lines(db_pool, queue.id, queue.org_id, requested_by="ops") == []
    assert await line_states(db_pool, lines) == ["failed", "cancelled"]


# ---------------------------------------------------------------------------------------------
# Activity, housekeeping, gauges


async def test_activity_is_read_newest_first_and_cannot_be_updated(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=1)
    await repo.append_activity(db_pool, [
        repo.ActivityRow(queue_id=queue.id, org_id=queue.org_id, activity_type="customer_sync", status="retry",
                         message="attempt 1 of 3: store 503", details={"attempt": 1}, queue_line_id=lines[0]),
        repo.ActivityRow(queue_id=queue.id, org_id=queue.org_id, activity_type="customer_sync", status="success",
                         message="customer synced", details=None, queue_line_id=lines[0]),
    ])
    read = await repo.read_activity(db_pool, queue.id, queue.org_id, limit=10, offset=0)
    assert [row["status"] for row in read] == ["success", "retry"]
    assert read[1]["details"] == {"attempt": 1} and read[1]["queue_line_id"] == str(lines[0])
    json.dumps(read)
    assert [row["status"] for row in await repo.read_activity(db_pool, queue.id, queue.org_id, limit=1, offset=1)] == ["retry"]

    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await db_pool.execute("UPDATE woo_sync_activity SET message = 'rewritten' WHERE queue_id = $1", queue.id)
    assert {row["message"] for row in await repo.read_activity(db_pool, queue.id, queue.org_id, limit=10, offset=0)} == {
        "customer synced", "attempt 1 of 3: store 503"}


async def test_delete_finished_queues_removes_only_old_finished_queues_with_their_lines(db_pool: asyncpg.Pool) -> None:
    org = await new_org(db_pool)
    old, old_lines = await new_queue(db_pool, org, customers=2)
    await repo.mark_lines_done(db_pool, [(line, None, False) for line in old_lines])
    await repo.mark_enumeration_done(db_pool, old.id, org)
    await repo.append_activity(db_pool, [repo.ActivityRow(queue_id=old.id, org_id=org, activity_type="note", status="ok", queue_line_id=old_lines[0])])
    await db_pool.execute("UPDATE woo_customer_sync_queue SET finished_at = now() - interval '40 days' WHERE id = $1", old.id)
    recent, _ = await new_queue(db_pool, org)
    await repo.mark_enumeration_done(db_pool, recent.id, org)
    running, _ = await new_queue(db_pool, org, customers=1)

    assert await repo.delete_finished_queues(db_pool, older_than_days=30) == 1
    remaining = {queue.id for queue in await repo.list_queues(db_pool, org, limit=10, offset=0)}
    assert remaining == {recent.id, running.id}
    assert await db_pool.fetchval("SELECT count(*) FROM woo_customer_sync_queue_line WHERE queue_id = $1", old.id) == 0


async def test_line_counts_of_unfinished_queues_sum_the_running_queues_only(db_pool: asyncpg.Pool) -> None:
    org = await new_org(db_pool)
    running, lines = await new_queue(db_pool, org, customers=3)
    await repo.claim_lines(db_pool, [lines[0]])
    await repo.mark_lines_failed(db_pool, [(lines[1], "x")])
    finished, finished_lines = await new_queue(db_pool, org, customers=2)
    await repo.mark_lines_done(db_pool, [(line, None, False) for line in finished_lines])
    await repo.mark_enumeration_done(db_pool, finished.id, org)

    assert await repo.line_counts_by_state_of_unfinished_queues(db_pool) == {
        "draft": 1, "processing": 1, "done": 0, "failed": 1, "cancelled": 0}


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
    queue = repo.QueueStatus.from_row(_status_row())  # type: ignore[arg-type]
    assert queue.progress == 50
    assert queue.items_per_min == 25.0  # 50 lines worked in 2 minutes
    assert queue.eta_seconds == 120  # 50 pending at 25 a minute

    not_started = repo.QueueStatus.from_row(_status_row(started_at=None, done_count=0, failed_count=0, draft_count=100, processing_count=0))  # type: ignore[arg-type]
    assert (not_started.progress, not_started.items_per_min, not_started.eta_seconds) == (0, 0.0, None)

    almost = repo.QueueStatus.from_row(_status_row(draft_count=0, processing_count=1, done_count=99, failed_count=0))  # type: ignore[arg-type]
    assert almost.progress == 99, "100 only when every line is finished"


# ---------------------------------------------------------------------------------------------
# Stores


async def test_store_credentials_are_encrypted_at_rest_when_a_key_is_given(db_pool: asyncpg.Pool) -> None:
    org = await new_org(db_pool)
    key = Fernet.generate_key().decode()
    store_id = await repo.upsert_store(db_pool, org_id=org, url="https://shop.example.com", consumer_key="ck_0123456789abcdef",
                                       consumer_secret="cs_very_secret_value", fernet_key=key)
    row = await db_pool.fetchrow("SELECT * FROM woo_store WHERE id = $1", store_id)
    assert row["credentials_format"] == "fernet" and row["key_hint"] == "cdef"
    assert "cs_very_secret_value" not in row["credentials"] and "ck_0123456789abcdef" not in row["credentials"]

    assert await repo.load_store_credentials(db_pool, store_id, fernet_key=key) == (
        "https://shop.example.com", "ck_0123456789abcdef", "cs_very_secret_value")
    with pytest.raises(repo.StoreCredentialsUnavailable, match="WOOSYNC_SECRET_KEY is not set"):
        await repo.load_store_credentials(db_pool, store_id, fernet_key=None)
    with pytest.raises(repo.StoreCredentialsUnavailable, match="not the key"):
        await repo.load_store_credentials(db_pool, store_id, fernet_key=Fernet.generate_key().decode())


async def test_store_credentials_without_a_key_are_plain_and_upserts_keep_the_store_id(db_pool: asyncpg.Pool) -> None:
    org = await new_org(db_pool)
    first = await repo.upsert_store(db_pool, org_id=org, url="http://shop.test", consumer_key="ck_test",
                                    consumer_secret="cs_test", fernet_key=None)
    again = await repo.upsert_store(db_pool, org_id=org, url="http://shop.test", consumer_key="ck_new",
                                    consumer_secret="cs_new", fernet_key=None)
    assert again == first
    # Plain credentials stay readable after a key is configured.
    assert await repo.load_store_credentials(db_pool, first, fernet_key=Fernet.generate_key().decode()) == (
        "http://shop.test", "ck_new", "cs_new")


async def test_unknown_stores_and_organisations_are_named(db_pool: asyncpg.Pool) -> None:
    missing = uuid.uuid4()
    with pytest.raises(repo.StoreCredentialsUnavailable, match=str(missing)):
        await repo.load_store_credentials(db_pool, missing, fernet_key=None)
    with pytest.raises(UnknownOrganization):
        await repo.upsert_store(db_pool, org_id=uuid.uuid4(), url="http://shop.test", consumer_key="k", consumer_secret="s", fernet_key=None)
