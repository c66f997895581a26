"""Sync queues (woo_customer_sync_queue): one per sync request, with the counts and state the
triggers of sql/001_foundation.sql derive from its lines, and the QueueStatus read from them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from shared.db import transaction
from shared.errors import TooManyOpenSyncs, UnknownOrganization
from shared.repository.activity import ActivityRow, append_activity
from shared.repository.sql import Executor, rows_affected
from shared.states import LINE_STATES, QUEUE_STATES, TERMINAL_QUEUE_STATES, QueueState


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """A sync queue as read: its row, with progress, throughput and ETA derived from the counters.
    (Its JSON for the status API is the status service's: services/status/presenters.py.)"""

    id: UUID
    org_id: UUID
    queue_name: str
    state: QueueState
    total_count: int
    draft_count: int
    processing_count: int
    done_count: int
    failed_count: int
    cancelled_count: int
    progress: int
    is_action_required: bool
    items_per_min: float
    eta_seconds: int | None
    created_at: datetime
    updated_at: datetime
    enumeration_done: bool
    error_message: str | None
    store_url: str | None
    idempotency_key: str | None
    store_id: UUID | None = None
    created_by: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancelled_by: str | None = None
    # The sync's plan (docs/contract.md section 10): {pages: {customers: {total, done}, orders:
    # {total, done}}, store_requests, orders}; None for a queue from before the order mirror.
    plan: dict[str, Any] | None = None
    kind: str = "sync"  # sync | preview (docs/contract.md section 10)
    conflict_count: int = 0
    # Published, not yet claimed (sql/009_dispatch.sql); paused_* set while the sync is paused.
    queued_count: int = 0
    paused_at: datetime | None = None
    paused_by: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_QUEUE_STATES

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> QueueStatus:
        total = row["total_count"]
        finished = row["done_count"] + row["failed_count"] + row["cancelled_count"]
        pending = row["draft_count"] + row.get("queued_count", 0) + row["processing_count"]
        terminal = row["state"] in TERMINAL_QUEUE_STATES
        # Floor, so that 100 means every line is finished.
        progress = (finished * 100) // total if total else (100 if terminal else 0)

        # Throughput counts worked lines (done, failed): a cancellation finishes thousands of
        # lines at once and says nothing about how fast the rest will go.
        items_per_min = 0.0
        started_at = row["started_at"]
        if started_at is not None:
            until = row["finished_at"] or row["observed_at"]
            minutes = (until - started_at).total_seconds() / 60
            if minutes > 0:
                items_per_min = (row["done_count"] + row["failed_count"]) / minutes

        eta_seconds: int | None
        if terminal or (pending == 0 and row["enumeration_done"]):
            eta_seconds = 0
        elif pending and items_per_min > 0:
            eta_seconds = math.ceil(pending / items_per_min * 60)
        else:
            eta_seconds = None

        return cls(
            id=row["id"],
            org_id=row["org_id"],
            queue_name=row["queue_name"],
            state=row["state"],
            total_count=total,
            draft_count=row["draft_count"],
            processing_count=row["processing_count"],
            done_count=row["done_count"],
            failed_count=row["failed_count"],
            cancelled_count=row["cancelled_count"],
            progress=progress,
            is_action_required=row["is_action_required"],
            items_per_min=round(items_per_min, 2),
            eta_seconds=eta_seconds,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            enumeration_done=row["enumeration_done"],
            error_message=row["error_message"],
            store_url=row["store_url"],
            idempotency_key=row["idempotency_key"],
            store_id=row["store_id"],
            created_by=row["created_by"],
            options=row["options"] or {},
            started_at=started_at,
            finished_at=row["finished_at"],
            cancelled_at=row["cancelled_at"],
            cancelled_by=row["cancelled_by"],
            plan=_plan(row),
            kind=row.get("kind") or "sync",
            conflict_count=row.get("conflict_count") or 0,
            queued_count=row.get("queued_count") or 0,
            paused_at=row.get("paused_at"),
            paused_by=row.get("paused_by"),
        )


def _plan(row: asyncpg.Record) -> dict[str, Any] | None:
    """The plan as the status object shows it (sql/005_order_mirror.sql keeps it on the queue)."""
    if "store_requests" not in row:
        return None
    return {
        "orders": row["order_strategy"],
        "pages": {
            "customers": {"total": row["customer_pages_total"], "done": row["customer_pages_done"]},
            "orders": {"total": row["order_pages_total"], "done": row["order_pages_done"]},
        },
        "store_requests": row["store_requests"],
    }


_QUEUE_COLUMNS = """
    id, org_id, queue_name, state, total_count, draft_count, processing_count, done_count,
    failed_count, cancelled_count, is_action_required, enumeration_done, error_message,
    store_id, store_url, idempotency_key, created_by, options, started_at, finished_at,
    order_strategy, customer_pages_total, customer_pages_done, order_pages_total, order_pages_done, store_requests,
    cancelled_at, cancelled_by, created_at, updated_at, clock_timestamp() AS observed_at, kind, conflict_count,
    queued_count, paused_at, paused_by
"""


# The organisation's open syncs (draft or processing), counted up to $2 only: served by
# idx_woo_sync_queue_org_state (org_id, state), one index range per open state.
COUNT_OPEN_SYNCS = """
SELECT count(*) FROM (
    SELECT 1 FROM woo_customer_sync_queue WHERE org_id = $1 AND state = ANY($3::text[]) LIMIT $2
) AS open_syncs
"""
_OPEN_QUEUE_STATES = sorted(set(QUEUE_STATES) - TERMINAL_QUEUE_STATES)
# The first key of the per-organisation advisory lock that serialises creating queues ("woos");
# the second is a hash of the organisation's id (a collision only makes two organisations wait
# for each other's insert).
_OPEN_SYNCS_LOCK = 0x776F6F73


async def find_or_create_queue(
    conn: Executor,
    *,
    org_id: UUID,
    queue_name: str,
    idempotency_key: str | None,
    store_id: UUID | None,
    store_url: str | None,
    created_by: str | None,
    options: dict[str, Any],
    max_open_syncs: int | None = None,
    kind: str = "sync",
) -> tuple[QueueStatus, bool]:
    """The queue for (org, idempotency key), created if new: (status, created).

    Safe under races: two requests with the same key get the same queue, one of them `created`.
    Without a key every call creates a queue. Unknown org -> UnknownOrganization.

    With `max_open_syncs` (WOOSYNC_ORG_MAX_OPEN_SYNCS), a new queue is refused with TooManyOpenSyncs
    while the organisation has that many open (draft or processing). The count and the insert
    run under a transaction-scoped advisory lock of the organisation, so concurrent requests on
    any process cannot overshoot; an existing key is not a new sync and is always answered.
    """
    fields = dict(org_id=org_id, queue_name=queue_name, idempotency_key=idempotency_key, store_id=store_id,
                  store_url=store_url, created_by=created_by, options=options, kind=kind)
    if max_open_syncs is None:
        return await _find_or_insert_queue(conn, **fields)
    async with transaction(conn) as tx:
        await tx.execute("SELECT pg_advisory_xact_lock($1::int4, hashtext($2::uuid::text))", _OPEN_SYNCS_LOCK, org_id)
        if idempotency_key is not None:
            existing = await _queue_of_key(tx, org_id, idempotency_key)
            if existing is not None:
                return existing, False
        if await tx.fetchval(COUNT_OPEN_SYNCS, org_id, max_open_syncs, _OPEN_QUEUE_STATES) >= max_open_syncs:
            raise TooManyOpenSyncs(org_id, max_open_syncs)
        return await _find_or_insert_queue(tx, **fields)


async def _queue_of_key(conn: Executor, org_id: UUID, idempotency_key: str | None) -> QueueStatus | None:
    row = await conn.fetchrow(
        f"SELECT {_QUEUE_COLUMNS} FROM woo_customer_sync_queue WHERE org_id = $1 AND idempotency_key = $2",
        org_id,
        idempotency_key,
    )
    return QueueStatus.from_row(row) if row is not None else None


async def _find_or_insert_queue(
    conn: Executor,
    *,
    org_id: UUID,
    queue_name: str,
    idempotency_key: str | None,
    store_id: UUID | None,
    store_url: str | None,
    created_by: str | None,
    options: dict[str, Any],
    kind: str = "sync",
) -> tuple[QueueStatus, bool]:
    for _ in range(3):
        try:
            row = await conn.fetchrow(
                f"""
                INSERT INTO woo_customer_sync_queue
                    (org_id, queue_name, idempotency_key, store_id, store_url, created_by, options, kind)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                ON CONFLICT (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
                RETURNING {_QUEUE_COLUMNS}
                """,
                org_id,
                queue_name,
                idempotency_key,
                store_id,
                store_url,
                created_by,
                options,
                kind,
            )
        except asyncpg.ForeignKeyViolationError as exc:
            if "org_id" in (exc.constraint_name or "") or "organization" in str(exc.detail or ""):
                raise UnknownOrganization(f"organisation {org_id} is not registered") from None
            raise
        if row is not None:
            return QueueStatus.from_row(row), True
        # The key exists. ON CONFLICT waited for its inserter to commit, so this finds it
        # (unless it was deleted meanwhile: then try again).
        existing = await _queue_of_key(conn, org_id, idempotency_key)
        if existing is not None:
            return existing, False
    raise RuntimeError(f"queue with idempotency key {idempotency_key!r} keeps disappearing")


async def queue_status(conn: Executor, queue_id: UUID, org_id: UUID) -> QueueStatus | None:
    row = await conn.fetchrow(
        f"SELECT {_QUEUE_COLUMNS} FROM woo_customer_sync_queue WHERE id = $1 AND org_id = $2", queue_id, org_id
    )
    return QueueStatus.from_row(row) if row is not None else None


async def queue_statuses(conn: Executor, keys: Sequence[tuple[UUID, UUID]]) -> dict[tuple[UUID, UUID], QueueStatus]:
    """Many queues in one read (the status service's event-stream poller), by (organisation,
    queue id) pairs: a pair whose queue is not that organisation's is simply absent."""
    wanted = set(keys)
    rows = await conn.fetch(
        f"SELECT {_QUEUE_COLUMNS} FROM woo_customer_sync_queue WHERE id = ANY($1::uuid[])",
        [queue_id for _, queue_id in wanted],
    )
    found = {(row["org_id"], row["id"]): row for row in rows}
    return {key: QueueStatus.from_row(row) for key, row in found.items() if key in wanted}


async def list_queues(conn: Executor, org_id: UUID, *, limit: int, offset: int) -> list[QueueStatus]:
    """The organisation's queues, newest first."""
    rows = await conn.fetch(
        f"""
        SELECT {_QUEUE_COLUMNS} FROM woo_customer_sync_queue
        WHERE org_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3
        """,
        org_id,
        limit,
        offset,
    )
    return [QueueStatus.from_row(row) for row in rows]


async def mark_enumeration_done(conn: Executor, queue_id: UUID, org_id: UUID) -> QueueStatus | None:
    """Every customer of the store has a line: the queue may now finish."""
    row = await conn.fetchrow(
        f"""
        UPDATE woo_customer_sync_queue
           SET enumeration_done = true, enumerated_at = coalesce(enumerated_at, now())
         WHERE id = $1 AND org_id = $2
        RETURNING {_QUEUE_COLUMNS}
        """,
        queue_id,
        org_id,
    )
    return QueueStatus.from_row(row) if row is not None else None


async def record_queue_error(
    conn: Executor, queue_id: UUID, org_id: UUID, message: str, *, ends_enumeration: bool = True
) -> None:
    """The sync request itself failed (store unreachable, credentials refused, ...).

    Sets error_message and is_action_required. With `ends_enumeration` (the default) no more
    lines will come, so the queue ends `failed` (or `partial`) once its lines are finished.
    """
    await conn.execute(
        """
        UPDATE woo_customer_sync_queue
           SET error_message = $3, is_action_required = true,
               enumeration_done = enumeration_done OR $4,
               enumerated_at = CASE WHEN $4 THEN coalesce(enumerated_at, now()) ELSE enumerated_at END
         WHERE id = $1 AND org_id = $2
        """,
        queue_id,
        org_id,
        message,
        ends_enumeration,
    )


async def cancel_queue(conn: Executor, queue_id: UUID, org_id: UUID, *, cancelled_by: str) -> QueueStatus | None:
    """Cancel a queue (the seeds' "force-done"), paused or not: its draft and queued lines become
    `cancelled` now (a queued line's message, when it comes, finds its line finished); lines
    being processed finish, and consumers cancel any that come back. A finished queue is left
    as it is. Idempotent. None if the organisation has no such queue.
    """
    async with transaction(conn) as tx:
        state = await tx.fetchval(
            "SELECT state FROM woo_customer_sync_queue WHERE id = $1 AND org_id = $2", queue_id, org_id
        )
        if state is None:
            return None
        if state in TERMINAL_QUEUE_STATES and state != "cancelled":
            return await queue_status(tx, queue_id, org_id)
        # Lines first, then the queue row: the order consumers lock them in (line, then the
        # queue row through the count trigger), so a cancel cannot deadlock with them.
        cancelled_lines = rows_affected(
            await tx.execute(
                """
                UPDATE woo_customer_sync_queue_line SET state = 'cancelled'
                 WHERE state IN ('draft', 'queued') AND id IN (
                       SELECT id FROM woo_customer_sync_queue_line
                        WHERE queue_id = $1 AND state IN ('draft', 'queued')
                        ORDER BY id FOR UPDATE)
                """,
                queue_id,
            )
        )
        newly = await tx.fetchval(
            """
            UPDATE woo_customer_sync_queue
               SET cancelled_at = now(), cancelled_by = $3
             WHERE id = $1 AND org_id = $2 AND cancelled_at IS NULL
            RETURNING true
            """,
            queue_id,
            org_id,
            cancelled_by,
        )
        if newly or cancelled_lines:
            await append_activity(
                tx,
                [
                    ActivityRow(
                        queue_id=queue_id,
                        org_id=org_id,
                        activity_type="cancel",
                        status="cancelled",
                        message=f"cancelled by {cancelled_by}: {cancelled_lines} draft or queued line(s) cancelled",
                        details={"cancelled_by": cancelled_by, "lines_cancelled": cancelled_lines},
                    )
                ],
            )
        return await queue_status(tx, queue_id, org_id)


class QueueFinished(Exception):
    """Pause or resume asked of a finished queue (docs/contract.md section 10: 409)."""

    def __init__(self, status: QueueStatus) -> None:
        super().__init__(f"sync queue {status.id} is {status.state}: only an unfinished sync can be paused or resumed")
        self.status = status


async def pause_queue(conn: Executor, queue_id: UUID, org_id: UUID, *, paused_by: str) -> QueueStatus | None:
    """Pause a sync: the dispatcher publishes none of its lines any more; lines already queued
    or processing finish (at most the dispatch window). Idempotent; recorded in the activity log
    with who asked. None if the organisation has no such queue; QueueFinished if it is finished."""
    return await _set_paused(conn, queue_id, org_id, paused=True, requested_by=paused_by)


async def resume_queue(conn: Executor, queue_id: UUID, org_id: UUID, *, resumed_by: str) -> QueueStatus | None:
    """Resume a paused sync: the dispatcher publishes its draft lines again. Idempotent."""
    return await _set_paused(conn, queue_id, org_id, paused=False, requested_by=resumed_by)


async def _set_paused(conn: Executor, queue_id: UUID, org_id: UUID, *, paused: bool,
                      requested_by: str) -> QueueStatus | None:
    async with transaction(conn) as tx:
        status = await tx.fetchrow(
            "SELECT state, paused_at FROM woo_customer_sync_queue WHERE id = $1 AND org_id = $2 FOR UPDATE",
            queue_id, org_id,
        )
        if status is None:
            return None
        if status["state"] in TERMINAL_QUEUE_STATES:
            raise QueueFinished(await queue_status(tx, queue_id, org_id))
        if (status["paused_at"] is not None) == paused:  # already so: nothing to record
            return await queue_status(tx, queue_id, org_id)
        await tx.execute(
            """
            UPDATE woo_customer_sync_queue
               SET paused_at = CASE WHEN $3 THEN now() END, paused_by = CASE WHEN $3 THEN $4 END
             WHERE id = $1 AND org_id = $2
            """,
            queue_id, org_id, paused, requested_by,
        )
        action = "pause" if paused else "resume"
        await append_activity(
            tx,
            [
                ActivityRow(
                    queue_id=queue_id,
                    org_id=org_id,
                    activity_type=action,
                    status="paused" if paused else "resumed",
                    message=f"{'paused' if paused else 'resumed'} by {requested_by}",
                    details={"paused_by" if paused else "resumed_by": requested_by},
                )
            ],
        )
        await tx.execute("SELECT pg_notify('woosync_queue_changed', $1::text)", str(queue_id))
        return await queue_status(tx, queue_id, org_id)


async def delete_finished_queues(conn: Executor, *, older_than_days: int) -> int:
    """Delete queues finished more than `older_than_days` ago, with their lines and activity."""
    status = await conn.execute(
        """
        DELETE FROM woo_customer_sync_queue
         WHERE state = ANY($2::text[])
           AND finished_at < now() - make_interval(days => $1)
        """,
        older_than_days,
        sorted(TERMINAL_QUEUE_STATES),
    )
    return rows_affected(status)


async def line_counts_by_state_of_unfinished_queues(conn: Executor) -> dict[str, int]:
    """Lines by state over queues still `draft`, `processing` or `paused`, from the trigger-kept counters
    (for the woosync_queue_lines gauge): one index scan over unfinished queues, no COUNT(*)."""
    row = await conn.fetchrow(
        """
        SELECT coalesce(sum(draft_count), 0)      AS draft,
               coalesce(sum(queued_count), 0)     AS queued,
               coalesce(sum(processing_count), 0) AS processing,
               coalesce(sum(done_count), 0)       AS done,
               coalesce(sum(failed_count), 0)     AS failed,
               coalesce(sum(cancelled_count), 0)  AS cancelled
          FROM woo_customer_sync_queue
         WHERE state IN ('draft', 'processing', 'paused')
        """
    )
    return {state: int(row[state]) for state in LINE_STATES}
