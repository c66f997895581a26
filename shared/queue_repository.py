"""Sync queues, their lines, the activity log and stores: every statement woosync runs on them.

Rules that hold for every function here:
- Anything that reads or writes a queue on behalf of a caller is scoped by `org_id`: another
  organisation's queue id behaves exactly like an unknown one (None, [] or 0, and no effect).
- Queue counters and the queue `state` are never written here: the triggers of
  sql/001_foundation.sql derive them from line transitions, in the same transaction.
- Batch operations are one statement each, and take line ids in sorted order so that two
  consumers updating overlapping batches lock rows in the same order.
- `conn` is an asyncpg Connection (possibly inside the caller's transaction) or a Pool;
  functions that need several statements open their own transaction (a savepoint when the
  caller already has one).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from cryptography.fernet import Fernet, InvalidToken

from shared.db import transaction
from shared.errors import PermanentError, UnknownOrganization

LINE_STATES = ("draft", "processing", "done", "failed", "cancelled")
TERMINAL_LINE_STATES = frozenset({"done", "failed", "cancelled"})
QUEUE_STATES = ("draft", "processing", "partial", "done", "failed", "cancelled")
TERMINAL_QUEUE_STATES = frozenset({"done", "failed", "partial", "cancelled"})

Executor = asyncpg.Connection | asyncpg.Pool


class StoreCredentialsUnavailable(PermanentError):
    """A store's credentials cannot be read: unknown store, or encrypted with another key (or none)."""


# ---------------------------------------------------------------------------------------------
# Value objects


@dataclass(frozen=True, slots=True)
class QueueStatus:
    id: UUID
    org_id: UUID
    queue_name: str
    state: str
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

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_QUEUE_STATES

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> QueueStatus:
        total = row["total_count"]
        finished = row["done_count"] + row["failed_count"] + row["cancelled_count"]
        pending = row["draft_count"] + row["processing_count"]
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
        )

    def to_api(self) -> dict[str, Any]:
        """The queue status object of SPEC section 7 (plus a few extra keys), JSON-ready."""
        return {
            "id": str(self.id),
            "queue_name": self.queue_name,
            "state": self.state,
            "total_count": self.total_count,
            "draft_count": self.draft_count,
            "processing_count": self.processing_count,
            "done_count": self.done_count,
            "failed_count": self.failed_count,
            "cancelled_count": self.cancelled_count,
            "progress": self.progress,
            "is_action_required": self.is_action_required,
            "items_per_min": self.items_per_min,
            "eta_seconds": self.eta_seconds,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "enumeration_done": self.enumeration_done,
            "error_message": self.error_message,
            "store_url": self.store_url,
            "idempotency_key": self.idempotency_key,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "cancelled_at": _iso(self.cancelled_at),
        }


@dataclass(frozen=True, slots=True)
class ClaimedLine:
    """What a consumer needs to decide about one delivered line.

    claimed: the line is now `processing` for this delivery: do the work.
    Otherwise do not work on it: if `queue_cancelled`, cancel it
    (cancel_lines_of_cancelled_queues); else it is finished (`state` terminal): ack.
    """

    line_id: UUID
    queue_id: UUID
    org_id: UUID
    woo_customer_id: int
    state: str
    claimed: bool
    queue_cancelled: bool
    process_count: int
    error_count: int
    store_id: UUID | None
    store_url: str | None


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
class ActivityRow:
    queue_id: UUID
    org_id: UUID
    activity_type: str
    status: str
    message: str | None = None
    details: dict[str, Any] | None = None
    queue_line_id: UUID | None = None


# ---------------------------------------------------------------------------------------------
# Helpers


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _json_ready(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value



def _rows_affected(status: str) -> int:
    # asyncpg returns the command tag, e.g. "UPDATE 12".
    return int(status.rsplit(" ", 1)[-1])


def _sorted_unique(pairs: Iterable[tuple[UUID, Any]]) -> list[tuple[UUID, Any]]:
    """First value per line id, sorted by id (one lock order for every batch statement)."""
    seen: dict[UUID, Any] = {}
    for line_id, value in pairs:
        seen.setdefault(line_id, value)
    return sorted(seen.items(), key=lambda item: item[0])


_QUEUE_COLUMNS = """
    id, org_id, queue_name, state, total_count, draft_count, processing_count, done_count,
    failed_count, cancelled_count, is_action_required, enumeration_done, error_message,
    store_id, store_url, idempotency_key, created_by, options, started_at, finished_at,
    cancelled_at, cancelled_by, created_at, updated_at, clock_timestamp() AS observed_at
"""


# ---------------------------------------------------------------------------------------------
# Queues


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
) -> tuple[QueueStatus, bool]:
    """The queue for (org, idempotency key), created if new: (status, created).

    Safe under races: two requests with the same key get the same queue, one of them `created`.
    Without a key every call creates a queue. Unknown org -> UnknownOrganization.
    """
    for _ in range(3):
        try:
            row = await conn.fetchrow(
                f"""
                INSERT INTO woo_customer_sync_queue
                    (org_id, queue_name, idempotency_key, store_id, store_url, created_by, options)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
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
            )
        except asyncpg.ForeignKeyViolationError as exc:
            if "org_id" in (exc.constraint_name or "") or "organization" in str(exc.detail or ""):
                raise UnknownOrganization(f"organisation {org_id} is not registered") from None
            raise
        if row is not None:
            return QueueStatus.from_row(row), True
        # The key exists. ON CONFLICT waited for its inserter to commit, so this finds it
        # (unless it was deleted meanwhile: then try again).
        row = await conn.fetchrow(
            f"SELECT {_QUEUE_COLUMNS} FROM woo_customer_sync_queue WHERE org_id = $1 AND idempotency_key = $2",
            org_id,
            idempotency_key,
        )
        if row is not None:
            return QueueStatus.from_row(row), False
    raise RuntimeError(f"queue with idempotency key {idempotency_key!r} keeps disappearing")


async def queue_status(conn: Executor, queue_id: UUID, org_id: UUID) -> QueueStatus | None:
    row = await conn.fetchrow(
        f"SELECT {_QUEUE_COLUMNS} FROM woo_customer_sync_queue WHERE id = $1 AND org_id = $2", queue_id, org_id
    )
    return QueueStatus.from_row(row) if row is not None else None


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
    """Cancel a queue (the seeds' "force-done"): its draft lines become `cancelled` now; lines
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
        cancelled_lines = _rows_affected(
            await tx.execute(
                """
                UPDATE woo_customer_sync_queue_line SET state = 'cancelled'
                 WHERE state = 'draft' AND id IN (
                       SELECT id FROM woo_customer_sync_queue_line
                        WHERE queue_id = $1 AND state = 'draft'
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
                        message=f"cancelled by {cancelled_by}: {cancelled_lines} draft line(s) cancelled",
                        details={"cancelled_by": cancelled_by, "lines_cancelled": cancelled_lines},
                    )
                ],
            )
        return await queue_status(tx, queue_id, org_id)


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
                    ORDER BY id FOR UPDATE)
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


async def delete_finished_queues(conn: Executor, *, older_than_days: int) -> int:
    """Delete queues finished more than `older_than_days` ago, with their lines and activity."""
    status = await conn.execute(
        """
        DELETE FROM woo_customer_sync_queue
         WHERE state IN ('done', 'failed', 'partial', 'cancelled')
           AND finished_at < now() - make_interval(days => $1)
        """,
        older_than_days,
    )
    return _rows_affected(status)


async def line_counts_by_state_of_unfinished_queues(conn: Executor) -> dict[str, int]:
    """Lines by state over queues still `draft` or `processing`, from the trigger-kept counters
    (for the woosync_queue_lines gauge): one index scan over unfinished queues, no COUNT(*)."""
    row = await conn.fetchrow(
        """
        SELECT coalesce(sum(draft_count), 0)      AS draft,
               coalesce(sum(processing_count), 0) AS processing,
               coalesce(sum(done_count), 0)       AS done,
               coalesce(sum(failed_count), 0)     AS failed,
               coalesce(sum(cancelled_count), 0)  AS cancelled
          FROM woo_customer_sync_queue
         WHERE state IN ('draft', 'processing')
        """
    )
    return {state: int(row[state]) for state in LINE_STATES}


# ---------------------------------------------------------------------------------------------
# Lines


async def add_lines(
    conn: Executor, *, queue_id: UUID, org_id: UUID, customers: list[tuple[int, dict[str, Any]]]
) -> list[tuple[UUID, int]]:
    """One line per (woo_customer_id, customer_data), in one statement; returns (line_id,
    woo_customer_id) of the lines inserted now: a customer already in the queue (a re-run of
    the same request) comes back nowhere, so it is not published twice. A cancelled queue, or
    another organisation's, takes no lines.
    """
    if not customers:
        return []
    rows = await conn.fetch(
        """
        INSERT INTO woo_customer_sync_queue_line (queue_id, org_id, woo_customer_id, customer_data)
        SELECT q.id, q.org_id, c.woo_customer_id, c.customer_data
          FROM unnest($3::bigint[], $4::jsonb[]) AS c(woo_customer_id, customer_data)
          JOIN woo_customer_sync_queue q ON q.id = $1 AND q.org_id = $2 AND q.cancelled_at IS NULL
        ON CONFLICT (queue_id, woo_customer_id) DO NOTHING
        RETURNING id, woo_customer_id
        """,
        queue_id,
        org_id,
        [woo_customer_id for woo_customer_id, _ in customers],
        [customer_data for _, customer_data in customers],
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


# Batch statements lock their lines in id order before updating them: a plan that walks the
# heap in another order would let two consumers with overlapping batches deadlock (each holding
# a line the other wants; PostgreSQL then aborts one after deadlock_timeout). $1 is the sorted
# array of line ids.
_LOCK_UNFINISHED = """locked AS MATERIALIZED (
            SELECT l.id FROM unnest($1::uuid[]) AS wanted(id)
              JOIN woo_customer_sync_queue_line l ON l.id = wanted.id
             WHERE l.state IN ('draft', 'processing')
             ORDER BY l.id FOR UPDATE OF l
        )"""
_LOCK_PROCESSING = """locked AS MATERIALIZED (
            SELECT l.id FROM unnest($1::uuid[]) AS wanted(id)
              JOIN woo_customer_sync_queue_line l ON l.id = wanted.id
             WHERE l.state = 'processing'
             ORDER BY l.id FOR UPDATE OF l
        )"""

_CLAIM = """
WITH locked AS MATERIALIZED (
    SELECT l.id FROM unnest($1::uuid[]) AS wanted(id)
      JOIN woo_customer_sync_queue_line l ON l.id = wanted.id
      JOIN woo_customer_sync_queue q ON q.id = l.queue_id
     WHERE l.state IN ('draft', 'processing') AND q.cancelled_at IS NULL
     ORDER BY l.id FOR UPDATE OF l
), claimed AS (
    UPDATE woo_customer_sync_queue_line l
       SET state = 'processing', process_count = l.process_count + 1, last_process_date = now()
      FROM locked
     WHERE l.id = locked.id AND l.state IN ('draft', 'processing')
    RETURNING l.id, l.state, l.process_count
)
SELECT l.id, l.queue_id, l.org_id, l.woo_customer_id,
       coalesce(c.state, l.state) AS state,
       c.id IS NOT NULL AS claimed,
       q.cancelled_at IS NOT NULL AS queue_cancelled,
       coalesce(c.process_count, l.process_count) AS process_count,
       l.error_count, q.store_id, q.store_url
  FROM woo_customer_sync_queue_line l
  JOIN woo_customer_sync_queue q ON q.id = l.queue_id
  LEFT JOIN claimed c ON c.id = l.id
 WHERE l.id = ANY($1::uuid[])
"""

_RECHECK = """
SELECT l.id, l.queue_id, l.org_id, l.woo_customer_id, l.state, false AS claimed,
       q.cancelled_at IS NOT NULL AS queue_cancelled, l.process_count, l.error_count,
       q.store_id, q.store_url
  FROM woo_customer_sync_queue_line l
  JOIN woo_customer_sync_queue q ON q.id = l.queue_id
 WHERE l.id = ANY($1::uuid[])
"""


def _claimed_line(row: asyncpg.Record) -> ClaimedLine:
    return ClaimedLine(
        line_id=row["id"],
        queue_id=row["queue_id"],
        org_id=row["org_id"],
        woo_customer_id=row["woo_customer_id"],
        state=row["state"],
        claimed=row["claimed"],
        queue_cancelled=row["queue_cancelled"],
        process_count=row["process_count"],
        error_count=row["error_count"],
        store_id=row["store_id"],
        store_url=row["store_url"],
    )


async def claim_lines(conn: Executor, line_ids: list[UUID]) -> list[ClaimedLine]:
    """Lines about to be worked on: draft/processing -> processing, process_count + 1, in one
    statement. Returns one ClaimedLine per given id that exists (a line whose queue was
    deleted is absent), with its current state and whether its queue is cancelled.
    """
    ids = sorted(set(line_ids))
    if not ids:
        return []
    rows = await conn.fetch(_CLAIM, ids)
    lines = {row["id"]: _claimed_line(row) for row in rows}
    # A line not claimed reads its state from the statement's snapshot. If it looks pending
    # there, another transaction finished it while we waited for its row lock: read it again.
    stale = [line.line_id for line in lines.values()
             if not line.claimed and not line.queue_cancelled and line.state not in TERMINAL_LINE_STATES]
    if stale:
        for row in await conn.fetch(_RECHECK, stale):
            lines[row["id"]] = _claimed_line(row)
    return [lines[line_id] for line_id in ids if line_id in lines]


async def mark_lines_done(conn: Executor, results: list[tuple[UUID, UUID, bool]]) -> int:
    """(line_id, result_customer_id, was_update) -> `done`, for lines not finished yet; returns
    how many lines moved (a redelivered, already finished line is not counted twice)."""
    batch = _sorted_unique((line_id, (customer_id, was_update)) for line_id, customer_id, was_update in results)
    if not batch:
        return 0
    status = await conn.execute(
        f"""
        WITH {_LOCK_UNFINISHED}
        UPDATE woo_customer_sync_queue_line l
           SET state = 'done', result_customer_id = r.customer_id, was_update = r.was_update,
               error_message = NULL, last_process_date = now()
          FROM locked, unnest($1::uuid[], $2::uuid[], $3::boolean[]) AS r(line_id, customer_id, was_update)
         WHERE l.id = locked.id AND r.line_id = l.id AND l.state IN ('draft', 'processing')
        """,
        [line_id for line_id, _ in batch],
        [customer_id for _, (customer_id, _) in batch],
        [was_update for _, (_, was_update) in batch],
    )
    return _rows_affected(status)


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
         WHERE l.id = locked.id AND r.line_id = l.id AND l.state IN ('draft', 'processing')
        """,
        [line_id for line_id, _ in batch],
        [error for _, error in batch],
    )
    return _rows_affected(status)


async def return_lines_to_draft(conn: Executor, retries: list[tuple[UUID, str]]) -> int:
    """A transient failure: `processing` -> `draft` (it will be delivered again), error_count + 1."""
    batch = _sorted_unique(retries)
    if not batch:
        return 0
    status = await conn.execute(
        f"""
        WITH {_LOCK_PROCESSING}
        UPDATE woo_customer_sync_queue_line l
           SET state = 'draft', error_count = l.error_count + 1, error_message = r.error
          FROM locked, unnest($1::uuid[], $2::text[]) AS r(line_id, error)
         WHERE l.id = locked.id AND r.line_id = l.id AND l.state = 'processing'
        """,
        [line_id for line_id, _ in batch],
        [error for _, error in batch],
    )
    return _rows_affected(status)


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
             WHERE l.state IN ('draft', 'processing') AND q.cancelled_at IS NOT NULL
             ORDER BY l.id FOR UPDATE OF l
        )
        UPDATE woo_customer_sync_queue_line l SET state = 'cancelled'
          FROM locked
         WHERE l.id = locked.id AND l.state IN ('draft', 'processing')
        """,
        ids,
    )
    return _rows_affected(status)


async def list_lines(
    conn: Executor, queue_id: UUID, org_id: UUID, *, state: str | None, limit: int, offset: int
) -> list[dict[str, Any]]:
    """A page of a queue's lines in woo_customer_id order, JSON-ready, errors included."""
    if state is not None and state not in LINE_STATES:
        raise ValueError(f"unknown line state {state!r}: expected one of {', '.join(LINE_STATES)}")
    rows = await conn.fetch(
        """
        SELECT l.id, l.woo_customer_id, l.customer_data->>'email' AS email, l.state,
               l.process_count, l.error_count, l.error_message, l.result_customer_id,
               l.was_update, l.last_process_date, l.created_at, l.updated_at
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
    return [{key: _json_ready(value) for key, value in row.items()} for row in rows]


# ---------------------------------------------------------------------------------------------
# Activity (append-only: the database refuses updates)


async def append_activity(conn: Executor, rows: list[ActivityRow]) -> None:
    if not rows:
        return
    await conn.execute(
        """
        INSERT INTO woo_sync_activity (queue_id, org_id, queue_line_id, activity_type, status, message, details)
        SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::jsonb[])
        """,
        [row.queue_id for row in rows],
        [row.org_id for row in rows],
        [row.queue_line_id for row in rows],
        [row.activity_type for row in rows],
        [row.status for row in rows],
        [row.message for row in rows],
        [row.details for row in rows],
    )


async def read_activity(conn: Executor, queue_id: UUID, org_id: UUID, *, limit: int, offset: int) -> list[dict[str, Any]]:
    """A page of a queue's activity, newest first, JSON-ready."""
    rows = await conn.fetch(
        """
        SELECT id, queue_line_id, activity_type, status, message, details, created_at
          FROM woo_sync_activity
         WHERE queue_id = $1 AND org_id = $2
         ORDER BY created_at DESC, id DESC
         LIMIT $3 OFFSET $4
        """,
        queue_id,
        org_id,
        limit,
        offset,
    )
    return [{key: _json_ready(value) for key, value in row.items()} for row in rows]


# ---------------------------------------------------------------------------------------------
# Stores and their credentials


def _key_hint(consumer_key: str) -> str:
    # Enough to tell two stored keys apart in a listing, never enough to use.
    return consumer_key[-4:] if len(consumer_key) >= 12 else ""


async def upsert_store(
    conn: Executor, *, org_id: UUID, url: str, consumer_key: str, consumer_secret: str, fernet_key: str | None
) -> UUID:
    """Record (or update) an organisation's store and its credentials; returns the store id.

    Credentials are stored Fernet-encrypted when `fernet_key` is given (WOOSYNC_SECRET_KEY),
    else as plain JSON. key_hint keeps the last 4 characters of the consumer key.
    """
    document = orjson.dumps({"consumer_key": consumer_key, "consumer_secret": consumer_secret})
    if fernet_key:
        credentials, credentials_format = Fernet(fernet_key.encode()).encrypt(document).decode(), "fernet"
    else:
        credentials, credentials_format = document.decode(), "plain"
    try:
        return await conn.fetchval(
            """
            INSERT INTO woo_store (org_id, url, credentials, credentials_format, key_hint)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (org_id, url) DO UPDATE
               SET credentials = excluded.credentials,
                   credentials_format = excluded.credentials_format,
                   key_hint = excluded.key_hint,
                   updated_at = now()
            RETURNING id
            """,
            org_id,
            url,
            credentials,
            credentials_format,
            _key_hint(consumer_key),
        )
    except asyncpg.ForeignKeyViolationError:
        raise UnknownOrganization(f"organisation {org_id} is not registered") from None


async def load_store_credentials(conn: Executor, store_id: UUID, *, fernet_key: str | None) -> tuple[str, str, str]:
    """(url, consumer_key, consumer_secret) of a store. StoreCredentialsUnavailable, naming the
    problem, when the store is unknown or its credentials cannot be decrypted with `fernet_key`."""
    row = await conn.fetchrow(
        "SELECT url, credentials, credentials_format FROM woo_store WHERE id = $1", store_id
    )
    if row is None:
        raise StoreCredentialsUnavailable(f"store {store_id} is not recorded")
    if row["credentials_format"] == "fernet":
        if not fernet_key:
            raise StoreCredentialsUnavailable(
                f"the credentials of store {row['url']} are encrypted, and WOOSYNC_SECRET_KEY is not set"
            )
        try:
            document = Fernet(fernet_key.encode()).decrypt(row["credentials"].encode())
        except InvalidToken:
            raise StoreCredentialsUnavailable(
                f"the credentials of store {row['url']} cannot be decrypted: WOOSYNC_SECRET_KEY is not the key "
                "they were encrypted with"
            ) from None
    else:
        document = row["credentials"].encode()
    credentials = orjson.loads(document)
    return row["url"], credentials["consumer_key"], credentials["consumer_secret"]
