"""Sync jobs (sync_job, sync_job_queue; sql/004_jobs.sql): one request over several stores of an
organisation, each store its own sync queue under the job.

A job keeps no counters or state: `JobStatus` derives them from its queues as read, with the
rules of one queue's lines applied to its queues, so a job of one store reads as that store's
sync (same state, counts, progress and ETA).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from shared.db import transaction
from shared.errors import UnknownOrganization
from shared.repository import sync_queues
from shared.repository.sql import Executor
from shared.repository.sync_queues import QueueStatus
from shared.states import TERMINAL_QUEUE_STATES, QueueState

_COUNTS = ("total_count", "draft_count", "processing_count", "done_count", "failed_count", "cancelled_count")


def _field(queue: QueueStatus | Mapping[str, Any], name: str) -> Any:
    return queue[name] if isinstance(queue, Mapping) else getattr(queue, name)


def derive_job_state(states: Sequence[str], *, cancelled: bool) -> QueueState:
    """A job's state from its queues' states: open while any queue is open (`paused` when every
    open queue is paused, else `draft` while all are draft, else `processing`), then `done` or
    `failed` when every queue ended so, `cancelled` when the job was cancelled (or every queue
    was), `partial` for any other mix of endings."""
    if not states:  # every queue was deleted (retention)
        return "cancelled" if cancelled else "done"
    open_states = [state for state in states if state not in TERMINAL_QUEUE_STATES]
    if open_states:
        if all(state == "paused" for state in open_states):
            return "paused"
        return "draft" if all(state == "draft" for state in states) else "processing"
    if cancelled or all(state == "cancelled" for state in states):
        return "cancelled"
    for ending in ("done", "failed"):
        if all(state == ending for state in states):
            return ending  # type: ignore[return-value]
    return "partial"


@dataclass(frozen=True, slots=True)
class JobTotals:
    """A job's state and its queues' counts added up, with progress, throughput and ETA
    derived as one queue's are (sync_queues.QueueStatus.from_row). Works on QueueStatus rows
    and on their JSON (the status service's event streams hold the latter)."""

    state: QueueState
    total_count: int
    draft_count: int
    processing_count: int
    done_count: int
    failed_count: int
    cancelled_count: int
    progress: int
    items_per_min: float
    eta_seconds: int | None
    is_action_required: bool

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_QUEUE_STATES

    @classmethod
    def of(cls, queues: Sequence[QueueStatus | Mapping[str, Any]], *, cancelled: bool = False) -> JobTotals:
        state = derive_job_state([_field(queue, "state") for queue in queues], cancelled=cancelled)
        counts = {name: sum(_field(queue, name) for queue in queues) for name in _COUNTS}
        total = counts["total_count"]
        finished = counts["done_count"] + counts["failed_count"] + counts["cancelled_count"]
        terminal = state in TERMINAL_QUEUE_STATES
        progress = (finished * 100) // total if total else (100 if terminal else 0)
        # Queues run side by side: their rates add up, and the job ends with its slowest queue.
        items_per_min = round(sum(_field(queue, "items_per_min") for queue in queues), 2)
        open_etas = [_field(queue, "eta_seconds") for queue in queues if _field(queue, "state") not in TERMINAL_QUEUE_STATES]
        eta_seconds: int | None
        if terminal or not open_etas:
            eta_seconds = 0
        elif any(eta is None for eta in open_etas):
            eta_seconds = None
        else:
            eta_seconds = max(math.ceil(eta) for eta in open_etas)
        return cls(state=state, progress=progress, items_per_min=items_per_min, eta_seconds=eta_seconds,
                   is_action_required=any(_field(queue, "is_action_required") for queue in queues), **counts)


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A job as read: its row and its queues (in the order of its stores), with the totals."""

    id: UUID
    org_id: UUID
    job_name: str
    idempotency_key: str | None
    created_by: str | None
    options: dict[str, Any]
    store_count: int
    created_at: datetime
    cancelled_at: datetime | None
    cancelled_by: str | None
    queues: tuple[QueueStatus, ...] = field(default_factory=tuple)

    @property
    def totals(self) -> JobTotals:
        return JobTotals.of(self.queues, cancelled=self.cancelled_at is not None)

    @property
    def is_terminal(self) -> bool:
        return self.totals.is_terminal


@dataclass(frozen=True, slots=True)
class JobStore:
    """A store a new job syncs: its recorded id and normalised URL."""

    store_id: UUID
    url: str


_JOB_COLUMNS = "id, org_id, job_name, idempotency_key, created_by, options, store_count, created_at, cancelled_at, cancelled_by"


async def create_job(
    conn: Executor,
    *,
    org_id: UUID,
    job_name: str,
    idempotency_key: str | None,
    created_by: str | None,
    options: dict[str, Any],
    stores: Sequence[JobStore],
    max_open_syncs: int | None = None,
) -> tuple[JobStatus, bool]:
    """The job for (org, idempotency key), created with one new queue per store if new:
    (status, created). All or nothing, in one transaction: with `max_open_syncs` the queues are
    created under the organisation's cap on open syncs (sync_queues.find_or_create_queue), and
    a job that would go over it is refused whole (TooManyOpenSyncs). A repeated key answers the
    existing job, whatever its stores were. Unknown org -> UnknownOrganization."""
    if not stores:
        raise ValueError("a job needs at least one store")
    async with transaction(conn) as tx:
        if idempotency_key is not None:
            existing = await _job_of_key(tx, org_id, idempotency_key)
            if existing is not None:
                return existing, False
        try:
            job_id = await tx.fetchval(
                """
                INSERT INTO sync_job (org_id, job_name, idempotency_key, created_by, options, store_count)
                VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
                RETURNING id
                """,
                org_id, job_name, idempotency_key, created_by, options, len(stores),
            )
        except asyncpg.ForeignKeyViolationError:
            raise UnknownOrganization(f"organisation {org_id} is not registered") from None
        if job_id is None:  # a concurrent request with the same key committed first
            existing = await _job_of_key(tx, org_id, idempotency_key)
            assert existing is not None
            return existing, False
        for position, store in enumerate(stores):
            queue, _ = await sync_queues.find_or_create_queue(
                tx, org_id=org_id, queue_name=f"{job_name}: {store.url}", idempotency_key=None,
                store_id=store.store_id, store_url=store.url, created_by=created_by, options=options,
                max_open_syncs=max_open_syncs,
            )
            await tx.execute("INSERT INTO sync_job_queue (queue_id, job_id, position) VALUES ($1, $2, $3)",
                             queue.id, job_id, position)
        status = await job_status(tx, job_id, org_id)
        assert status is not None
        return status, True


async def _job_of_key(conn: Executor, org_id: UUID, idempotency_key: str) -> JobStatus | None:
    row = await conn.fetchrow(f"SELECT {_JOB_COLUMNS} FROM sync_job WHERE org_id = $1 AND idempotency_key = $2",
                              org_id, idempotency_key)
    return await _with_queues(conn, row) if row is not None else None


async def job_status(conn: Executor, job_id: UUID, org_id: UUID) -> JobStatus | None:
    """One of the organisation's jobs with its queues; None when it has none by that id."""
    row = await conn.fetchrow(f"SELECT {_JOB_COLUMNS} FROM sync_job WHERE id = $1 AND org_id = $2", job_id, org_id)
    return await _with_queues(conn, row) if row is not None else None


async def _with_queues(conn: Executor, row: asyncpg.Record) -> JobStatus:
    queue_ids = await conn.fetch("SELECT queue_id FROM sync_job_queue WHERE job_id = $1 ORDER BY position", row["id"])
    found = await sync_queues.queue_statuses(conn, [(row["org_id"], link["queue_id"]) for link in queue_ids])
    queues = tuple(found[(row["org_id"], link["queue_id"])] for link in queue_ids if (row["org_id"], link["queue_id"]) in found)
    return JobStatus(
        id=row["id"], org_id=row["org_id"], job_name=row["job_name"], idempotency_key=row["idempotency_key"],
        created_by=row["created_by"], options=row["options"] or {}, store_count=row["store_count"],
        created_at=row["created_at"], cancelled_at=row["cancelled_at"], cancelled_by=row["cancelled_by"],
        queues=queues,
    )


async def mark_job_cancelled(conn: Executor, job_id: UUID, org_id: UUID, *, cancelled_by: str) -> None:
    """Note that the job was cancelled as a whole (its queues are cancelled one by one by the
    caller, sync_queues.cancel_queue). Idempotent: the first cancellation is kept."""
    await conn.execute(
        "UPDATE sync_job SET cancelled_at = now(), cancelled_by = $3 WHERE id = $1 AND org_id = $2 AND cancelled_at IS NULL",
        job_id, org_id, cancelled_by,
    )


async def synced_stores(conn: Executor, org_id: UUID) -> list[JobStore]:
    """Every store the organisation has synced: those whose stored credentials a store has
    accepted (the producer's connection test), oldest first."""
    rows = await conn.fetch(
        "SELECT id, url FROM woo_store WHERE org_id = $1 AND credentials_verified_at IS NOT NULL ORDER BY created_at, id",
        org_id,
    )
    return [JobStore(store_id=row["id"], url=row["url"]) for row in rows]
