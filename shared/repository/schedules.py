"""Per-store schedules of syncs (sql/010_sweeps_schedules.sql; docs/contract.md section 10): a
periodic incremental sweep and a periodic full sync, each run by exactly one producer however
many replicas run (the due row is taken FOR UPDATE SKIP LOCKED and moved on in the same
transaction that decides to run it). Retention on a schedule (sql/011_maintenance_schedule.sql)
is run the same way: `run_prune_if_due`.

The status API (PUT/GET/DELETE /api/v1/sync/schedules) and `woosync schedule` set and read them
through `synced_store`, `set_schedule`, `list_schedules` and `delete_schedules`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from shared.errors import PermanentError
from shared.repository import sync_queues
from shared.repository.sql import Executor, rows_affected
from shared.states import TERMINAL_QUEUE_STATES

log = logging.getLogger(__name__)

KINDS = ("incremental", "full")
MIN_EVERY_S = 60
MAX_EVERY_S = 366 * 86_400  # a year and a day: a longer interval is a typo
RETRY_AFTER_ERROR_S = 60


class StoreNotSynced(PermanentError):
    """A schedule names a store the organisation has not synced: woosync keeps no credentials the
    store accepted, so there is nothing to schedule with yet."""


@dataclass(frozen=True, slots=True)
class Schedule:
    org_id: UUID
    store_id: UUID
    store_url: str
    kind: str
    every_s: int
    enabled: bool
    next_run_at: datetime
    last_run_at: datetime | None
    last_queue_key: str | None
    last_error: str | None
    # The queue of the last request published (None until the producer created it) and its state.
    last_queue_id: UUID | None = None
    last_queue_state: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


_COLUMNS = """s.org_id, s.store_id, w.url AS store_url, s.kind, s.every_s, s.enabled, s.next_run_at, s.last_run_at,
              s.last_queue_key, s.last_error, q.id AS last_queue_id, q.state AS last_queue_state,
              s.created_at, s.updated_at"""
# The last run's queue: the organisation's queue of that idempotency key (unique per organisation).
_FROM = """woo_sync_schedule s JOIN woo_store w ON w.id = s.store_id
           LEFT JOIN woo_customer_sync_queue q ON q.org_id = s.org_id AND q.idempotency_key = s.last_queue_key"""


async def synced_store(conn: Executor, org_id: UUID, url: str) -> UUID:
    """The id of the organisation's store at `url` (already normalised), provided a store accepted
    its credentials (an earlier sync's connection test); StoreNotSynced, saying what to do, if not."""
    row = await conn.fetchrow("SELECT id, credentials_verified_at FROM woo_store WHERE org_id = $1 AND url = $2",
                              org_id, url)
    if row is None:
        raise StoreNotSynced(f"store {url} is not one this organisation has synced: run a sync of it first "
                             "(its credentials, once the store accepts them, are what a schedule runs with)")
    if row["credentials_verified_at"] is None:
        raise StoreNotSynced(f"store {url} has not accepted any credentials woosync holds yet: run a sync of it "
                             "first, and schedule it once its connection test passed")
    return row["id"]


async def set_schedule(conn: Executor, *, org_id: UUID, store_id: UUID, kind: str, every_s: int | None,
                       enabled: bool = True) -> Schedule | None:
    """Create or update a store's schedule of `kind`. `every_s` None keeps the interval of the
    schedule there is (and sets nothing when there is none: answers None). A new schedule's first
    run is due now; a shorter interval brings the next run forward, never later than
    now + every_s; enabling a disabled one makes it due at once if its time passed meanwhile."""
    if every_s is None:
        await conn.execute("UPDATE woo_sync_schedule SET enabled = $4, updated_at = now() "
                           "WHERE org_id = $1 AND store_id = $2 AND kind = $3", org_id, store_id, kind, enabled)
    else:
        await conn.execute(
            """
            INSERT INTO woo_sync_schedule (org_id, store_id, kind, every_s, enabled) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (store_id, kind) DO UPDATE SET every_s = EXCLUDED.every_s, enabled = EXCLUDED.enabled,
                next_run_at = least(woo_sync_schedule.next_run_at, now() + make_interval(secs => EXCLUDED.every_s)),
                updated_at = now()
            """, org_id, store_id, kind, every_s, enabled)
    rows = await list_schedules(conn, org_id, store_id=store_id)
    return next((s for s in rows if s.kind == kind), None)


async def list_schedules(conn: Executor, org_id: UUID, *, store_id: UUID | None = None,
                         limit: int | None = None, offset: int = 0) -> list[Schedule]:
    """The organisation's schedules by store URL, then kind."""
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM {_FROM}
         WHERE s.org_id = $1 AND ($2::uuid IS NULL OR s.store_id = $2) ORDER BY w.url, s.kind
         LIMIT $3 OFFSET $4
        """, org_id, store_id, limit, offset)
    return [Schedule(**dict(row)) for row in rows]


async def delete_schedules(conn: Executor, org_id: UUID, store_id: UUID, *, kind: str | None = None) -> int:
    """Delete the store's schedule of `kind` (both kinds when None); how many were deleted."""
    status = await conn.execute("DELETE FROM woo_sync_schedule WHERE org_id = $1 AND store_id = $2 "
                                "AND ($3::text IS NULL OR kind = $3)", org_id, store_id, kind)
    return rows_affected(status)


async def run_due(conn: asyncpg.Connection, run: Callable[[Schedule], Awaitable[str]], *, limit: int = 10) -> int:
    """Run the schedules due now, each in its own transaction: the row is locked (SKIP LOCKED:
    another producer takes the others), `run` publishes its sync request and returns the request's
    idempotency key, and the row moves to its next run. A `run` that raises leaves the row due
    again a minute later, its error recorded. A schedule whose previous run's sync is still open
    is not run this time (two full syncs of one store at once would only compete): it moves to
    its next run with the reason in last_error. A disabled organisation's schedules are left
    due until it is enabled again. Returns how many ran."""
    ran = 0
    for _ in range(limit):
        async with conn.transaction():
            row = await conn.fetchrow(
                f"""
                SELECT {_COLUMNS} FROM {_FROM}
                 WHERE s.enabled AND s.next_run_at <= now()
                   -- A disabled organisation's requests would be refused: its schedules wait.
                   AND NOT EXISTS (SELECT 1 FROM organization o WHERE o.id = s.org_id AND o.disabled_at IS NOT NULL)
                 ORDER BY s.next_run_at LIMIT 1 FOR UPDATE OF s SKIP LOCKED
                """)
            if row is None:
                return ran
            schedule = Schedule(**dict(row))
            if schedule.last_queue_state is not None and schedule.last_queue_state not in TERMINAL_QUEUE_STATES:
                await conn.execute(
                    """
                    UPDATE woo_sync_schedule
                       SET last_error = $3, updated_at = now(),
                           next_run_at = greatest(next_run_at + make_interval(secs => every_s), now())
                     WHERE store_id = $1 AND kind = $2
                    """, schedule.store_id, schedule.kind,
                    f"run due at {schedule.next_run_at.isoformat()} skipped: the previous run's sync "
                    f"{schedule.last_queue_id} is still {schedule.last_queue_state}")
                log.info("schedule %s of store %s: skipped, sync %s of the previous run still %s", schedule.kind,
                         schedule.store_url, schedule.last_queue_id, schedule.last_queue_state)
                continue
            try:
                key = await run(schedule)
            except Exception as exc:  # recorded; tried again after a minute
                await conn.execute(
                    "UPDATE woo_sync_schedule SET last_error = $3, updated_at = now(), "
                    "next_run_at = now() + make_interval(secs => $4) WHERE store_id = $1 AND kind = $2",
                    schedule.store_id, schedule.kind, f"{type(exc).__name__}: {exc}"[:500], RETRY_AFTER_ERROR_S)
                continue
            await conn.execute(
                """
                UPDATE woo_sync_schedule
                   SET last_run_at = now(), last_queue_key = $3, last_error = NULL, updated_at = now(),
                       next_run_at = greatest(next_run_at + make_interval(secs => every_s), now())
                 WHERE store_id = $1 AND kind = $2
                """, schedule.store_id, schedule.kind, key)
            ran += 1
    return ran


# ---------------------------------------------------------------------------- retention
@dataclass(frozen=True, slots=True)
class MaintenanceTask:
    task: str
    next_run_at: datetime
    last_run_at: datetime | None
    last_result: dict[str, Any] | None
    last_error: str | None


async def maintenance_task(conn: Executor, task: str = "prune") -> MaintenanceTask | None:
    """A maintenance task's row (a connection or pool with shared.db's codecs: last_result a dict)."""
    row = await conn.fetchrow("SELECT task, next_run_at, last_run_at, last_result, last_error "
                              "FROM maintenance_task WHERE task = $1", task)
    if row is None:
        return None
    return MaintenanceTask(**dict(row))


async def run_prune_if_due(conn: asyncpg.Connection, *, keep_days: int, every_s: int) -> int | None:
    """Retention on a schedule: when the prune task is due and no other producer holds it, delete
    the queues finished more than `keep_days` ago (sync_queues.delete_finished_queues, as `woosync
    prune`) and move the task `every_s` on, all in one transaction holding the task's row (one
    runner at a time; a runner that dies rolls back and the task stays due). Returns the queues
    deleted, or None when it was not this runner's turn. A failed run is recorded and due again
    a minute later."""
    try:
        async with conn.transaction():
            due = await conn.fetchval("SELECT true FROM maintenance_task WHERE task = 'prune' AND next_run_at <= now() "
                                      "FOR UPDATE SKIP LOCKED")
            if due is None:
                return None
            deleted = await sync_queues.delete_finished_queues(conn, older_than_days=keep_days)
            await conn.execute(
                """
                UPDATE maintenance_task
                   SET last_run_at = now(), last_result = $1, last_error = NULL, updated_at = now(),
                       next_run_at = now() + make_interval(secs => $2)
                 WHERE task = 'prune'
                """, {"deleted_queues": deleted, "keep_days": keep_days}, every_s)
            return deleted
    except asyncpg.PostgresError as exc:  # a lock timeout, a statement cancelled: recorded, tried again later
        await conn.execute("UPDATE maintenance_task SET last_error = $1, updated_at = now(), "
                           "next_run_at = now() + make_interval(secs => $2) WHERE task = 'prune'",
                           f"{type(exc).__name__}: {exc}"[:500], RETRY_AFTER_ERROR_S)
        raise
