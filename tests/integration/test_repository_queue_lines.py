"""shared.repository.queue_lines against a real PostgreSQL: recording lines, claiming them,
recording outcomes (never twice for a finished line), listing, finding the lines to publish
again, and retrying failed lines."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from shared.repository import queue_lines, stores, sync_queues
from tests.integration.repository_setup import counts, customer, line_states, new_org, new_queue, status, true_counts

pytestmark = pytest.mark.integration


async def test_add_lines_returns_only_the_lines_inserted_now(db_pool: asyncpg.Pool) -> None:
    queue, _ = await new_queue(db_pool, await new_org(db_pool))
    first = await queue_lines.add_lines(db_pool, queue_id=queue.id, org_id=queue.org_id, customers=[(1, customer(1)), (2, customer(2))])
    # A re-run of the same request: customer 2 is already in the queue, 3 is new, 3 twice in one batch.
    second = await queue_lines.add_lines(db_pool, queue_id=queue.id, org_id=queue.org_id,
                                  customers=[(2, customer(2)), (3, customer(3)), (3, customer(3))])
    assert sorted(woo_id for _, woo_id in first) == [1, 2]
    assert [woo_id for _, woo_id in second] == [3]
    current = await status(db_pool, queue)
    assert current.total_count == current.draft_count == 3
    stored = await db_pool.fetchval("SELECT customer_data FROM woo_customer_sync_queue_line WHERE queue_id = $1 AND woo_customer_id = 3", queue.id)
    assert stored == customer(3)


async def test_a_cancelled_queue_takes_no_new_lines(db_pool: asyncpg.Pool) -> None:
    queue, _ = await new_queue(db_pool, await new_org(db_pool), customers=1)
    await sync_queues.cancel_queue(db_pool, queue.id, queue.org_id, cancelled_by="ops")
    assert await queue_lines.add_lines(db_pool, queue_id=queue.id, org_id=queue.org_id, customers=[(5, customer(5))]) == []
    assert (await status(db_pool, queue)).total_count == 1


async def test_claim_lines_reports_every_existing_line_and_claims_only_pending_ones(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=3)
    await queue_lines.mark_lines_done(db_pool, [(lines[2], None, False)])
    unknown = uuid.uuid4()

    answers = await queue_lines.claim_lines(db_pool, [lines[0], lines[1], lines[2], unknown, lines[0]])

    assert answers[3] is None
    assert answers[0] == answers[4]
    claims = {claim.line_id: claim for claim in answers if claim is not None}
    assert claims[lines[0]].claimed and claims[lines[0]].state == "processing" and claims[lines[0]].process_count == 1
    assert claims[lines[2]].state == "done" and not claims[lines[2]].claimed
    assert claims[lines[0]].queue_id == queue.id and claims[lines[0]].org_id == queue.org_id
    assert claims[lines[0]].woo_customer_id == 1 and not claims[lines[0]].queue_cancelled
    assert claims[lines[0]].customer_data == customer(1) and claims[lines[0]].disagreeing == ()
    # A redelivery of a line being processed claims it again and counts the attempt.
    again = await queue_lines.claim_lines(db_pool, [lines[0]])
    assert again[0].claimed and again[0].process_count == 2
    assert counts(await status(db_pool, queue)) == await true_counts(db_pool, queue.id)


async def _queue_with_a_store(db_pool: asyncpg.Pool, org_id: uuid.UUID, customers: int):
    store_id = await stores.upsert_store(db_pool, org_id=org_id, url="https://shop.example.com", consumer_key="ck_x",
                                         consumer_secret="cs_x", cipher=None)
    queue, _ = await sync_queues.find_or_create_queue(
        db_pool, org_id=org_id, queue_name="q", idempotency_key=None, store_id=store_id,
        store_url="https://shop.example.com", created_by=None, options={})
    lines = await queue_lines.add_lines(db_pool, queue_id=queue.id, org_id=org_id,
                                        customers=[(n, customer(n)) for n in range(1, customers + 1)])
    return queue, store_id, [line_id for line_id, _ in sorted(lines, key=lambda pair: pair[1])]


def _stated(line_id: uuid.UUID, queue, recorded_store: uuid.UUID, n: int, **changes) -> queue_lines.StatedLine:
    """What a genuine message for the line says, with `changes`."""
    fields = dict(line_id=line_id, org_id=queue.org_id, queue_id=queue.id, store_id=recorded_store, woo_customer_id=n,
                  customer_data=customer(n))
    return queue_lines.StatedLine(**(fields | changes))


async def test_a_statement_that_agrees_with_the_row_claims_the_line_and_gets_the_rows_data(db_pool: asyncpg.Pool) -> None:
    queue, store_id, lines = await _queue_with_a_store(db_pool, await new_org(db_pool), customers=1)
    # The same document with its keys in another order is the same document.
    stated = _stated(lines[0], queue, store_id, 1, customer_data=dict(reversed(list(customer(1).items()))))
    [claim] = await queue_lines.claim_lines(db_pool, [stated])
    assert claim is not None and claim.claimed and claim.disagreeing == ()
    assert (claim.org_id, claim.queue_id, claim.store_id, claim.woo_customer_id, claim.customer_data) == (
        queue.org_id, queue.id, store_id, 1, customer(1))


@pytest.mark.parametrize(("field", "value"), [
    ("org_id", uuid.uuid4()), ("queue_id", uuid.uuid4()), ("store_id", uuid.uuid4()), ("woo_customer_id", 2),
    ("customer_data", customer(1) | {"email": "attacker@example.com"}), ("customer_data", {}),
    ("customer_data", customer(1) | {"id": True}),
])
async def test_a_statement_that_disagrees_with_the_row_names_the_field_and_leaves_the_line_as_it_is(
        db_pool: asyncpg.Pool, field: str, value) -> None:
    queue, store_id, lines = await _queue_with_a_store(db_pool, await new_org(db_pool), customers=2)
    [claim] = await queue_lines.claim_lines(db_pool, [_stated(lines[0], queue, store_id, 1, **{field: value})])
    assert claim is not None and not claim.claimed
    assert claim.disagreeing == ("customer" if field == "customer_data" else field,)
    assert (claim.org_id, claim.queue_id, claim.woo_customer_id, claim.customer_data) == (queue.org_id, queue.id, 1, customer(1))
    row = await db_pool.fetchrow("SELECT state, process_count, last_process_date FROM woo_customer_sync_queue_line WHERE id = $1", lines[0])
    assert dict(row) == {"state": "draft", "process_count": 0, "last_process_date": None}


async def test_a_line_is_claimed_when_one_of_its_statements_agrees(db_pool: asyncpg.Pool) -> None:
    queue, store_id, lines = await _queue_with_a_store(db_pool, await new_org(db_pool), customers=1)
    forged = _stated(lines[0], queue, store_id, 1, org_id=uuid.uuid4(), queue_id=uuid.uuid4())
    answers = await queue_lines.claim_lines(db_pool, [forged, _stated(lines[0], queue, store_id, 1), forged])
    assert [answer.disagreeing for answer in answers] == [("org_id", "queue_id"), (), ("org_id", "queue_id")]
    assert all(answer.claimed for answer in answers) and answers[1].process_count == 1


async def test_a_queue_whose_store_was_deleted_compares_no_store(db_pool: asyncpg.Pool) -> None:
    queue, store_id, lines = await _queue_with_a_store(db_pool, await new_org(db_pool), customers=1)
    await db_pool.execute("DELETE FROM woo_store WHERE id = $1", store_id)
    [claim] = await queue_lines.claim_lines(db_pool, [_stated(lines[0], queue, store_id, 1)])
    assert claim is not None and claim.claimed and claim.store_id is None and claim.disagreeing == ()


async def test_claiming_a_line_of_a_cancelled_queue_reports_it_and_leaves_it(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=2)
    await queue_lines.claim_lines(db_pool, [lines[0]])
    await sync_queues.cancel_queue(db_pool, queue.id, queue.org_id, cancelled_by="ops")

    claims = {claim.line_id: claim for claim in await queue_lines.claim_lines(db_pool, lines) if claim is not None}
    assert claims[lines[0]].queue_cancelled and not claims[lines[0]].claimed and claims[lines[0]].state == "processing"
    assert claims[lines[1]].state == "cancelled"

    assert await queue_lines.cancel_lines_of_cancelled_queues(db_pool, lines) == 1
    assert await line_states(db_pool, lines) == ["cancelled", "cancelled"]
    final = await status(db_pool, queue)
    assert final.state == "cancelled" and final.cancelled_count == 2 and final.processing_count == 0


async def test_cancel_lines_of_cancelled_queues_leaves_running_queues_alone(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=1)
    await queue_lines.claim_lines(db_pool, lines)
    assert await queue_lines.cancel_lines_of_cancelled_queues(db_pool, lines) == 0
    assert await line_states(db_pool, lines) == ["processing"]


async def test_finished_lines_are_never_moved_again_by_done_failed_or_retry(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=2)
    await queue_lines.claim_lines(db_pool, lines)
    customer_id = await db_pool.fetchval(
        "INSERT INTO customer (org_id, email, name) VALUES ($1, 'a@example.com', 'A') RETURNING id", queue.org_id
    )
    assert await queue_lines.mark_lines_done(db_pool, [(lines[0], customer_id, True)]) == 1
    assert await queue_lines.mark_lines_failed(db_pool, [(lines[1], "no valid email")]) == 1

    # Redeliveries of finished work change nothing and count nothing twice.
    assert await queue_lines.mark_lines_done(db_pool, [(lines[0], None, False), (lines[1], None, False)]) == 0
    assert await queue_lines.mark_lines_failed(db_pool, [(lines[0], "late"), (lines[1], "late")]) == 0
    assert await queue_lines.return_lines_to_draft(db_pool, [(lines[0], "late"), (lines[1], "late")]) == 0

    rows = {row["id"]: row for row in await db_pool.fetch("SELECT * FROM woo_customer_sync_queue_line WHERE queue_id = $1", queue.id)}
    assert rows[lines[0]]["state"] == "done" and rows[lines[0]]["result_customer_id"] == customer_id and rows[lines[0]]["was_update"] is True
    assert rows[lines[1]]["state"] == "failed" and rows[lines[1]]["error_message"] == "no valid email" and rows[lines[1]]["error_count"] == 1
    assert counts(await status(db_pool, queue)) == await true_counts(db_pool, queue.id)


async def test_a_transient_failure_returns_a_processing_line_to_draft(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=2)
    await queue_lines.claim_lines(db_pool, [lines[0]])
    # Only a processing line goes back: lines[1] was never claimed.
    assert await queue_lines.return_lines_to_draft(db_pool, [(lines[0], "store answered 503"), (lines[1], "x")]) == 1
    row = await db_pool.fetchrow("SELECT state, error_count, error_message FROM woo_customer_sync_queue_line WHERE id = $1", lines[0])
    assert dict(row) == {"state": "queued", "error_count": 1, "error_message": "store answered 503"}
    assert (await status(db_pool, queue)).state == "processing"


async def test_the_database_refuses_to_move_a_finished_line(db_pool: asyncpg.Pool) -> None:
    _, lines = await new_queue(db_pool, await new_org(db_pool), customers=1)
    await queue_lines.mark_lines_done(db_pool, [(lines[0], None, False)])
    with pytest.raises(asyncpg.CheckViolationError, match="cannot become processing"):
        await db_pool.execute("UPDATE woo_customer_sync_queue_line SET state = 'processing' WHERE id = $1", lines[0])


async def test_list_lines_filters_by_state_and_shows_errors(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=3)
    await queue_lines.mark_lines_failed(db_pool, [(lines[1], "email 'x' is not valid")])

    [failed] = await queue_lines.list_lines(db_pool, queue.id, queue.org_id, state="failed", limit=10, offset=0)
    assert failed == queue_lines.QueueLine(
        id=lines[1], woo_customer_id=2, email="customer2@example.com", state="failed", process_count=0, error_count=1,
        error_message="email 'x' is not valid", result_customer_id=None, was_update=None,
        last_process_date=failed.last_process_date, created_at=failed.created_at, updated_at=failed.updated_at,
    )
    assert failed.last_process_date is not None
    every = await queue_lines.list_lines(db_pool, queue.id, queue.org_id, state=None, limit=2, offset=1)
    assert [line.woo_customer_id for line in every] == [2, 3]
    with pytest.raises(ValueError, match="finished"):
        await queue_lines.list_lines(db_pool, queue.id, queue.org_id, state="finished", limit=10, offset=0)


async def test_pending_lines_pages_through_draft_lines_for_republishing(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=5)
    await queue_lines.claim_lines(db_pool, [lines[1]])
    page = await queue_lines.pending_lines(db_pool, queue.id, queue.org_id, limit=2)
    assert [line.woo_customer_id for line in page] == [1, 3]
    rest = await queue_lines.pending_lines(db_pool, queue.id, queue.org_id, limit=10, after_woo_customer_id=page[-1].woo_customer_id)
    assert [line.woo_customer_id for line in rest] == [4, 5]
    assert rest[0].customer_data == customer(4)


async def test_draft_lines_of_customers_finds_the_given_customers_lines_still_in_draft(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=4)
    await queue_lines.claim_lines(db_pool, [lines[0]])
    # Customer 1 is being processed, 3 is not asked for, 99 has no line.
    found = await queue_lines.draft_lines_of_customers(db_pool, queue.id, queue.org_id, [1, 2, 4, 99])
    assert sorted(found, key=lambda pair: pair[1]) == [(lines[1], 2), (lines[3], 4)]
    assert await queue_lines.draft_lines_of_customers(db_pool, queue.id, await new_org(db_pool, "Other"), [2]) == []


async def test_retry_puts_failed_lines_back_and_clears_action_required(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=3)
    await queue_lines.mark_lines_done(db_pool, [(lines[0], None, False)])
    await queue_lines.mark_lines_failed(db_pool, [(lines[1], "store 500"), (lines[2], "store 500")])
    await sync_queues.mark_enumeration_done(db_pool, queue.id, queue.org_id)
    assert (await status(db_pool, queue)).state == "partial"

    retried = await queue_lines.retry_failed_lines(db_pool, queue.id, queue.org_id, requested_by="ops")
    assert [line.line_id for line in retried] == lines[1:]
    assert retried[0].customer_data == customer(2) and retried[0].queue_id == queue.id and retried[0].org_id == queue.org_id
    after = await status(db_pool, queue)
    assert after.state == "processing" and not after.is_action_required and after.finished_at is None
    assert counts(after) == {"draft": 2, "queued": 0, "processing": 0, "done": 1, "failed": 0, "cancelled": 0}
    assert await queue_lines.retry_failed_lines(db_pool, queue.id, queue.org_id, requested_by="ops") == []

    await queue_lines.claim_lines(db_pool, lines[1:])
    await queue_lines.mark_lines_done(db_pool, [(lines[1], None, False), (lines[2], None, False)])
    assert (await status(db_pool, queue)).state == "done"


async def test_retrying_every_line_of_a_failed_queue_makes_it_processing_not_draft(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=2)
    await queue_lines.mark_lines_failed(db_pool, [(line, "boom") for line in lines])
    await sync_queues.mark_enumeration_done(db_pool, queue.id, queue.org_id)
    await queue_lines.retry_failed_lines(db_pool, queue.id, queue.org_id, requested_by="ops")
    assert (await status(db_pool, queue)).state == "processing"


async def test_retry_keeps_action_required_while_the_request_itself_failed(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=1)
    await queue_lines.mark_lines_failed(db_pool, [(lines[0], "boom")])
    await sync_queues.record_queue_error(db_pool, queue.id, queue.org_id, "page 3: store unreachable")
    assert len(await queue_lines.retry_failed_lines(db_pool, queue.id, queue.org_id, requested_by="ops")) == 1
    assert (await status(db_pool, queue)).is_action_required


async def test_a_cancelled_queue_is_not_retried(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=2)
    await queue_lines.mark_lines_failed(db_pool, [(lines[0], "boom")])
    await sync_queues.cancel_queue(db_pool, queue.id, queue.org_id, cancelled_by="ops")
    assert await queue_lines.retry_failed_lines(db_pool, queue.id, queue.org_id, requested_by="ops") == []
    assert await line_states(db_pool, lines) == ["failed", "cancelled"]
