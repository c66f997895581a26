"""The activity log of a sync queue: what happened to it and its lines, append-only (the
database refuses updates: sql/001_foundation.sql)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from shared.repository.sql import Executor


@dataclass(frozen=True, slots=True)
class ActivityRow:
    """An entry to append."""

    queue_id: UUID
    org_id: UUID
    activity_type: str
    status: str
    message: str | None = None
    details: dict[str, Any] | None = None
    queue_line_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class ActivityEntry:
    """An entry as read back."""

    id: UUID
    queue_line_id: UUID | None
    activity_type: str
    status: str
    message: str | None
    details: Any  # JSON, its shape depends on activity_type
    created_at: datetime


async def append_activity(conn: Executor, rows: list[ActivityRow]) -> None:
    """Append the entries in one statement."""
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


async def read_activity(conn: Executor, queue_id: UUID, org_id: UUID, *, limit: int, offset: int) -> list[ActivityEntry]:
    """A page of a queue's activity, newest first."""
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
    return [ActivityEntry(**row) for row in rows]
