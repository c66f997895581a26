"""Conflicts between local edits and the store (customer_sync_conflict), the organisation's
conflict policy, and a preview's report (docs/contract.md section 10).

A conflict is recorded once per line and field (a redelivered line adds nothing), in the same
statement that adds it to its queue's conflict_count. That statement runs after the lines are
marked done, so it locks the queue row after the lines, in the order every other writer does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from shared.customer_changes import CONFLICT_POLICIES, Conflict
from shared.errors import PermanentError
from shared.repository.sql import Executor


class UnknownConflictPolicy(PermanentError):
    def __init__(self, policy: str) -> None:
        super().__init__(f"unknown conflict policy {policy[:64]!r}: expected one of {', '.join(CONFLICT_POLICIES)}")


@dataclass(frozen=True, slots=True)
class LineConflicts:
    """The conflicts found for one line's customer."""

    queue_id: UUID
    line_id: UUID
    org_id: UUID
    customer_id: UUID | None
    woo_customer_id: int
    conflicts: Sequence[Conflict]


@dataclass(frozen=True, slots=True)
class ConflictRecord:
    id: UUID
    queue_line_id: UUID
    customer_id: UUID | None
    woo_customer_id: int
    field: str
    local_value: Any
    store_value: Any
    resolution: str
    created_at: datetime


_RECORD = """
WITH added AS (
    INSERT INTO customer_sync_conflict
        (queue_id, queue_line_id, org_id, customer_id, woo_customer_id, field, local_value, store_value, resolution)
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::bigint[], $6::text[], $7::jsonb[],
                         $8::jsonb[], $9::text[])
    ON CONFLICT (queue_line_id, field) DO NOTHING
    RETURNING queue_id
), counted AS (
    UPDATE woo_customer_sync_queue q SET conflict_count = q.conflict_count + a.n
      FROM (SELECT queue_id, count(*) AS n FROM added GROUP BY queue_id ORDER BY queue_id) a
     WHERE q.id = a.queue_id
    RETURNING a.n
)
SELECT coalesce(sum(n), 0)::int FROM counted
"""


async def record_conflicts(conn: Executor, lines: Sequence[LineConflicts]) -> int:
    """Record the lines' conflicts and count them on their queues; returns how many are new."""
    rows = [(line, conflict) for line in lines for conflict in line.conflicts]
    if not rows:
        return 0
    return await conn.fetchval(
        _RECORD,
        [line.queue_id for line, _ in rows],
        [line.line_id for line, _ in rows],
        [line.org_id for line, _ in rows],
        [line.customer_id for line, _ in rows],
        [line.woo_customer_id for line, _ in rows],
        [conflict.field for _, conflict in rows],
        [conflict.local_value for _, conflict in rows],
        [conflict.store_value for _, conflict in rows],
        [conflict.resolution for _, conflict in rows],
    )


async def list_conflicts(conn: Executor, queue_id: UUID, org_id: UUID, *, limit: int, offset: int) -> list[ConflictRecord]:
    """A page of a queue's conflicts, by WooCommerce customer id then field."""
    rows = await conn.fetch(
        """
        SELECT id, queue_line_id, customer_id, woo_customer_id, field, local_value, store_value, resolution, created_at
          FROM customer_sync_conflict
         WHERE queue_id = $1 AND org_id = $2
         ORDER BY woo_customer_id, field, id
         LIMIT $3 OFFSET $4
        """,
        queue_id,
        org_id,
        limit,
        offset,
    )
    return [ConflictRecord(**row) for row in rows]


async def organization_conflict_policy(conn: Executor, org_id: UUID) -> str | None:
    """The organisation's conflict policy; None for an unknown organisation."""
    return await conn.fetchval("SELECT conflict_policy FROM organization WHERE id = $1", org_id)


async def set_organization_conflict_policy(conn: Executor, org_id: UUID, policy: str) -> bool:
    """Set the organisation's conflict policy (syncs created from now on run under it); False
    for an unknown organisation. UnknownConflictPolicy names the allowed values."""
    if policy not in CONFLICT_POLICIES:
        raise UnknownConflictPolicy(policy)
    return bool(await conn.fetchval(
        "UPDATE organization SET conflict_policy = $2 WHERE id = $1 RETURNING true", org_id, policy))


# ---------------------------------------------------------------------------------------------
# A preview's report

SAMPLE_SIZE = 20
FAILURE_REASONS = 10


async def preview_report(conn: Executor, queue_id: UUID, org_id: UUID) -> dict[str, Any]:
    """The report of a preview queue from its lines: what a sync would do (docs/contract.md
    section 10). field_changes counts, per field, the existing rows a sync would change there."""
    counts = await conn.fetchrow(
        """
        SELECT count(*) FILTER (WHERE outcome = 'would_create') AS would_create,
               count(*) FILTER (WHERE outcome = 'would_update') AS would_update,
               count(*) FILTER (WHERE outcome = 'unchanged') AS unchanged,
               count(*) FILTER (WHERE state = 'failed') AS would_fail
          FROM woo_customer_sync_queue_line WHERE queue_id = $1 AND org_id = $2
        """,
        queue_id,
        org_id,
    )
    fields = await conn.fetch(
        """
        SELECT f.field, count(*) AS n
          FROM woo_customer_sync_queue_line l, jsonb_object_keys(l.changes) AS f(field)
         WHERE l.queue_id = $1 AND l.org_id = $2 AND l.outcome = 'would_update'
         GROUP BY f.field ORDER BY f.field
        """,
        queue_id,
        org_id,
    )
    reasons = await conn.fetch(
        """
        SELECT error_message AS reason, count(*) AS count FROM woo_customer_sync_queue_line
         WHERE queue_id = $1 AND org_id = $2 AND state = 'failed'
         GROUP BY error_message ORDER BY count(*) DESC, error_message LIMIT $3
        """,
        queue_id,
        org_id,
        FAILURE_REASONS,
    )
    samples = await conn.fetch(
        """
        SELECT woo_customer_id, customer_data->>'email' AS email, outcome, changes
          FROM woo_customer_sync_queue_line
         WHERE queue_id = $1 AND org_id = $2 AND outcome IN ('would_create', 'would_update')
         ORDER BY woo_customer_id LIMIT $3
        """,
        queue_id,
        org_id,
        SAMPLE_SIZE,
    )
    conflicts = await conn.fetchval(
        "SELECT conflict_count FROM woo_customer_sync_queue WHERE id = $1 AND org_id = $2", queue_id, org_id)
    return {
        "would_create": counts["would_create"],
        "would_update": counts["would_update"],
        "unchanged": counts["unchanged"],
        "would_fail": counts["would_fail"],
        "fail_reasons": [{"reason": row["reason"], "count": row["count"]} for row in reasons],
        "conflicts": conflicts or 0,
        "field_changes": {row["field"]: row["n"] for row in fields},
        "samples": [
            {"woo_customer_id": row["woo_customer_id"], "email": row["email"],
             "action": "create" if row["outcome"] == "would_create" else "update", "changes": row["changes"] or {}}
            for row in samples
        ],
    }
