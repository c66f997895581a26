"""Dispatching draft lines in bounded windows (docs/architecture.md "Dispatch").

A sync has at most `window` lines queued or processing at once. One dispatch step locks one
sync's queue row (SKIP LOCKED: another dispatcher takes another sync), reads its counts under
that lock, moves up to `window - (queued + processing)` of its draft lines to `queued` (SKIP
LOCKED again) and commits; the caller then publishes them. Locks are taken queue row first, and
line rows only with SKIP LOCKED, so a dispatcher never waits for a consumer's or a cancel's line
locks (they take lines, then the queue row): no deadlock.

Crash safety: a dispatcher that dies before its commit leaves the lines in draft (another one
takes them); one that dies after the commit, before its publish is confirmed, leaves them queued
with no message: `stale_queued_lines` finds lines queued longer than the re-publish timeout and
hands them out again. A line published twice is harmless (the consumer's claim is the authority,
docs/contract.md section 3).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from uuid import UUID

from shared.db import transaction
from shared.repository.queue_lines import RetryLine
from shared.repository.sql import Executor, rows_affected

# The syncs that may publish now: unfinished, not paused or cancelled, with draft lines and room
# in their window, and (bulk strategy) their orders mirrored. One-window syncs first (a
# one-customer sync never waits behind backfills), then the longest since their last dispatch.
_DUE = """
       state IN ('draft', 'processing') AND draft_count > 0
   AND paused_at IS NULL AND cancelled_at IS NULL AND store_id IS NOT NULL
   AND (order_strategy IS DISTINCT FROM 'bulk' OR orders_mirrored)
   AND queued_count + processing_count < $1
   AND id <> ALL($2::uuid[])
"""
_TAKE_QUEUE = f"""
SELECT id, org_id, store_id, queued_count + processing_count AS in_flight
  FROM woo_customer_sync_queue
 WHERE {_DUE}
 ORDER BY (enumeration_done AND total_count <= $1) DESC, dispatched_at NULLS FIRST, created_at
 LIMIT 1
 FOR UPDATE SKIP LOCKED
"""

# A sync due for lines whose row is locked: a consumer's or the producer's transaction holds it
# for a few milliseconds (every statement on a sync's lines updates its counts there).
_DUE_BUT_LOCKED = f"SELECT EXISTS (SELECT 1 FROM woo_customer_sync_queue WHERE {_DUE})"
# How often, and how long apart, a dispatcher that found only locked syncs looks again before
# it gives up the round: skipping the round left a busy sync's window to drain for a whole
# interval whenever its row happened to be locked, which was most rounds.
_LOCKED_TRIES = 5
_LOCKED_PAUSE_S = 0.01

# The scan of (queue_id, state) stops after `room` rows: no sort over a big sync's drafts.
_QUEUE_LINES = """
WITH picked AS MATERIALIZED (
    SELECT id FROM woo_customer_sync_queue_line
     WHERE queue_id = $1 AND state = 'draft'
     LIMIT $2
     FOR UPDATE SKIP LOCKED
)
UPDATE woo_customer_sync_queue_line l SET state = 'queued'
  FROM picked
 WHERE l.id = picked.id AND l.state = 'draft'
RETURNING l.id, l.woo_customer_id, l.customer_data
"""


async def queue_next_window(conn: Executor, *, window: int, skip: Sequence[UUID] = ()) -> tuple[UUID, list[RetryLine]] | None:
    """Take the next sync due for lines and move up to its free window of draft lines to
    `queued`, in one transaction; returns (queue_id, the lines to publish now) or None when no
    sync (other than those in `skip`) has room and draft lines. The list is empty when another
    dispatcher holds that sync's draft lines: skip it for this round.

    A sync due but locked at the moment (a consumer committing its batch) is looked for again,
    a few times 10 ms apart, before None is returned."""
    for tries_left in range(_LOCKED_TRIES, -1, -1):
        async with transaction(conn) as tx:
            queue = await tx.fetchrow(_TAKE_QUEUE, window, list(skip))
            if queue is None:
                locked = bool(tries_left) and await tx.fetchval(_DUE_BUT_LOCKED, window, list(skip))
            else:
                rows = await tx.fetch(_QUEUE_LINES, queue["id"], window - queue["in_flight"])
                await tx.execute("UPDATE woo_customer_sync_queue SET dispatched_at = clock_timestamp() WHERE id = $1",
                                 queue["id"])
        if queue is not None:
            break
        if not locked:
            return None
        await asyncio.sleep(_LOCKED_PAUSE_S)
    return queue["id"], [
        RetryLine(line_id=row["id"], queue_id=queue["id"], org_id=queue["org_id"], store_id=queue["store_id"],
                  woo_customer_id=row["woo_customer_id"], customer_data=row["customer_data"])
        for row in rows
    ]


async def return_unpublished_lines(conn: Executor, line_ids: Sequence[UUID]) -> int:
    """Lines whose publish failed go back from `queued` to `draft` (a later round takes them).
    Some of them may have reached the broker: a second copy is harmless."""
    status = await conn.execute(
        """
        UPDATE woo_customer_sync_queue_line SET state = 'draft'
         WHERE state = 'queued' AND id IN (
               SELECT id FROM woo_customer_sync_queue_line
                WHERE id = ANY($1::uuid[]) AND state = 'queued'
                ORDER BY id FOR UPDATE)
        """,
        sorted(set(line_ids)),
    )
    return rows_affected(status)


async def stale_queued_lines(conn: Executor, *, older_than_s: float, limit: int) -> list[RetryLine]:
    """Lines queued for longer than `older_than_s` without a claim: their message may be lost.
    Each is touched (its `updated_at` restarts the timeout) in the statement that returns it, so
    another dispatcher does not publish it again at the same time."""
    rows = await conn.fetch(
        """
        WITH stale AS MATERIALIZED (
            SELECT id FROM woo_customer_sync_queue_line
             WHERE state = 'queued' AND updated_at < now() - make_interval(secs => $1)
             ORDER BY updated_at
             LIMIT $2
             FOR UPDATE SKIP LOCKED
        )
        UPDATE woo_customer_sync_queue_line l SET state = 'queued'
          FROM stale, woo_customer_sync_queue q
         WHERE l.id = stale.id AND q.id = l.queue_id AND l.state = 'queued' AND q.store_id IS NOT NULL
        RETURNING l.id, l.queue_id, l.org_id, q.store_id, l.woo_customer_id, l.customer_data
        """,
        older_than_s,
        limit,
    )
    return [
        RetryLine(line_id=row["id"], queue_id=row["queue_id"], org_id=row["org_id"], store_id=row["store_id"],
                  woo_customer_id=row["woo_customer_id"], customer_data=row["customer_data"])
        for row in rows
    ]
