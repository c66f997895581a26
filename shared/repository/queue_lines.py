"""The lines of sync queues (woo_customer_sync_queue_line): one customer each, from its
recording by the producer through its claim by a consumer to a terminal state.

Batch statements lock their lines in id order before updating them: a plan that walks the heap
in another order would let two consumers with overlapping batches deadlock (each holding a line
the other wants; PostgreSQL then aborts one after deadlock_timeout). They lock FOR NO KEY UPDATE,
the lock their UPDATE takes anyway (no key column changes): it excludes other writers but not the
KEY SHARE that a foreign-key check of an activity or conflict row takes on its line, so a batch
can record those rows before it moves its lines (and so holds its sync's queue row, which every
line move updates, only for its last statements).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from shared.db import transaction
from shared.repository.activity import ActivityRow, append_activity
from shared.repository.sql import Executor, rows_affected
from shared.states import LINE_STATES, TERMINAL_LINE_STATES, LineState


@dataclass(frozen=True, slots=True)
class StatedLine:
    """What a customer line message says about its line. The row is the authority
    (docs/contract.md section 3): `claim_lines` claims the line only for a statement that agrees
    with it."""

    line_id: UUID
    org_id: UUID
    queue_id: UUID
    store_id: UUID
    woo_customer_id: int
    customer_data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ClaimedLine:
    """A delivered line as its row records it, and what a consumer needs to decide about it.

    `disagreeing`: the fields of the message (`org_id`, `queue_id`, `store_id`,
    `woo_customer_id`, `customer`) that differ from the row; when there is any, the line was
    not claimed for that message: it was forged or damaged.
    claimed: the line is now `processing` for this delivery: do the work, from this row's data.
    Otherwise do not work on it: if `queue_cancelled`, cancel it
    (cancel_lines_of_cancelled_queues); else it is finished (`state` terminal): ack.
    """

    line_id: UUID
    queue_id: UUID
    org_id: UUID
    woo_customer_id: int
    customer_data: dict[str, Any]
    state: LineState
    claimed: bool
    queue_cancelled: bool
    process_count: int
    error_count: int
    store_id: UUID | None  # the queue's store; None once that store was deleted
    store_url: str | None
    disagreeing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RetryLine:
    """A line to (re-)publish: everything a customer line message carries."""

    line_id: UUID
    queue_id: UUID
    org_id: UUID
    store_id: UUID | None
    woo_customer_id: int
    customer_data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class QueueLine:
    """A line as a queue's listing shows it, errors included."""

    id: UUID
    woo_customer_id: int
    email: str | None
    state: LineState
    process_count: int
    error_count: int
    error_message: str | None
    result_customer_id: UUID | None
    was_update: bool | None
    last_process_date: datetime | None
    created_at: datetime
    updated_at: datetime
    outcome: str | None = None  # created | updated | unchanged | would_create | would_update


def _sorted_unique(pairs: Iterable[tuple[UUID, Any]]) -> list[tuple[UUID, Any]]:
    """First value per line id, sorted by id (one lock order for every batch statement)."""
    seen: dict[UUID, Any] = {}
    for line_id, value in pairs:
        seen.setdefault(line_id, value)
    return sorted(seen.items(), key=lambda item: item[0])


# ---------------------------------------------------------------------------------------------
# Recording lines, and finding those to (re-)publish


async def add_lines(
    conn: Executor, *, queue_id: UUID, org_id: UUID, customers: list[tuple[int, dict[str, Any]]]
) -> list[tuple[UUID, int]]:
    """One line per (woo_customer_id, customer_data), in one statement; returns (line_id,
    woo_customer_id) of the lines inserted now: a customer already in the queue (a re-run of
    the same request) comes back nowhere, so it is not published twice. A cancelled queue, or
    another organisation's, takes no lines.

    The same statement keeps each customer's document in the store's customer-document mirror
    (shared/repository/customer_documents.py), read by incremental sweeps.
    """
    if not customers:
        return []
    rows = await conn.fetch(
        """
        WITH queue AS (
            SELECT id, org_id, store_id FROM woo_customer_sync_queue
             WHERE id = $1 AND org_id = $2 AND cancelled_at IS NULL
        ), page AS (
            SELECT * FROM unnest($3::bigint[], $4::jsonb[]) WITH ORDINALITY AS c(woo_customer_id, customer_data, n)
        ), mirrored AS (  -- in customer id order: concurrent syncs of one store lock documents alike
            INSERT INTO woo_customer_document (store_id, woo_customer_id, org_id, document, seen_by_queue)
            SELECT DISTINCT ON (c.woo_customer_id) q.store_id, c.woo_customer_id, q.org_id, c.customer_data, q.id
              FROM page c JOIN queue q ON q.store_id IS NOT NULL
             ORDER BY c.woo_customer_id, c.n DESC
            ON CONFLICT (store_id, woo_customer_id) DO UPDATE
               SET document = EXCLUDED.document, seen_by_queue = EXCLUDED.seen_by_queue, updated_at = now()
        )
        INSERT INTO woo_customer_sync_queue_line (queue_id, org_id, woo_customer_id, customer_data)
        SELECT q.id, q.org_id, c.woo_customer_id, c.customer_data
          FROM page c JOIN queue q ON true
        ON CONFLICT (queue_id, woo_customer_id) DO NOTHING
        RETURNING id, woo_customer_id
        """,
        queue_id,
        org_id,
        [woo_customer_id for woo_customer_id, _ in customers],
        [customer_data for _, customer_data in customers],
    )
    return [(row["id"], row["woo_customer_id"]) for row in rows]


async def draft_lines_of_customers(
    conn: Executor, queue_id: UUID, org_id: UUID, woo_customer_ids: list[int]
) -> list[tuple[UUID, int]]:
    """(line_id, woo_customer_id) of the given customers' lines that are still in draft: after
    an insert whose answer was lost, the lines of its page that may never have been published."""
    rows = await conn.fetch(
        """
        SELECT id, woo_customer_id FROM woo_customer_sync_queue_line
         WHERE queue_id = $1 AND org_id = $2 AND woo_customer_id = ANY($3::bigint[]) AND state = 'draft'
        """,
        queue_id,
        org_id,
        woo_customer_ids,
    )
    return [(row["id"], row["woo_customer_id"]) for row in rows]


async def pending_lines(
    conn: Executor, queue_id: UUID, org_id: UUID, *, limit: int, after_woo_customer_id: int = 0
) -> list[RetryLine]:
    """Draft lines of a queue in woo_customer_id order, a page at a time: for re-publishing
    lines that were recorded but perhaps never published (a producer that died mid-request)."""
    rows = await conn.fetch(
        """
        SELECT l.id, l.woo_customer_id, l.customer_data, q.store_id
          FROM woo_customer_sync_queue_line l
          JOIN woo_customer_sync_queue q ON q.id = l.queue_id
         WHERE l.queue_id = $1 AND q.org_id = $2 AND l.state = 'draft' AND l.woo_customer_id > $3
         ORDER BY l.woo_customer_id
         LIMIT $4
        """,
        queue_id,
        org_id,
        after_woo_customer_id,
        limit,
    )
    return [
        RetryLine(
            line_id=row["id"],
            queue_id=queue_id,
            org_id=org_id,
            store_id=row["store_id"],
            woo_customer_id=row["woo_customer_id"],
            customer_data=row["customer_data"],
        )
        for row in rows
    ]


async def retry_failed_lines(conn: Executor, queue_id: UUID, org_id: UUID, *, requested_by: str) -> list[RetryLine]:
    """Failed lines back to `draft`; returns them for re-publishing. Clears is_action_required
    when no failed line remains and the sync request itself did not fail. Idempotent (a second
    call finds nothing to retry). A cancelled queue, or another organisation's, is left alone.
    """
    async with transaction(conn) as tx:
        queue = await tx.fetchrow(
            "SELECT cancelled_at, store_id FROM woo_customer_sync_queue WHERE id = $1 AND org_id = $2",
            queue_id,
            org_id,
        )
        if queue is None or queue["cancelled_at"] is not None:
            return []
        rows = await tx.fetch(
            """
            UPDATE woo_customer_sync_queue_line SET state = 'draft', error_message = NULL
             WHERE state = 'failed' AND id IN (
                   SELECT id FROM woo_customer_sync_queue_line
                    WHERE queue_id = $1 AND state = 'failed'
                    ORDER BY id FOR NO KEY UPDATE)
            RETURNING id, woo_customer_id, customer_data
            """,
            queue_id,
        )
        await tx.execute(
            """
            UPDATE woo_customer_sync_queue
               SET is_action_required = (failed_count > 0 OR error_message IS NOT NULL),
                   process_count = process_count + $3::int
             WHERE id = $1 AND org_id = $2
            """,
            queue_id,
            org_id,
            1 if rows else 0,
        )
        if rows:
            await append_activity(
                tx,
                [
                    ActivityRow(
                        queue_id=queue_id,
                        org_id=org_id,
                        activity_type="retry",
                        status="requested",
                        message=f"{len(rows)} failed line(s) back to draft, requested by {requested_by}",
                        details={"requested_by": requested_by, "lines": len(rows)},
                    )
                ],
            )
    return [
        RetryLine(
            line_id=row["id"],
            queue_id=queue_id,
            org_id=org_id,
            store_id=queue["store_id"],
            woo_customer_id=row["woo_customer_id"],
            customer_data=row["customer_data"],
        )
        for row in sorted(rows, key=lambda r: r["woo_customer_id"])
    ]


# ---------------------------------------------------------------------------------------------
# Claiming lines and recording their outcomes (the consumer's batch statements)

# $1 is the sorted array of line ids.
_LOCK_UNFINISHED = """locked AS MATERIALIZED (
            SELECT l.id FROM unnest($1::uuid[]) AS wanted(id)
              JOIN woo_customer_sync_queue_line l ON l.id = wanted.id
             WHERE l.state IN ('draft', 'queued', 'processing')
             ORDER BY l.id FOR NO KEY UPDATE OF l
        )"""
_LOCK_PROCESSING = """locked AS MATERIALIZED (
            SELECT l.id FROM unnest($1::uuid[]) AS wanted(id)
              JOIN woo_customer_sync_queue_line l ON l.id = wanted.id
             WHERE l.state = 'processing'
             ORDER BY l.id FOR NO KEY UPDATE OF l
        )"""

# One row per statement ($1..$6 in parallel, a NULL field is not compared). A line is claimed
# when one of its statements agrees with its row; the answer is one row per statement of an
# existing line, with the row's own data and the statement's disagreeing fields. A queue whose
# store was deleted (store_id NULL) has nothing to compare the statement's store with.
_CLAIM_TEMPLATE = """
WITH stated AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::bigint[], $6::jsonb[])
           WITH ORDINALITY AS s(line_id, org_id, queue_id, store_id, woo_customer_id, customer_data, n)
), compared AS MATERIALIZED (
    SELECT s.n, l.id, array_remove(ARRAY[
               CASE WHEN l.org_id <> s.org_id THEN 'org_id' END,
               CASE WHEN l.queue_id <> s.queue_id THEN 'queue_id' END,
               CASE WHEN q.store_id <> s.store_id THEN 'store_id' END,
               CASE WHEN l.woo_customer_id <> s.woo_customer_id THEN 'woo_customer_id' END,
               CASE WHEN l.customer_data <> s.customer_data THEN 'customer' END
           ], NULL) AS disagreeing
      FROM stated s
      JOIN woo_customer_sync_queue_line l ON l.id = s.line_id
      JOIN woo_customer_sync_queue q ON q.id = l.queue_id
), locked AS MATERIALIZED (
    SELECT l.id FROM woo_customer_sync_queue_line l
      JOIN woo_customer_sync_queue q ON q.id = l.queue_id
     WHERE l.id IN (SELECT id FROM compared WHERE cardinality(disagreeing) = 0)
       AND l.state IN ('draft', 'queued', 'processing') AND q.cancelled_at IS NULL
     ORDER BY l.id FOR NO KEY UPDATE OF l
), claimed AS (
    UPDATE woo_customer_sync_queue_line l
       SET state = 'processing', process_count = l.process_count + 1, last_process_date = now()
      FROM locked
     WHERE l.id = locked.id AND l.state IN ('draft', 'queued', 'processing')
    RETURNING l.id, l.state, l.process_count
)
SELECT s.n, s.disagreeing, l.id, l.queue_id, l.org_id, l.woo_customer_id, l.customer_data,
       coalesce(c.state, l.state) AS state,
       c.id IS NOT NULL AS claimed,
       q.cancelled_at IS NOT NULL AS queue_cancelled,
       coalesce(c.process_count, l.process_count) AS process_count,
       l.error_count, q.store_id, q.store_url{commit}
  FROM compared s
  JOIN woo_customer_sync_queue_line l ON l.id = s.id
  JOIN woo_customer_sync_queue q ON q.id = l.queue_id
  LEFT JOIN claimed c ON c.id = l.id
"""
# The claim's own transaction may commit without waiting for its WAL flush: the claim updates the
# sync's queue row (its counts) and holds that row, which every consumer's batch and the
# producers' line statements need, until the commit returns. Losing the claim in a database crash
# loses only a `processing` mark and one process_count: the line is still pending and its message
# unsettled (a consumer settles nothing while the database is away).
_CLAIM_DURABLE = _CLAIM_TEMPLATE.format(commit="")
_CLAIM_ASYNC_COMMIT = _CLAIM_TEMPLATE.format(commit=", set_config('synchronous_commit', 'off', true) AS async_commit")

_RECHECK = """
SELECT l.id, l.queue_id, l.org_id, l.woo_customer_id, l.customer_data, l.state, false AS claimed,
       q.cancelled_at IS NOT NULL AS queue_cancelled, l.process_count, l.error_count,
       q.store_id, q.store_url
  FROM woo_customer_sync_queue_line l
  JOIN woo_customer_sync_queue q ON q.id = l.queue_id
 WHERE l.id = ANY($1::uuid[])
"""


def _claimed_line(row: asyncpg.Record, disagreeing: tuple[str, ...]) -> ClaimedLine:
    return ClaimedLine(
        line_id=row["id"],
        queue_id=row["queue_id"],
        org_id=row["org_id"],
        woo_customer_id=row["woo_customer_id"],
        customer_data=row["customer_data"],
        state=row["state"],
        claimed=row["claimed"],
        queue_cancelled=row["queue_cancelled"],
        process_count=row["process_count"],
        error_count=row["error_count"],
        store_id=row["store_id"],
        store_url=row["store_url"],
        disagreeing=disagreeing,
    )


async def claim_lines(conn: Executor, lines: Sequence[StatedLine | UUID], *, commit_async: bool = False
                      ) -> list[ClaimedLine | None]:
    """Lines about to be worked on: draft/queued/processing -> processing, process_count + 1, in one
    statement. A StatedLine claims its line only when every field it states agrees with the
    row; a bare line id claims the line whatever it holds (set-ups and tools, never a message).

    Returns, for each given line in order, the line as its row records it (None for a line
    that does not exist, e.g. its queue was deleted): its current state, whether it is claimed
    now, whether its queue is cancelled, and the stated fields that disagree with it.

    `commit_async`: the statement's transaction commits without waiting for its WAL flush (the
    caller runs the claim as a transaction of its own; see _CLAIM_ASYNC_COMMIT).
    """
    if not lines:
        return []
    stated = [line if isinstance(line, StatedLine) else None for line in lines]
    rows = await conn.fetch(
        _CLAIM_ASYNC_COMMIT if commit_async else _CLAIM_DURABLE,
        [s.line_id if s else line for s, line in zip(stated, lines)],
        [s.org_id if s else None for s in stated],
        [s.queue_id if s else None for s in stated],
        [s.store_id if s else None for s in stated],
        [s.woo_customer_id if s else None for s in stated],
        [s.customer_data if s else None for s in stated],
    )
    answers: list[ClaimedLine | None] = [None] * len(lines)
    for row in rows:
        answers[row["n"] - 1] = _claimed_line(row, tuple(row["disagreeing"]))
    # A line not claimed reads its state from the statement's snapshot. If it looks pending
    # there (and nothing disagreed), another transaction finished it while we waited for its
    # row lock: read it again.
    stale = {a.line_id for a in answers if a is not None and not a.claimed and not a.disagreeing
             and not a.queue_cancelled and a.state not in TERMINAL_LINE_STATES}
    if stale:
        fresh = {row["id"]: row for row in await conn.fetch(_RECHECK, sorted(stale))}
        answers = [_claimed_line(fresh[a.line_id], a.disagreeing) if a is not None and a.line_id in fresh
                   and not a.claimed and not a.disagreeing else a for a in answers]
    return answers


async def mark_lines_done(
    conn: Executor,
    results: list[tuple[UUID, UUID | None, bool]],
    *,
    outcomes: Mapping[UUID, tuple[str | None, dict[str, Any] | None]] | None = None,
) -> int:
    """(line_id, result_customer_id, was_update) -> `done`, for lines not finished yet; returns
    how many lines moved (a redelivered, already finished line is not counted twice).
    `outcomes`: line_id -> (outcome, changes) to record with it (sql/007_conflicts_preview.sql)."""
    batch = _sorted_unique((line_id, (customer_id, was_update)) for line_id, customer_id, was_update in results)
    if not batch:
        return 0
    outcomes = outcomes or {}
    status = await conn.execute(
        f"""
        WITH {_LOCK_UNFINISHED}
        UPDATE woo_customer_sync_queue_line l
           SET state = 'done', result_customer_id = r.customer_id, was_update = r.was_update,
               outcome = r.outcome, changes = r.changes, error_message = NULL, last_process_date = now()
          FROM locked, unnest($1::uuid[], $2::uuid[], $3::boolean[], $4::text[], $5::jsonb[])
               AS r(line_id, customer_id, was_update, outcome, changes)
         WHERE l.id = locked.id AND r.line_id = l.id AND l.state IN ('draft', 'queued', 'processing')
        """,
        [line_id for line_id, _ in batch],
        [customer_id for _, (customer_id, _) in batch],
        [was_update for _, (_, was_update) in batch],
        [outcomes.get(line_id, (None, None))[0] for line_id, _ in batch],
        [outcomes.get(line_id, (None, None))[1] for line_id, _ in batch],
    )
    return rows_affected(status)


async def mark_lines_failed(conn: Executor, failures: list[tuple[UUID, str]]) -> int:
    """(line_id, error) -> `failed` for good, error_count + 1, for lines not finished yet."""
    batch = _sorted_unique(failures)
    if not batch:
        return 0
    status = await conn.execute(
        f"""
        WITH {_LOCK_UNFINISHED}
        UPDATE woo_customer_sync_queue_line l
           SET state = 'failed', error_count = l.error_count + 1, error_message = r.error,
               last_process_date = now()
          FROM locked, unnest($1::uuid[], $2::text[]) AS r(line_id, error)
         WHERE l.id = locked.id AND r.line_id = l.id AND l.state IN ('draft', 'queued', 'processing')
        """,
        [line_id for line_id, _ in batch],
        [error for _, error in batch],
    )
    return rows_affected(status)


async def return_lines_to_draft(conn: Executor, retries: list[tuple[UUID, str]], *, count_error: bool = True) -> int:
    """A transient failure: `processing` -> `queued` (its copy waits in a delay queue and will be
    delivered again; the dispatcher must not publish it once more), error_count + 1. With
    `count_error` False (its store was held: it said slow down) error_count stays."""
    batch = _sorted_unique(retries)
    if not batch:
        return 0
    status = await conn.execute(
        f"""
        WITH {_LOCK_PROCESSING}
        UPDATE woo_customer_sync_queue_line l
           SET state = 'queued', error_count = l.error_count + $3::integer, error_message = r.error
          FROM locked, unnest($1::uuid[], $2::text[]) AS r(line_id, error)
         WHERE l.id = locked.id AND r.line_id = l.id AND l.state = 'processing'
        """,
        [line_id for line_id, _ in batch],
        [error for _, error in batch],
        1 if count_error else 0,
    )
    return rows_affected(status)


async def cancel_lines_of_cancelled_queues(conn: Executor, line_ids: list[UUID]) -> int:
    """Of the given lines, those still pending in a cancelled queue become `cancelled`."""
    ids = sorted(set(line_ids))
    if not ids:
        return 0
    status = await conn.execute(
        """
        WITH locked AS MATERIALIZED (
            SELECT l.id FROM unnest($1::uuid[]) AS wanted(id)
              JOIN woo_customer_sync_queue_line l ON l.id = wanted.id
              JOIN woo_customer_sync_queue q ON q.id = l.queue_id
             WHERE l.state IN ('draft', 'queued', 'processing') AND q.cancelled_at IS NOT NULL
             ORDER BY l.id FOR NO KEY UPDATE OF l
        )
        UPDATE woo_customer_sync_queue_line l SET state = 'cancelled'
          FROM locked
         WHERE l.id = locked.id AND l.state IN ('draft', 'queued', 'processing')
        """,
        ids,
    )
    return rows_affected(status)


# ---------------------------------------------------------------------------------------------
# Listing


async def list_lines(
    conn: Executor, queue_id: UUID, org_id: UUID, *, state: str | None, limit: int, offset: int
) -> list[QueueLine]:
    """A page of a queue's lines in woo_customer_id order, errors included."""
    if state is not None and state not in LINE_STATES:
        raise ValueError(f"unknown line state {state!r}: expected one of {', '.join(LINE_STATES)}")
    rows = await conn.fetch(
        """
        SELECT l.id, l.woo_customer_id, l.customer_data->>'email' AS email, l.state,
               l.process_count, l.error_count, l.error_message, l.result_customer_id,
               l.was_update, l.last_process_date, l.created_at, l.updated_at, l.outcome
          FROM woo_customer_sync_queue_line l
         WHERE l.queue_id = $1 AND l.org_id = $2 AND ($3::text IS NULL OR l.state = $3)
         ORDER BY l.woo_customer_id, l.id
         LIMIT $4 OFFSET $5
        """,
        queue_id,
        org_id,
        state,
        limit,
        offset,
    )
    return [QueueLine(**row) for row in rows]
