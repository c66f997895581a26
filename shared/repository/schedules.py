"""Per-store schedules of syncs (sql/010_sweeps_schedules.sql; docs/contract.md section 10): a
periodic incremental sweep and a periodic full sync, each run by exactly one producer however
many replicas run (the due row is taken FOR UPDATE SKIP LOCKED and moved on in the same
transaction that decides to run it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from shared.repository.sql import Executor

KINDS = ("incremental", "full")


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


_COLUMNS = """s.org_id, s.store_id, w.url AS store_url, s.kind, s.every_s, s.enabled, s.next_run_at, s.last_run_at,
              s.last_queue_key, s.last_error"""


async def set_schedule(conn: Executor, *, org_id: UUID, store_id: UUID, kind: str, every_s: int | None) -> Schedule | None:
    """Set (every_s) or turn off (None) a store's schedule of `kind`; the first run is due now."""
    if every_s is None:
        await conn.execute("UPDATE woo_sync_schedule SET enabled = false, updated_at = now() "
                           "WHERE org_id = $1 AND store_id = $2 AND kind = $3", org_id, store_id, kind)
    else:
        await conn.execute(
            """
            INSERT INTO woo_sync_schedule (org_id, store_id, kind, every_s) VALUES ($1, $2, $3, $4)
            ON CONFLICT (store_id, kind) DO UPDATE SET every_s = EXCLUDED.every_s, enabled = true,
                next_run_at = least(woo_sync_schedule.next_run_at, now() + make_interval(secs => EXCLUDED.every_s)),
                updated_at = now()
            """, org_id, store_id, kind, every_s)
    rows = await list_schedules(conn, org_id, store_id=store_id)
    return next((s for s in rows if s.kind == kind), None)


async def list_schedules(conn: Executor, org_id: UUID, *, store_id: UUID | None = None) -> list[Schedule]:
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM woo_sync_schedule s JOIN woo_store w ON w.id = s.store_id
         WHERE s.org_id = $1 AND ($2::uuid IS NULL OR s.store_id = $2) ORDER BY w.url, s.kind
        """, org_id, store_id)
    return [Schedule(**dict(row)) for row in rows]


async def run_due(conn, run: Callable[[Schedule], Awaitable[str]], *, limit: int = 10) -> int:
    """Run the schedules due now, each in its own transaction: the row is locked (SKIP LOCKED:
    another producer takes the others), `run` publishes its sync request and returns the request's
    idempotency key, and the row moves to its next run. A `run` that raises leaves the row due,
    its error recorded. Returns how many ran."""
    ran = 0
    for _ in range(limit):
        async with conn.transaction():
            row = await conn.fetchrow(
                f"""
                SELECT {_COLUMNS} FROM woo_sync_schedule s JOIN woo_store w ON w.id = s.store_id
                 WHERE s.enabled AND s.next_run_at <= now()
                 ORDER BY s.next_run_at LIMIT 1 FOR UPDATE OF s SKIP LOCKED
                """)
            if row is None:
                return ran
            schedule = Schedule(**dict(row))
            try:
                key = await run(schedule)
            except Exception as exc:  # recorded; tried again after a minute
                await conn.execute(
                    "UPDATE woo_sync_schedule SET last_error = $3, next_run_at = now() + interval '60 seconds', "
                    "updated_at = now() WHERE store_id = $1 AND kind = $2", schedule.store_id, schedule.kind,
                    f"{type(exc).__name__}: {exc}"[:500])
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
